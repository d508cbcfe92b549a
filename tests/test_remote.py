"""The CLI against a real server over a socket: what a member on another machine does."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.kit import cw, cwj, free_port, make_hub, start_server

pytestmark = pytest.mark.slow


def test_members_join_and_verify_a_remote_hub(tmp_path: Path, database_url: str) -> None:
    hub, _ = make_hub(tmp_path / "hub", database_url, name="Remote Co-op")
    hub.close()
    port = free_port()
    server = start_server(tmp_path / "hub", port)
    url = f"http://127.0.0.1:{port}"
    try:
        cw("key", "new", "--out", tmp_path / "k.key")
        assert (
            cwj("join", "--hub", url, "--key", tmp_path / "k.key", "--name", "Grace")["status"]
            == "active"
        )
        assert {m["name"] for m in cwj("members", "--hub", url)["members"]} == {"Ada", "Grace"}
        report = cwj("ledger", "verify", "--hub", url)
        assert report["size"] == 2
        assert "projections equal the replayed state" in report["checks"]
        proof = cwj("ledger", "prove", "--hub", url, "--index", "0")
        assert proof["verified_against"] == "signed checkpoint"
        # A second run remembers the first checkpoint and checks the log extends it.
        cw("key", "new", "--out", tmp_path / "k2.key")
        cw("join", "--hub", url, "--key", tmp_path / "k2.key", "--name", "Alan")
        again = cwj("ledger", "verify", "--hub", url)
        assert again["previous_size"] == 2 and again["size"] == 3
    finally:
        server.kill()
        server.wait(10)
    # Once the server is gone, the CLI says so in one line.
    proc = cw("members", "--hub", url, ok=False)
    assert proc.returncode == 1 and "cannot reach the hub" in proc.stderr
