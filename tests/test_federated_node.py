"""The member's side of federation without a deployment: node keys, the hub's certificates,
the gate's check, and the commitment a node logs for its private data."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest
from cryptography import x509

from commonweal.errors import InvalidInput
from commonweal.federated.gate import AppRefused, check_bundle
from commonweal.federated.keys import make_node_key, read_public_line
from commonweal.federated.node import item_salt, read_node_data
from commonweal.federated.tls import ensure_certificates
from commonweal.ledger.merkle import tree_root
from commonweal.wire import commitment_of

CHARTER = {
    "name": "t",
    "task": {
        "kind": "tabular-classification",
        "labels": ["a", "b"],
        "columns": [{"name": "x"}, {"name": "y"}],
    },
    "federated": {"enabled": True},
}


def _csv(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    path.write_text("x,y,target\n" + "".join(f"{a},{b},{t}\n" for a, b, t in rows))
    return path


def test_node_key_is_private_and_its_public_line_is_what_the_key_proves(tmp_path: Path) -> None:
    key = tmp_path / "m.key.node"
    line = make_node_key(key)
    assert line.startswith("ecdsa-sha2-nistp384 AAAA") and len(line.split()) == 2
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert (tmp_path / "m.key.node.pub").read_text() == line + "\n"
    assert read_public_line(key) == line
    with pytest.raises(InvalidInput, match="exists already"):
        make_node_key(key)


def test_certificates_are_reused_and_remade_for_a_new_host(tmp_path: Path) -> None:
    first = ensure_certificates(tmp_path / "fed")
    pem = first.cert.read_bytes()
    assert stat.S_IMODE(first.key.stat().st_mode) == 0o600
    assert ensure_certificates(tmp_path / "fed").cert.read_bytes() == pem
    again = ensure_certificates(tmp_path / "fed", ["hub.example.org"])
    cert = x509.load_pem_x509_certificate(again.cert.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "hub.example.org" in san.get_values_for_type(x509.DNSName)
    assert "localhost" in san.get_values_for_type(x509.DNSName)


def test_gate_accepts_only_the_logged_bundle() -> None:
    fab = b"bundle"
    check_bundle(fab, hashlib.sha256(fab).hexdigest())
    with pytest.raises(AppRefused, match="runs only the app bundle the community logged"):
        check_bundle(b"other", hashlib.sha256(fab).hexdigest())


def test_enroll_root_commits_to_salted_items(tmp_path: Path) -> None:
    data = _csv(tmp_path / "d.csv", [("1", "2", "a"), ("3", "4", "b"), ("5", "6", "a")])
    found = read_node_data(data, CHARTER, b"k" * 32)
    assert found.items == 3 and found.labels == {"a": 2, "b": 1}
    items = [
        {"features": {"x": x, "y": y}, "target": t}
        for x, y, t in [("1", "2", "a"), ("3", "4", "b"), ("5", "6", "a")]
    ]
    leaves = sorted(bytes.fromhex(commitment_of(item_salt(b"k" * 32, it), it)) for it in items)
    assert found.root == tree_root(leaves).hex()
    assert read_node_data(data, CHARTER, b"j" * 32).root != found.root


def test_bad_node_data_fails_locally_naming_the_line(tmp_path: Path) -> None:
    data = _csv(tmp_path / "d.csv", [("1", "2", "a"), ("3", "4", "zebra")])
    with pytest.raises(InvalidInput, match=r"d\.csv:3"):
        read_node_data(data, CHARTER, b"k" * 32)
    off = {**CHARTER, "federated": {"enabled": False}}
    with pytest.raises(InvalidInput, match="does not enable federated"):
        read_node_data(_csv(tmp_path / "e.csv", [("1", "2", "a")]), off, b"k" * 32)
