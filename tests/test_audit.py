"""``ledger verify`` over raw leaves: any tampered byte fails, and the failure is named."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commonweal.community.charter import Charter, validate_charter
from commonweal.errors import VerificationFailed
from commonweal.hub import Hub
from commonweal.ledger.event import sign_event
from commonweal.ledger.keys import SigningKey
from commonweal.ledger.note import NoteSigner, NoteVerifier
from commonweal.verify import Witness, verify_log


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[bytes], str, NoteVerifier]:
    d = tmp_path_factory.mktemp("audit")
    # Six invites from one member: more than the default limit, so the charter lifts it.
    charter = validate_charter(
        {"name": "Audit", "join_policy": "invite", "membership": {"invites_per_member": 0}}
    )
    hub, founder = Hub.init(d / "hub", charter=charter, founder_name="Ada")
    import hashlib

    for i in range(6):
        token = f"token-{i}"
        th = hashlib.sha256(token.encode()).hexdigest()
        hub.append([sign_event(founder, "invite.create", {"token_hash": th}, hub=hub.origin)])
        hub.append(
            [
                sign_event(
                    SigningKey.generate(),
                    "member.join",
                    {"name": f"m{i}", "invite": token},
                    hub=hub.origin,
                )
            ]
        )
    leaves = [leaf.data for leaf in hub.log.entries(0, None)]
    note, verifier = hub.log.checkpoint(), hub.verifier
    hub.close()
    return leaves, note, verifier


def test_an_honest_log_verifies(log: tuple[list[bytes], str, NoteVerifier]) -> None:
    leaves, note, verifier = log
    report = verify_log(leaves, checkpoint_note=note, verifier=verifier, workers=1)
    assert report.size == 13 and report.members == 7
    parallel = verify_log(leaves, checkpoint_note=note, verifier=verifier, workers=2)
    assert parallel.root == report.root


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_tampered_leaf_byte_fails(
    log: tuple[list[bytes], str, NoteVerifier], data: st.DataObject
) -> None:
    leaves, note, verifier = log
    i = data.draw(st.integers(0, len(leaves) - 1), label="entry")
    pos = data.draw(st.integers(0, len(leaves[i]) - 1), label="byte")
    flip = data.draw(st.integers(1, 255), label="xor")
    bad = bytearray(leaves[i])
    bad[pos] ^= flip
    forged = [*leaves[:i], bytes(bad), *leaves[i + 1 :]]
    with pytest.raises(VerificationFailed) as exc:
        verify_log(forged, checkpoint_note=note, verifier=verifier, workers=1)
    # The failure names the tampered entry, or (if only the tree noticed) the root.
    assert exc.value.index in (i, None)


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_any_tampered_checkpoint_byte_fails(
    log: tuple[list[bytes], str, NoteVerifier], data: st.DataObject
) -> None:
    leaves, note, verifier = log
    raw = bytearray(note.encode())
    pos = data.draw(st.integers(0, len(raw) - 1))
    raw[pos] ^= data.draw(st.integers(1, 127))
    try:
        forged = raw.decode()
    except UnicodeDecodeError:
        return  # not even text: nothing to verify
    with pytest.raises(VerificationFailed):
        verify_log(leaves, checkpoint_note=forged, verifier=verifier, workers=1)


def test_dropped_reordered_or_extra_entries_fail(
    log: tuple[list[bytes], str, NoteVerifier],
) -> None:
    leaves, note, verifier = log
    for forged in (
        leaves[:-1],
        [leaves[0], leaves[2], leaves[1], *leaves[3:]],
        [*leaves, leaves[-1]],
    ):
        with pytest.raises(VerificationFailed):
            verify_log(forged, checkpoint_note=note, verifier=verifier, workers=1)


def test_a_checkpoint_signed_by_another_key_fails(
    log: tuple[list[bytes], str, NoteVerifier],
) -> None:
    leaves, note, verifier = log
    other = NoteSigner(verifier.name, SigningKey.generate())
    with pytest.raises(VerificationFailed):
        verify_log(leaves, checkpoint_note=note, verifier=other.verifier, workers=1)


def test_a_hub_that_changes_its_key_is_caught(
    log: tuple[list[bytes], str, NoteVerifier], tmp_path: Path
) -> None:
    leaves, note, verifier = log
    witness = Witness(tmp_path)
    verify_log(leaves, checkpoint_note=note, verifier=verifier, witness=witness, workers=1)
    impostor = NoteSigner(verifier.name, SigningKey.generate())
    from commonweal.ledger.merkle import MemoryTree
    from commonweal.ledger.note import Checkpoint

    forged = Checkpoint(verifier.name, len(leaves), MemoryTree(leaves).root()).sign(impostor)
    with pytest.raises(VerificationFailed, match="does not change its key"):
        verify_log(
            leaves, checkpoint_note=forged, verifier=impostor.verifier, witness=witness, workers=1
        )


def test_the_witness_remembers_and_accepts_growth(
    log: tuple[list[bytes], str, NoteVerifier], tmp_path: Path
) -> None:
    leaves, note, verifier = log
    witness = Witness(tmp_path)
    verify_log(leaves, checkpoint_note=note, verifier=verifier, witness=witness, workers=1)
    last = witness.last(verifier)
    assert last is not None and last.size == len(leaves)
    report = verify_log(leaves, checkpoint_note=note, verifier=verifier, witness=witness, workers=1)
    assert report.previous_size == len(leaves)


def test_a_signed_canonical_leaf_holding_a_float_fails_replay(tmp_path: Path) -> None:
    import orjson

    from commonweal.ledger.event import encode_leaf, now
    from commonweal.ledger.merkle import MemoryTree
    from commonweal.ledger.note import Checkpoint

    hub, _ = Hub.init(tmp_path / "hub", charter=Charter(name="Floats"), founder_name="Ada")
    leaves = [leaf.data for leaf in hub.log.entries(0, None)]
    key = SigningKey.generate()
    event = {
        "v": 1,
        "kind": "member.join",
        "actor": key.key_id,
        "time": now(),
        "nonce": "abcdefghijklmnopqrstuv",
        "body": {"name": 1.5},
    }
    data = orjson.dumps(event, option=orjson.OPT_SORT_KEYS)  # canonical, but with a float
    leaves.append(encode_leaf(data, 1, now(), key.sign(data)))
    note = Checkpoint(hub.origin, 2, MemoryTree(leaves).root()).sign(hub.signer)
    with pytest.raises(VerificationFailed, match="entry 1: the rules refuse it"):
        verify_log(leaves, checkpoint_note=note, verifier=hub.verifier, workers=1)
    hub.close()
