"""MemCube metadata, sharing, and the verifiable export / import round trip."""

from __future__ import annotations

import io

import orjson
import pytest

from ledger.errors import InvalidRequest, NotFound, StateError
from ledger.memos.cube_export import (
    ExportVerificationError,
    export_cube,
    import_cube,
    read_records,
    verify_export,
    write_export,
)
from ledger.memos.cubes import create_cube, get_cube, list_cubes, readable_cubes, share_cube, update_cube
from tests.memos_fixtures import new_ledger


@pytest.fixture
def two(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    return new_ledger(tmp_path / "a"), new_ledger(tmp_path / "b")


def _populate(ledger):
    create_cube(ledger, "alice", "alice", embedder="all-MiniLM-L6-v2", llm="smollm2", metadata={"team": "x"})
    create_cube(ledger, "bob", "bob", visibility="shared")
    ids = []
    for i in range(4):  # interleave the two cubes in the global chain
        ids.append(ledger.add("alice", f"Alice fact number {i}: she likes tea {i}", "alice").id)
        ledger.add("bob", f"Bob fact {i}", "bob")
    ledger.change_state(ids[0], "activated", "alice")
    merged = ledger.merge(ids[1:3], "Alice likes tea (merged)", "alice", reason="dup")
    ledger.get(ids[0], actor="carol")  # a recorded read
    return ids, merged


def test_cube_metadata_fold_update_share_and_visibility(two):
    ledger, _ = two
    info = create_cube(ledger, "alice", "alice", embedder="emb-1", llm="llm-1", metadata={"a": 1})
    assert (info.owner, info.visibility, info.embedder, info.llm) == ("alice", "private", "emb-1", "llm-1")
    with pytest.raises(StateError, match="already exists"):
        create_cube(ledger, "alice", "mallory")
    with pytest.raises(InvalidRequest, match="visibility"):
        create_cube(ledger, "x", "x", visibility="public")
    before = ledger.head()
    update_cube(ledger, "alice", "alice", llm="llm-2", metadata={"b": 2})
    with pytest.raises(StateError, match="only the owner"):
        update_cube(ledger, "alice", "mallory", visibility="shared")
    with pytest.raises(InvalidRequest, match="nothing to update"):
        update_cube(ledger, "alice", "alice")
    assert get_cube(ledger, "alice").llm == "llm-2"
    assert get_cube(ledger, "alice").metadata == {"a": 1, "b": 2}
    assert get_cube(ledger, "alice", as_of=before).llm == "llm-1"  # metadata as of an offset
    create_cube(ledger, "public", "pat", visibility="shared")
    ledger.add("solo", "x", "sam")  # cube created on first use: private to sam
    assert readable_cubes(ledger, "bob") == ["public"]
    share_cube(ledger, "alice", "bob", "alice")
    assert readable_cubes(ledger, "bob") == ["alice", "public"]
    assert get_cube(ledger, "alice").shared_with == ("bob",)
    with pytest.raises(StateError, match="only the owner"):
        share_cube(ledger, "alice", "eve", "bob")
    share_cube(ledger, "alice", "bob", "alice", unshare=True)
    assert readable_cubes(ledger, "bob") == ["public"]
    with pytest.raises(StateError, match="not shared"):
        share_cube(ledger, "alice", "bob", "alice", unshare=True)
    assert [c.cube for c in list_cubes(ledger)] == ["alice", "public", "solo"]
    assert readable_cubes(ledger, "sam") == ["public", "solo"]
    with pytest.raises(NotFound):
        get_cube(ledger, "nope")


def test_export_import_round_trip_verifies_and_is_searchable(two):
    src, dst = two
    ids, merged = _populate(src)
    buf = io.BytesIO()
    n = write_export(src, "alice", buf)
    records = read_records(buf.getvalue().splitlines())
    header = records[0]
    assert n == header["events"] == len(list(src.log.read_stream("alice")))
    verified = verify_export(records)
    assert [e.offset for e in verified.events] == [e.offset for e in src.log.read_stream("alice")]
    # the global chain interleaves cubes: the alice events are not contiguous
    offsets = [e.offset for e in verified.events]
    assert offsets[-1] - offsets[0] + 1 > len(offsets)

    dst.add("other", "pre-existing memory", "zed")
    res = import_cube(dst, records, "importer")
    assert res.events == n and not res.already_imported
    assert dst.log.verify().ok
    mems_src = {k: (v.text, v.state, v.sources) for k, v in src.cube_memories("alice").items()}
    mems_dst = {k: (v.text, v.state, v.sources) for k, v in dst.cube_memories("alice").items()}
    assert mems_dst == mems_src and merged.id in mems_dst
    assert dst.get(merged.id).sources == ids[1:3]
    info = get_cube(dst, "alice")
    assert info.embedder == "all-MiniLM-L6-v2" and info.imported_from["merkle_root"] == header["merkle_root"]
    # provenance: same event ids and causation; correlation = the cube.imported event
    stored = list(dst.log.read_stream("alice"))
    assert [e.event_id for e in stored[:-1]] == [e.event_id for e in verified.events]
    assert all(e.correlation_id == res.import_event_id for e in stored)
    assert stored[-1].type == "cube.imported" and stored[-1].payload["source_ledger"] == header["source_ledger"]
    # searchable at once: a keyword scan over the imported cube finds the memory
    hits = [m.memory_id for m in dst.cube_memories("alice").values() if "tea" in (m.text or "")]
    assert merged.id in hits
    # re-importing the same file is a no-op; the export of the import verifies too
    again = import_cube(dst, records, "importer")
    assert again.already_imported and dst.head() == res.last_offset + 1
    verify_export(list(export_cube(dst, "alice")))


def test_tampered_exports_are_rejected(two):
    src, dst = two
    _populate(src)
    records = list(export_cube(src, "alice"))

    def mutate(fn):
        recs = orjson.loads(orjson.dumps(records))
        fn(recs)
        return recs

    def edit_text(r):
        r[3]["event"]["payload"]["text"] = "Alice likes coffee"

    def drop_middle(r):
        del r[3]
        r[0]["events"] -= 1

    def forge_rehash(r):  # change content and recompute the event hash: the Merkle proof catches it
        from ledger.canonical import canonical_bytes, chain_hash

        e = r[3]["event"]
        e["payload"]["text"] = "forged"
        e["hash"] = chain_hash(
            e["prev_hash"],
            e["offset"],
            e["stream"],
            e["version"],
            e["event_id"],
            e["type"],
            e["schema_version"],
            e["ts_us"],
            e["actor"],
            e["causation_id"],
            e["correlation_id"],
            canonical_bytes(e["payload"]),
        )

    def bad_hash(r):
        r[2]["event"]["hash"] = "zz"

    def bad_proof(r):
        r[2]["proof"][0] = "00" * 32

    cases = [
        (edit_text, "does not match its hash"),
        (drop_middle, "events missing"),
        (forge_rehash, "inclusion proof"),
        (bad_proof, "inclusion proof"),
        (bad_hash, "64 hex digits"),
    ]
    for fn, msg in cases:
        with pytest.raises(ExportVerificationError, match=msg):
            import_cube(dst, mutate(fn), "importer")
    assert dst.head() == -1  # nothing was imported
    with pytest.raises(ExportVerificationError, match="expected root"):
        verify_export(records, expected_root="ab" * 32)
    verify_export(records, expected_root=records[0]["merkle_root"])
    with pytest.raises(ExportVerificationError, match="not valid JSON"):
        read_records([b'{"format": 1}', b"{oops"])


def test_import_refuses_existing_cube_and_export_as_of(two):
    src, dst = two
    _populate(src)
    mid_offset = next(e.offset for e in src.log.read_stream("alice") if e.type == "memory.merged") - 1
    early = list(export_cube(src, "alice", as_of=mid_offset))
    assert all(r["event"]["offset"] <= mid_offset for r in early[1:])
    assert early[0]["tree_size"] == mid_offset + 1
    verify_export(early)
    dst.add("alice", "someone else's alice", "zed")
    with pytest.raises(InvalidRequest, match="already exists"):
        import_cube(dst, early, "importer")
    with pytest.raises(NotFound):
        list(export_cube(src, "nobody"))


def test_signed_export_anchors_the_root_in_a_checkpoint(tmp_path, two):
    from ledger.config import Config
    from ledger.governance.checkpoints import Checkpoints

    src, dst = two
    src.config = Config(tmp_path / "a", {})
    _populate(src)
    early = src.head() - 2
    records = list(export_cube(src, "alice", as_of=early, sign=True))  # the checkpoint covers the whole log
    anchor = records[0]["anchor"]
    # the checkpoint covers the whole log as it was; its own record in the log follows it
    assert anchor["checkpoint"]["log_size"] == src.head() > records[0]["tree_size"]
    assert anchor["consistency_proof"]
    pem = Checkpoints.for_config(src.config).signer.public_key_pem()
    verify_export(records, trusted_public_key_pem=pem)
    # a different trusted key is refused, and so is an unsigned export when a key is required
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    other = (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    with pytest.raises(ExportVerificationError, match="signature does not verify with the trusted key"):
        verify_export(records, trusted_public_key_pem=other)
    with pytest.raises(ExportVerificationError, match="not signed"):
        verify_export(list(export_cube(src, "alice")), trusted_public_key_pem=pem)
    # a root that is not a prefix of the signed tree is refused even if every event is re-proved
    forged = orjson.loads(orjson.dumps(records))
    forged[0]["anchor"]["consistency_proof"][0] = "11" * 32
    with pytest.raises(ExportVerificationError, match="not a prefix"):
        verify_export(forged, trusted_public_key_pem=pem)
    tampered = orjson.loads(orjson.dumps(records))
    tampered[0]["anchor"]["checkpoint"]["root"] = "22" * 32
    with pytest.raises(ExportVerificationError, match="signature does not verify"):
        verify_export(tampered)
    res = import_cube(dst, records, "importer", trusted_public_key_pem=pem)
    assert res.events == records[0]["events"]
