"""The SDK: talk to a hub, remote (an http(s) URL) or embedded (a hub directory).

In embedded mode the client runs the real FastAPI app in-process and speaks HTTP to it
without a socket (``commonweal.embedded``), so the CLI and tests exercise exactly what a
remote user would. Members sign on this side: the hub only ever sees signed events. This
module needs only ``ledger``, ``errors`` and ``wire``: a member who signs and submits to a
remote hub never loads the server (FastAPI, SQLAlchemy, the ML stack).
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

from commonweal.errors import CommonwealError, ConfigError, HubError, NotFound, error_class
from commonweal.ledger.event import SignedEvent, sign_event
from commonweal.ledger.keys import SigningKey
from commonweal.ledger.note import NoteVerifier
from commonweal.wire import AUTH_HEADER, auth_header, describe_item, new_api_key

__all__ = ["HubClient", "is_remote"]

API = "/api/v1"
PAGE = 1000

# A 429 that says when to come back (``Retry-After``) is retried this many times, if the
# wait is at most MAX_WAIT seconds: a rate limit's minute, not a daily quota's midnight.
RETRIES = 3
MAX_WAIT = 60.0

# Told before each wait: (seconds, attempt number, the hub's message).
OnWait = Callable[[float, int, str], None]

_log = logging.getLogger("commonweal.client")


def _log_wait(seconds: float, attempt: int, message: str) -> None:
    _log.warning("%s — retrying in %g s (%d of %d)", message, seconds, attempt, RETRIES)


def is_remote(hub: str) -> bool:
    """Whether ``hub`` names a remote hub (an http(s) URL) rather than a directory."""
    return hub.startswith(("http://", "https://"))


def _retry_after(resp: httpx.Response) -> float | None:
    """Seconds a 429 asks to wait, if it says and the wait is short enough to wait out."""
    if resp.status_code != 429:
        return None
    value = resp.headers.get("retry-after", "")
    if not value.isdigit() or int(value) > MAX_WAIT:
        return None
    return float(value)


def _message(resp: httpx.Response) -> str:
    try:
        return str(resp.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return f"the hub answered {resp.status_code}"


class HubClient:
    """A connection to one hub. Use as a context manager, or call :meth:`close`."""

    def __init__(
        self,
        hub: str,
        *,
        timeout: float = 30.0,
        retries: int = RETRIES,
        on_wait: OnWait | None = None,
    ) -> None:
        """``retries``: how many times a rate-limited request (429 with ``Retry-After`` of
        at most a minute) is sent again after waiting; ``on_wait`` is told of each wait
        (default: a warning on the ``commonweal.client`` logger)."""
        self.target = hub
        self.retries = retries
        self.on_wait: OnWait = on_wait or _log_wait
        self._hub: Any = None
        self._origin: str | None = None
        self._http: httpx.Client
        if is_remote(hub):
            self._http = httpx.Client(base_url=hub.rstrip("/"), timeout=timeout)
        else:
            if not Path(hub).is_dir():
                raise ConfigError(f"--hub {hub!r} is neither an http(s) URL nor a hub directory")
            # Only a hub directory needs the server stack; a remote client never loads it.
            from commonweal.embedded import open_embedded

            self._hub, transport = open_embedded(hub)
            self._http = httpx.Client(
                transport=transport, base_url="http://embedded", timeout=timeout
            )

    def __enter__(self) -> HubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def embedded_hub(self) -> Any:
        """The hub behind an embedded client (a hub directory), for its operator's own
        unmetered use; ConfigError for a remote hub."""
        if self._hub is None:
            raise ConfigError(f"{self.target} is a remote hub; this needs its directory")
        return self._hub

    def close(self) -> None:
        """Close the HTTP connection, and the hub itself if it is embedded."""
        self._http.close()
        if self._hub is not None:
            self._hub.close()

    # -- plumbing -----------------------------------------------------------------------

    def _request(
        self, method: str, path: str, *, signer: SigningKey | None = None, **kw: Any
    ) -> httpx.Response:
        attempt = 0
        while True:
            if signer is not None:
                # The hub accepts a request signature once: every attempt signs afresh,
                # over the exact body bytes sent (``content``).
                header = auth_header(signer, method, path, body=kw.get("content") or b"")
                kw["headers"] = {**kw.get("headers", {}), AUTH_HEADER: header}
            try:
                resp = self._http.request(method, path, **kw)
            except httpx.HTTPError as exc:
                raise HubError(f"cannot reach the hub at {self.target}: {exc}") from None
            wait = _retry_after(resp)
            if wait is None or attempt >= self.retries:
                break
            # A 429 means the hub did nothing: sending the same request again is safe.
            attempt += 1
            self.on_wait(wait, attempt, _message(resp))
            time.sleep(wait)
        if resp.status_code >= 400:
            try:
                err = resp.json()["error"]
                cls = error_class(err["code"])
                raise cls(err["message"], detail=err.get("detail"))
            except (ValueError, KeyError, TypeError):
                raise CommonwealError(
                    f"the hub answered {resp.status_code}: {resp.text[:200]}"
                ) from None
        return resp

    def _get(self, path: str, **params: Any) -> Any:
        clean = {k: v for k, v in params.items() if v is not None}
        return self._request("GET", API + path, params=clean).json()

    # -- signing ------------------------------------------------------------------------

    @property
    def origin(self) -> str:
        """The origin line of the hub's log, which every event signed for it names (so
        the event cannot be replayed to another hub). Asked once, then kept: a hub's
        origin never changes."""
        if self._origin is None:
            if self._hub is not None:
                self._origin = str(self._hub.origin)
            else:
                self._origin = str(self.community()["origin"])
        return self._origin

    def sign(self, key: SigningKey, kind: str, body: dict[str, Any]) -> SignedEvent:
        """Sign an event as ``key`` for this hub (locally: the key never leaves)."""
        return sign_event(key, kind, body, hub=self.origin)

    # -- ledger -------------------------------------------------------------------------

    def submit(self, events: Sequence[SignedEvent]) -> dict[str, Any]:
        """Append signed events as one all-or-nothing batch."""
        doc: Any = (
            events[0].to_wire() if len(events) == 1 else {"events": [e.to_wire() for e in events]}
        )
        return self._request("POST", API + "/events", json=doc).json()  # type: ignore[no-any-return]

    def checkpoint(self) -> str:
        """The hub's latest signed checkpoint (a C2SP signed note)."""
        return self._request("GET", API + "/ledger/checkpoint").text

    def verifier(self) -> NoteVerifier:
        """The hub's public verifier key."""
        return NoteVerifier.parse(self._request("GET", API + "/ledger/key").text)

    def entries(self, start: int = 0, end: int | None = None) -> dict[str, Any]:
        """Entries ``[start, end)``, at most 1,000 a page, and the log's size."""
        return self._get("/ledger/entries", start=start, end=end)  # type: ignore[no-any-return]

    def iter_entries(self, start: int = 0, end: int | None = None) -> Iterator[dict[str, Any]]:
        """Every entry from ``start`` to ``end`` (default: the current size), page by page."""
        pos = start
        while end is None or pos < end:
            page = self.entries(pos, None if end is None else min(end, pos + PAGE))
            if end is None:
                end = page["size"]
            if not page["entries"]:
                return
            yield from page["entries"]
            pos += len(page["entries"])

    def inclusion(self, index: int, size: int | None = None) -> dict[str, Any]:
        """A proof that entry ``index`` is in the tree of ``size`` entries (default: now)."""
        return self._get("/ledger/proof/inclusion", index=index, size=size)  # type: ignore[no-any-return]

    def consistency(self, old: int, new: int | None = None) -> dict[str, Any]:
        """A proof that the tree of ``old`` entries is a prefix of the one of ``new``."""
        return self._get("/ledger/proof/consistency", old=old, new=new)  # type: ignore[no-any-return]

    def projections(self) -> dict[str, list[dict[str, Any]]]:
        """Every projection table's rows, for a remote verifier to compare."""
        return self._get("/projections")  # type: ignore[no-any-return]

    # -- community ----------------------------------------------------------------------

    def community(self) -> dict[str, Any]:
        """The community's name, origin, hub key, founder and charter."""
        return self._get("/community")  # type: ignore[no-any-return]

    def members(self) -> list[dict[str, Any]]:
        """Every member, with their status."""
        return self._get("/members")["members"]  # type: ignore[no-any-return]

    def join(self, key: SigningKey, name: str, *, invite: str | None = None) -> dict[str, Any]:
        """Join as ``name`` with ``key`` (and an invite token if the charter needs one)."""
        body: dict[str, Any] = {"name": name}
        if invite is not None:
            body["invite"] = invite
        return self.submit([self.sign(key, "member.join", body)])

    def create_invite(self, key: SigningKey) -> tuple[str, dict[str, Any]]:
        """Register a fresh invite; return the secret token (give it to the invitee)."""
        token = secrets.token_urlsafe(18)
        th = hashlib.sha256(token.encode()).hexdigest()
        return token, self.submit([self.sign(key, "invite.create", {"token_hash": th})])

    def approve(self, key: SigningKey, member: str) -> dict[str, Any]:
        """Admit a pending member (as an active member)."""
        return self.submit([self.sign(key, "member.approve", {"member": member})])

    # -- contributions and reviews ------------------------------------------------------

    def _signed_get(self, key: SigningKey, path: str, **params: Any) -> Any:
        clean = {k: v for k, v in params.items() if v is not None}
        target = API + path + (f"?{urlencode(clean)}" if clean else "")
        return self._request("GET", target, signer=key).json()

    def _signed_send(self, key: SigningKey, method: str, target: str, doc: Any = None) -> Any:
        """``method target`` signed by ``key``, with ``doc`` as the JSON body (if any):
        serialized here, so the signature covers the very bytes that go out."""
        if doc is None:
            return self._request(method, target, signer=key).json()
        body = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json"}
        return self._request(method, target, signer=key, content=body, headers=headers).json()

    def contribute(
        self,
        key: SigningKey,
        items: Sequence[dict[str, Any]],
        *,
        license: str = "CC-BY-4.0",
        consent: Sequence[str] = ("train", "evaluate"),
        charter: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Sign and send one batch of items; return the hub's receipt."""
        task = (charter or self.community()["charter"]).get("task") or {}
        described, content = [], []
        for item in items:
            meta, part = describe_item(
                item, task_kind=task.get("kind"), license=license, consent=consent
            )
            described.append(meta)
            content.append(part)
        ev = self.sign(key, "contribution.submit", {"items": described})
        doc = {**ev.to_wire(), "content": content}
        return self._request("POST", API + "/contributions", json=doc).json()  # type: ignore[no-any-return]

    def contributions(
        self, *, member: str | None = None, status: str | None = None, flag: str | None = None
    ) -> list[dict[str, Any]]:
        """Contributed items, filtered by member, status or flag."""
        rows: list[dict[str, Any]] = self._get(
            "/contributions", member=member, status=status, flag=flag, limit=100_000
        )["contributions"]
        return rows

    def contribution(self, item_id: str) -> dict[str, Any]:
        """One contributed item's metadata and status."""
        return self._get(f"/contributions/{item_id}")  # type: ignore[no-any-return]

    def content(self, key: SigningKey, item_id: str) -> Any:
        """An item's content, for its contributor or a member reviewing it."""
        return self._signed_get(key, f"/contributions/{item_id}/content")["item"]

    def next_review(self, key: SigningKey, *, skip: Collection[str] = ()) -> dict[str, Any] | None:
        """The next item for this member to review (none of the ``skip`` ids), or ``None``
        if there is none. Its ``left`` says how many wait for the member (skipped ones not)."""
        try:
            return self._signed_get(  # type: ignore[no-any-return]
                key, "/reviews/next", skip=",".join(sorted(skip)) or None
            )
        except NotFound:
            return None

    def review(
        self,
        key: SigningKey,
        item: str,
        verdict: str,
        *,
        label: str | None = None,
        reason: str | None = None,
    ) -> dict[str, Any]:
        """Sign and send a review of ``item``: accept, reject or relabel."""
        body: dict[str, Any] = {"item": item, "verdict": verdict}
        if label is not None:
            body["label"] = label
        if reason is not None:
            body["reason"] = reason
        ev = self.sign(key, "review.submit", body)
        return self._request("POST", API + "/reviews", json=ev.to_wire()).json()  # type: ignore[no-any-return]

    def reliability(self) -> list[dict[str, Any]]:
        """Each reviewer's estimated reliability, as the consensus weighs them."""
        return self._get("/reviews/reliability")["reviewers"]  # type: ignore[no-any-return]

    def withdraw(self, key: SigningKey, ids: Sequence[str]) -> dict[str, Any]:
        """Withdraw this member's items: the hub erases their content."""
        return self.submit([self.sign(key, "contribution.withdraw", {"items": list(ids)})])

    def leave(self, key: SigningKey, note: str | None = None) -> dict[str, Any]:
        """Leave the community: every item of this member is withdrawn (the hub erases its
        content), delegations to and from them end, and their shares are kept or given up
        as the charter's ``membership.leaving_shares`` says."""
        body = {} if note is None else {"note": note}
        return self.submit([self.sign(key, "member.leave", body)])

    # -- federated members ----------------------------------------------------------------

    def federated(self) -> dict[str, Any]:
        """The community's federation: SuperLink address, its CA, the app hash, nodes."""
        return self._get("/federated")  # type: ignore[no-any-return]

    def enroll_node(self, key: SigningKey, body: dict[str, Any]) -> dict[str, Any]:
        """Sign and submit ``federated.enroll`` (a node key and a commitment to its data)."""
        return self.submit([self.sign(key, "federated.enroll", body)])

    def withdraw_node(self, key: SigningKey) -> dict[str, Any]:
        """Take this member's node out of later rounds."""
        return self.submit([self.sign(key, "federated.withdraw", {})])

    def enrollment(self, member: str) -> dict[str, Any] | None:
        """The body of ``member``'s latest ``federated.enroll`` in the log, or None."""
        found = None
        for e in self.iter_entries():
            ev = e["event"]
            if ev["kind"] == "federated.enroll" and ev["actor"] == member:
                found = ev["body"]
        return found

    def export(self, key: SigningKey) -> dict[str, Any]:
        """Everything this member contributed, content included, and every log entry about
        them."""
        return self._signed_get(key, f"/members/{key.key_id}/export")  # type: ignore[no-any-return]

    def set_webhook(self, key: SigningKey, url: str | None) -> dict[str, Any]:
        """Set this member's private webhook to ``url`` (or clear it with ``None``): the hub
        POSTs to it when something new waits for them."""
        target = f"{API}/members/{key.key_id}/webhook"
        if url is None:
            return self._signed_send(key, "DELETE", target)  # type: ignore[no-any-return]
        return self._signed_send(key, "PUT", target, {"url": url})  # type: ignore[no-any-return]

    def webhook(self, key: SigningKey) -> dict[str, Any]:
        """This member's webhook (``url`` None when none is set) and its last failure."""
        return self._signed_get(key, f"/members/{key.key_id}/webhook")  # type: ignore[no-any-return]

    # -- the model ----------------------------------------------------------------------

    def models(self) -> list[dict[str, Any]]:
        """Every trained model version."""
        return self._get("/models")["models"]  # type: ignore[no-any-return]

    def model(self, version: str | int = "latest") -> dict[str, Any]:
        """One model version (default: the latest)."""
        return self._get(f"/models/{version}")  # type: ignore[no-any-return]

    def model_lineage(self, version: str | int) -> dict[str, Any]:
        """The items behind a version and how many each member gave, checked against the
        manifest root in the log."""
        return self._get(f"/models/{version}/lineage")  # type: ignore[no-any-return]

    def item_lineage(self, item_id: str) -> dict[str, Any]:
        """The model versions that trained on an item."""
        return self._get(f"/contributions/{item_id}/lineage")  # type: ignore[no-any-return]

    def prove_item(self, item_id: str, version: str | int) -> dict[str, Any]:
        """A Merkle proof that an item is, or is not, in a version's manifest."""
        return self._get(f"/models/{version}/proof", item=item_id)  # type: ignore[no-any-return]

    def card(self, version: str | int, fmt: str = "markdown") -> Any:
        """A version's model card (``markdown``) or Croissant datasheet (``croissant``)."""
        resp = self._request("GET", f"{API}/models/{version}/card", params={"format": fmt})
        return resp.text if fmt == "markdown" else resp.json()

    def predict(
        self, inputs: Sequence[dict[str, Any]], *, api_key: str, version: str | int = "latest"
    ) -> dict[str, Any]:
        """Predict with a model version, metered against ``api_key``."""
        return self._request(  # type: ignore[no-any-return]
            "POST",
            f"{API}/models/{version}/predict",
            json={"inputs": list(inputs)},
            headers={"Authorization": f"Bearer {api_key}"},
        ).json()

    def create_apikey(
        self, key: SigningKey, consumer: str, *, quota_per_day: int | None = None
    ) -> tuple[str, dict[str, Any]]:
        """Issue an API key to ``consumer``: the log gets its hash; the secret is returned
        here once and nowhere else."""
        secret, key_hash = new_api_key()
        body: dict[str, Any] = {"key_hash": key_hash, "consumer": consumer}
        if quota_per_day is not None:
            body["quota_per_day"] = quota_per_day
        return secret, self.submit([self.sign(key, "apikey.create", body)])

    def revoke_apikey(self, key: SigningKey, key_hash: str) -> dict[str, Any]:
        """Revoke a consumer's API key by its hash."""
        return self.submit([self.sign(key, "apikey.revoke", {"key_hash": key_hash})])

    def treasury(self) -> dict[str, Any]:
        """The treasury's balance and the revenue and calls billed so far."""
        return self._get("/treasury")  # type: ignore[no-any-return]

    # -- valuations and ownership -------------------------------------------------------

    def valuations(self) -> list[dict[str, Any]]:
        """Every logged valuation."""
        return self._get("/valuations")["valuations"]  # type: ignore[no-any-return]

    def valuation(self, number: int) -> dict[str, Any]:
        """One valuation's report: method, totals, members' values."""
        return self._get(f"/valuations/{number}")  # type: ignore[no-any-return]

    def values(self, number: int) -> dict[str, Any]:
        """One valuation's per-item values."""
        return self._get(f"/valuations/{number}/values")  # type: ignore[no-any-return]

    def shares(self) -> dict[str, Any]:
        """The cap table: each member's shares."""
        return self._get("/shares")  # type: ignore[no-any-return]

    def epochs(self) -> list[dict[str, Any]]:
        """Every closed reward epoch."""
        return self._get("/epochs")["epochs"]  # type: ignore[no-any-return]

    def payouts(self) -> list[dict[str, Any]]:
        """Every treasury payout."""
        return self._get("/payouts")["payouts"]  # type: ignore[no-any-return]

    def statement(self, member: str) -> dict[str, Any]:
        """A member's account: shares held and earned, each epoch's awards, each payout."""
        return self._get(f"/members/{member}/statement")  # type: ignore[no-any-return]

    def proposals(self) -> list[dict[str, Any]]:
        """Every proposal and its status."""
        return self._get("/proposals")["proposals"]  # type: ignore[no-any-return]

    def proposal(self, number: int) -> dict[str, Any]:
        """One proposal, its votes and tally."""
        return self._get(f"/proposals/{number}")  # type: ignore[no-any-return]

    def delegations(self) -> dict[str, str]:
        """Who delegates their vote to whom (key ids)."""
        return self._get("/delegations")["delegations"]  # type: ignore[no-any-return]

    def register_address(self, key: SigningKey, address: str) -> dict[str, Any]:
        """Register the EVM address this member's on-chain claims go to."""
        return self.submit([self.sign(key, "member.address", {"address": address})])

    def transfer_shares(self, key: SigningKey, to: str, shares: int) -> dict[str, Any]:
        """Give ``shares`` to another member (only if the charter makes shares transferable)."""
        return self.submit([self.sign(key, "shares.transfer", {"to": to, "shares": shares})])
