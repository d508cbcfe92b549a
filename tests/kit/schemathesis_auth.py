"""Credentials for schemathesis, as a member and a consumer hold them: loaded by its CLI
through ``SCHEMATHESIS_HOOKS=tests.kit.schemathesis_auth`` (see ``tests/kit/conformance.py``).

An operation whose security is ``memberSignature`` gets ``X-Commonweal-Auth`` signed for
that very request (method, path and query as the server sees them) by the member key in
``$COMMONWEAL_ST_MEMBER_KEY``; one whose security is ``apiKey`` gets the consumer's API key
in ``$COMMONWEAL_ST_API_KEY``. Without them, schemathesis could only ever see 401 on those
operations and would test nothing past the door.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import requests
import schemathesis

from commonweal.ledger.keys import SigningKey
from commonweal.wire import AUTH_HEADER, auth_header


def _schemes(case: Any) -> set[str]:
    return {name for req in case.operation.definition.raw.get("security", []) for name in req}


def _target(case: Any) -> str:
    """The request target as the server reads it: the decoded path and the raw query."""
    kwargs = case.as_transport_kwargs(base_url="http://hub")
    prepared = requests.Request(
        method=kwargs["method"], url=kwargs["url"], params=kwargs.get("params")
    ).prepare()
    path, _, query = (prepared.path_url or "/").partition("?")
    return unquote(path) + (f"?{query}" if query else "")


@schemathesis.auth(refresh_interval=None)
class HubCredentials:
    """A member's key and a consumer's API key, applied by what each operation declares."""

    def get(self, case: Any, ctx: Any) -> dict[str, Any]:
        return {
            "member": SigningKey.load(Path(os.environ["COMMONWEAL_ST_MEMBER_KEY"])),
            "api_key": os.environ["COMMONWEAL_ST_API_KEY"],
        }

    def set(self, case: Any, data: dict[str, Any], ctx: Any) -> None:
        schemes = _schemes(case)
        headers = dict(case.headers or {})
        if "memberSignature" in schemes:
            headers[AUTH_HEADER] = auth_header(data["member"], case.method, _target(case))
        if "apiKey" in schemes:
            headers["Authorization"] = f"Bearer {data['api_key']}"
        case.headers = headers
