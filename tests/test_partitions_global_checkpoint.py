"""Signed global checkpoints of a partitioned ledger: create and verify, tampering found in any
partition or in the store, two-level inclusion proofs and per-partition consistency proofs that
verify from the proof, the event hash and the signed checkpoint alone."""

from __future__ import annotations

import dataclasses
import sqlite3

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.errors import InvalidRequest
from ledger.governance.checkpoints import CheckpointSigner
from ledger.partitions.global_checkpoint import verify_global_consistency, verify_global_inclusion
from ledger.partitions.global_checkpoint_store import GlobalCheckpointStore
from ledger.partitions.global_checkpoints import GlobalCheckpoints
from ledger.partitions.sqlite_partitions import open_sqlite_partitions, partition_path
from tests.log_contract import added

N = 4


def _streams(plog) -> list[str]:
    names = (f"c{i}" for i in range(10_000))
    return [next(s for s in names if plog.partition_of(s) == k) for k in range(N)]


def _fill(plog, per_partition: list[int], tag: str = "t") -> None:
    for k, (stream, count) in enumerate(zip(_streams(plog), per_partition, strict=True)):
        if count:
            plog.append([added(stream, f"{tag}{k}-{i}", f"{tag} text {k} {i}") for i in range(count)])


@pytest.fixture
def ledger(tmp_path):
    plog = open_sqlite_partitions(tmp_path / "data", N, synchronous="OFF")
    yield plog
    plog.close()


@pytest.fixture
def checkpoints(tmp_path):
    signer = CheckpointSigner(tmp_path / "keys" / "checkpoint-signing.key")
    return GlobalCheckpoints(signer, GlobalCheckpointStore(tmp_path / "data" / "global-checkpoints.jsonl"))


def _edit(path, sql: str) -> None:
    conn = sqlite3.connect(path)
    conn.execute(sql)
    conn.commit()
    conn.close()


def test_a_checkpoint_covers_every_partition_and_verifies(ledger, checkpoints):
    _fill(ledger, [3, 0, 5, 1])
    cp = checkpoints.create(ledger)
    assert cp.seq == 1 and [h.size for h in cp.heads] == [3, 0, 5, 1]
    assert cp.vector() == (2, -1, 4, 0) == ledger.heads()
    assert checkpoints.verify(ledger).ok
    _fill(ledger, [1, 2, 0, 0], "u")
    cp2 = checkpoints.create(ledger)
    assert cp2.seq == 2 and cp2.root != cp.root
    report = checkpoints.verify(ledger)
    assert report.ok and report.checked == 2
    assert checkpoints.get(1) == cp and checkpoints.list() == [cp, cp2]


def test_an_edited_event_in_any_partition_is_found(tmp_path, ledger, checkpoints):
    _fill(ledger, [4, 4, 4, 4])
    checkpoints.create(ledger)
    _edit(
        partition_path(tmp_path / "data", 2),
        "UPDATE events SET payload = CAST(replace(CAST(payload AS TEXT), 'text 2 1', 'TEXT 2 1') AS BLOB) "
        "WHERE offset = 1",
    )
    report = checkpoints.verify(ledger)
    assert not report.ok and report.partition == 2
    assert "offset 1" in report.problem


def test_a_rewritten_partition_with_a_valid_chain_is_found(tmp_path, checkpoints):
    data = tmp_path / "data"
    plog = open_sqlite_partitions(data, N, synchronous="OFF")
    _fill(plog, [2, 3, 2, 2])
    checkpoints.create(plog)
    plog.close()
    for suffix in ("", "-wal", "-shm"):  # partition 1 rebuilt from scratch with other events
        partition_path(data, 1).with_name(partition_path(data, 1).name + suffix).unlink(missing_ok=True)
    plog = open_sqlite_partitions(data, N, synchronous="OFF")
    _fill(plog, [0, 3, 0, 0], "forged")
    assert plog.partition(1).verify().ok
    report = checkpoints.verify(plog)
    assert not report.ok and report.partition == 1 and "history was rewritten" in report.problem
    plog.close()


def test_a_truncated_partition_is_found(tmp_path, ledger, checkpoints):
    _fill(ledger, [2, 2, 2, 3])
    checkpoints.create(ledger)
    path = partition_path(tmp_path / "data", 3)
    _edit(path, "DELETE FROM events WHERE offset = 2")
    _edit(path, "DELETE FROM refs WHERE offset = 2")  # a careful truncation: the ref index too
    assert ledger.partition(3).verify().ok  # a shorter chain is still a chain ...
    report = checkpoints.verify(ledger)
    assert not report.ok and report.partition == 3 and "truncated" in report.problem  # ... the checkpoint knows


def test_edits_to_the_stored_checkpoints_are_found(tmp_path, ledger, checkpoints):
    _fill(ledger, [2, 1, 1, 1])
    checkpoints.create(ledger)
    checkpoints.create(ledger)
    store = tmp_path / "data" / "global-checkpoints.jsonl"
    original = store.read_bytes()
    lines = original.splitlines()

    first = orjson.loads(lines[0])
    first["partitions"][0]["size"] = 1  # claim less, keep the signed root
    store.write_bytes(orjson.dumps(first) + b"\n" + lines[1] + b"\n")
    assert "do not build its signed root" in checkpoints.verify(ledger).problem

    first = orjson.loads(lines[0])
    first["root"] = "00" * 32
    store.write_bytes(orjson.dumps(first) + b"\n" + lines[1] + b"\n")
    assert "signature is not valid" in checkpoints.verify(ledger).problem

    store.write_bytes(lines[1] + b"\n")
    assert "follows #0" in checkpoints.verify(ledger).problem

    store.write_bytes(original)
    other = Ed25519PrivateKey.generate().public_key()
    assert "signature is not valid" in checkpoints.verify(ledger, other).problem
    assert checkpoints.verify(ledger).ok


def test_inclusion_proofs_verify_from_the_proof_alone(ledger, checkpoints):
    _fill(ledger, [5, 1, 3, 8])
    cp = checkpoints.create(ledger)
    _fill(ledger, [2, 2, 2, 2], "later")  # events after the checkpoint do not change its proofs
    pub = checkpoints.signer.public_key()
    for k in range(N):
        events = list(ledger.partition(k).read(0, cp.heads[k].size - 1))
        for e in events:
            proof = checkpoints.inclusion_proof(ledger, cp, k, e.offset)
            assert verify_global_inclusion(proof, e.hash, cp, pub)
    e = next(ledger.partition(3).read(4, 4))
    proof = checkpoints.inclusion_proof(ledger, cp, 3, 4)
    assert not verify_global_inclusion(proof, next(ledger.partition(3).read(5, 5)).hash, cp, pub)  # another event
    assert not verify_global_inclusion(dataclasses.replace(proof, partition=2), e.hash, cp, pub)
    assert not verify_global_inclusion(dataclasses.replace(proof, offset=3), e.hash, cp, pub)
    bent = dataclasses.replace(proof, head_path=("11" * 32, *proof.head_path[1:]))
    assert not verify_global_inclusion(bent, e.hash, cp, pub)
    assert not verify_global_inclusion(proof, e.hash, cp, Ed25519PrivateKey.generate().public_key())
    forged = dataclasses.replace(cp, seq=cp.seq + 1)  # the signature covers the number
    assert not verify_global_inclusion(proof, e.hash, forged, pub)
    with pytest.raises(InvalidRequest, match="not covered"):
        checkpoints.inclusion_proof(ledger, cp, 1, 1)


def test_consistency_between_two_checkpoints(ledger, checkpoints):
    _fill(ledger, [3, 0, 2, 1])
    old = checkpoints.create(ledger)
    _fill(ledger, [1, 4, 0, 7], "more")
    new = checkpoints.create(ledger)
    pub = checkpoints.signer.public_key()
    proof = checkpoints.consistency_proof(ledger, old, new)
    assert verify_global_consistency(old, new, proof, pub)
    assert verify_global_consistency(old, old, checkpoints.consistency_proof(ledger, old, old), pub)
    assert not verify_global_consistency(new, old, proof, pub)
    paths = list(proof.paths)
    paths[3] = ("22" * 32, *paths[3][1:])
    assert not verify_global_consistency(old, new, dataclasses.replace(proof, paths=tuple(paths)), pub)
    with pytest.raises(InvalidRequest, match="shrank"):
        checkpoints.consistency_proof(ledger, new, old)


def test_a_forked_history_is_not_consistent(tmp_path, checkpoints):
    first = open_sqlite_partitions(tmp_path / "a", N, synchronous="OFF")
    _fill(first, [2, 2, 2, 2])
    old = checkpoints.create(first)
    fork = open_sqlite_partitions(tmp_path / "b", N, synchronous="OFF")  # same sizes, other events
    _fill(fork, [2, 2, 2, 2], "fork")
    _fill(fork, [1, 1, 1, 1], "next")
    new = checkpoints.create(fork)
    proof = checkpoints.consistency_proof(fork, old, new)
    assert not verify_global_consistency(old, new, proof, checkpoints.signer.public_key())
    first.close()
    fork.close()
