"""Right to be forgotten: a subject's rows, vectors and cache entries leave every file of the view."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from vector_events import make_event, sealed  # noqa: E402

from ledger import events as ev  # noqa: E402
from projections.vector.embedding import HashingEmbedder  # noqa: E402
from projections.vector.embedding_cache import text_hash  # noqa: E402
from projections.vector.view import VectorView  # noqa: E402

MARKER = "MARKER-ALICE-7f3a9c"
ALICE_TEXT = "alice lives at 12 rue des lilas and loves jazz"


class KeyStore:
    """Fake sealing: subjects lose their key when forgotten."""

    def __init__(self) -> None:
        self.destroyed: set[str] = set()

    def __call__(self, s):
        if s["subject"] in self.destroyed:
            return None
        return {"text": s["ciphertext"], "metadata": {"note": MARKER if s["subject"] == "alice" else "other"}}


def _files_contain(directory: Path, needle: bytes) -> list[str]:
    return [p.name for p in directory.iterdir() if p.is_file() and needle in p.read_bytes()]


def test_forget_purges_rows_vectors_and_cache(tmp_path):
    keys = KeyStore()
    emb = HashingEmbedder(dim=64)
    v = VectorView(tmp_path / "vector.sqlite", emb, keys)
    events = [
        make_event(
            0, "c", ev.MEMORY_ADDED, {"memory_id": "a1", "sealed": sealed("alice", ALICE_TEXT), "subject": "alice"}
        ),
        make_event(
            1,
            "c",
            ev.MEMORY_ADDED,
            {"memory_id": "b1", "sealed": sealed("bob", "bob likes jazz too"), "subject": "bob"},
        ),
        make_event(
            2, "c", ev.MEMORY_UPDATED, {"memory_id": "a1", "sealed": sealed("alice", ALICE_TEXT + " and blues")}
        ),
        make_event(3, "c", ev.MEMORY_ADDED, {"memory_id": "p1", "text": "public note about jazz"}),
        make_event(
            4,
            "c",
            ev.MEMORY_MERGED,
            {
                "memory_id": "a2",
                "sources": ["a1", "p1"],
                "subject": "alice",
                "sealed": sealed("alice", "alice merged memory about jazz"),
            },
        ),
    ]
    v.apply_batch(events)
    q = v.embed_query("alice jazz")
    assert {m for m, _ in v.vector_search(q, 10)} == {"a1", "b1", "p1", "a2"}
    alice_vec = emb.embed([ALICE_TEXT])[0].tobytes()
    digest = text_hash(ALICE_TEXT)
    # the test can fail: before forgetting, the files do hold alice's data
    assert _files_contain(tmp_path, MARKER.encode())
    assert _files_contain(tmp_path, alice_vec)
    assert _files_contain(tmp_path, digest)

    keys.destroyed.add("alice")
    v.apply_batch([make_event(5, "_system", ev.SUBJECT_FORGOTTEN, {"subject": "alice"})])

    assert {m for m, _ in v.vector_search(q, 10)} == {"b1", "p1"}
    for as_of in range(5):
        assert not {"a1", "a2"} & {m for m, _ in v.vector_search(q, 10, as_of=as_of)}
    assert v.rows_as_of(["a1", "a2"], as_of=4) == {}
    assert v.provenance("a1") == []
    assert _files_contain(tmp_path, MARKER.encode()) == []
    assert _files_contain(tmp_path, alice_vec) == []
    assert _files_contain(tmp_path, digest) == []
    assert _files_contain(tmp_path, text_hash("alice merged memory about jazz")) == []
    # the public source of the merge keeps its vector; p1 moved to ``merged`` before the erasure
    assert v.rows_as_of(["p1"])["p1"].state == "merged"
    # a rebuild after the key is gone reaches the same view
    v2 = VectorView(tmp_path / "again.sqlite", emb, keys, cache=v.cache)
    v2.apply_batch(events + [make_event(5, "_system", ev.SUBJECT_FORGOTTEN, {"subject": "alice"})])
    for as_of in range(6):
        assert v2.vector_search(q, 10, as_of=as_of) == v.vector_search(q, 10, as_of=as_of)
    v2.close()
    v.close()


def test_forget_in_the_middle_of_a_batch_and_later_events(tmp_path):
    keys = KeyStore()
    keys.destroyed.add("alice")  # replay after the erasure: the key is already gone
    v = VectorView(tmp_path / "vector.sqlite", HashingEmbedder(dim=32), keys)
    v.apply_batch(
        [
            make_event(
                0, "c", ev.MEMORY_ADDED, {"memory_id": "a1", "sealed": sealed("alice", "x"), "subject": "alice"}
            ),
            make_event(1, "c", ev.MEMORY_ADDED, {"memory_id": "p", "text": "plain"}),
            make_event(2, "_system", ev.SUBJECT_FORGOTTEN, {"subject": "alice"}),
            make_event(3, "c", ev.MEMORY_STATE_CHANGED, {"memory_id": "a1", "from": "generated", "to": "archived"}),
            make_event(4, "c", ev.MEMORY_UPDATED, {"memory_id": "p", "text": "plain again"}),
        ]
    )
    assert v.stats()["versions"] == 2
    assert [m for m, _ in v.vector_search(np.ones(32) / np.sqrt(32), 5)] == ["p"]
    v.close()
