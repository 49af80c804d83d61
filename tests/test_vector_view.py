"""Vector view behaviour: exactly-once, cache reuse, filters, model changes, overlays."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from vector_events import make_event  # noqa: E402

from ledger import events as ev  # noqa: E402
from ledger.errors import InvalidRequest  # noqa: E402
from projections.base import Projection, VectorSearch, rebuild  # noqa: E402
from projections.vector.embedding import HashingEmbedder  # noqa: E402
from projections.vector.embedding_cache import EmbeddingCache, embed_cached  # noqa: E402
from projections.vector.view import VectorView  # noqa: E402


class CountingEmbedder(HashingEmbedder):
    def __init__(self) -> None:
        super().__init__(dim=32)
        self.texts_embedded = 0
        self.calls = 0

    def embed(self, texts):
        self.calls += 1
        self.texts_embedded += len(texts)
        return super().embed(texts)


def _events():
    e = []

    def add(stream, t, p):
        e.append(make_event(len(e), stream, t, p))

    add("work", ev.MEMORY_ADDED, {"memory_id": "a", "text": "coffee meeting in paris", "metadata": {"k": 1}})
    add("work", ev.MEMORY_ADDED, {"memory_id": "b", "text": "tea meeting in berlin", "state": "activated"})
    add("home", ev.MEMORY_ADDED, {"memory_id": "c", "text": "the dog likes coffee"})
    add("work", ev.MEMORY_STATE_CHANGED, {"memory_id": "a", "from": "generated", "to": "archived"})  # 3
    add("home", ev.MEMORY_UPDATED, {"memory_id": "c", "text": "the cat sleeps"})  # 4
    add("work", ev.MEMORY_MERGED, {"memory_id": "d", "sources": ["a", "b"], "text": "meetings in paris and berlin"})
    add("work", ev.MEMORY_READ, {"memory_ids": ["d"], "operation": "get", "as_of": None})  # 6
    return e


@pytest.fixture
def view(tmp_path):
    v = VectorView(tmp_path / "vector.sqlite", HashingEmbedder(dim=32))
    yield v
    v.close()


def test_implements_the_ports(view):
    assert isinstance(view, Projection)
    assert isinstance(view, VectorSearch)


def test_filters_by_cube_state_and_offset(view):
    view.apply_batch(_events())
    q = view.embed_query("coffee")
    assert {m for m, _ in view.vector_search(q, 10)} == {"a", "b", "c", "d"}
    assert {m for m, _ in view.vector_search(q, 10, cubes=["home"])} == {"c"}
    assert {m for m, _ in view.vector_search(q, 10, cubes="home")} == {"c"}
    assert view.vector_search(q, 10, cubes=["nope"]) == []
    assert {m for m, _ in view.vector_search(q, 10, states=["merged"])} == {"a", "b"}
    assert {m for m, _ in view.vector_search(q, 10, states=["archived"], as_of=4)} == {"a"}
    assert {m for m, _ in view.vector_search(q, 10, states=["archived"])} == set()
    assert [m for m, _ in view.vector_search(q, 10, as_of=1)] == ["a", "b"]
    # as of 2, "c" still says "the dog likes coffee" and ranks first for "dog coffee"
    assert view.vector_search(view.embed_query("dog coffee"), 1, as_of=2)[0][0] == "c"
    assert view.vector_search(view.embed_query("dog coffee"), 1, cubes=["home"])[0][1] < 0.5
    rows = view.rows_as_of(["a", "c", "zz"], as_of=3)
    assert set(rows) == {"a", "c"} and rows["a"].state == "archived" and rows["a"].metadata == {"k": 1}
    assert view.provenance("a") == [0, 3, 5]
    assert view.checkpoint() == 6


def test_same_batch_twice_and_overlapping_redelivery(view, tmp_path):
    events = _events()
    view.apply_batch(events[:4])
    view.apply_batch(events[:4])
    view.apply_batch(events[2:])
    view.apply_batch(events)
    clean = VectorView(tmp_path / "clean.sqlite", HashingEmbedder(dim=32))
    clean.apply_batch(events)
    assert view.stats() == clean.stats()
    q = view.embed_query("paris meeting")
    for as_of in range(len(events)):
        assert view.vector_search(q, 10, as_of=as_of) == clean.vector_search(q, 10, as_of=as_of)
    clean.close()


def test_out_of_order_batch_is_refused_and_writes_nothing(view):
    events = _events()
    with pytest.raises(InvalidRequest):
        view.apply_batch([events[1], events[0]])
    assert view.checkpoint() == -1 and view.stats()["versions"] == 0


def test_rebuild_uses_the_cache(tmp_path):
    emb = CountingEmbedder()
    cache = EmbeddingCache(tmp_path / "cache.sqlite")
    v = VectorView(tmp_path / "v.sqlite", emb, cache=cache)
    events = _events()
    v.apply_batch(events)
    first = emb.texts_embedded
    assert first == 5  # five distinct texts
    q = v.embed_query("coffee")
    before = v.vector_search(q, 10)
    rebuild(lambda s, e: iter(events[s : (e + 1) if e is not None else None]), v)
    assert emb.texts_embedded == first + 1  # only the query text, embedded once, was new
    assert v.vector_search(q, 10) == before
    v.close()
    other = VectorView(tmp_path / "other.sqlite", emb, cache=cache)
    other.apply_batch(events)
    assert emb.texts_embedded == first + 1
    other.close()
    cache.close()


def test_embed_cached_embeds_each_distinct_text_once(tmp_path):
    emb = CountingEmbedder()
    cache = EmbeddingCache(tmp_path / "c.sqlite")
    out = embed_cached(emb, ["x y", "x y", "z"] * 300, cache, batch_size=1)
    assert out.shape == (900, 32) and emb.texts_embedded == 2 and emb.calls == 2
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    assert cache.count(emb.model_id) == 2
    embed_cached(emb, ["z", "x y"], cache)
    assert emb.texts_embedded == 2
    cache.close()


def test_a_view_built_with_another_model_is_rebuilt(tmp_path):
    v = VectorView(tmp_path / "v.sqlite", HashingEmbedder(dim=32))
    v.apply_batch(_events())
    v.close()
    v = VectorView(tmp_path / "v.sqlite", HashingEmbedder(dim=48))
    assert v.checkpoint() == -1 and v.stats()["versions"] == 0
    v.close()


def test_score_texts_for_overlay_candidates(view):
    q = view.embed_query("coffee paris")
    scores = view.score_texts(q, ["coffee in paris", "the cat sleeps", "coffee in paris"])
    assert scores[0] == pytest.approx(scores[2]) and scores[0] > scores[1]
    assert view.score_texts(q, []) == []


def test_sealed_memories_without_opener_have_no_vector(view):
    sealed = {"subject": "s", "key_id": "k", "alg": "AES-256-GCM", "nonce": "0", "ciphertext": "secret"}
    view.apply_batch(
        [
            make_event(0, "c", ev.MEMORY_ADDED, {"memory_id": "x", "sealed": sealed, "subject": "s"}),
            make_event(1, "c", ev.MEMORY_ADDED, {"memory_id": "y", "text": "secret"}),
        ]
    )
    assert [m for m, _ in view.vector_search(view.embed_query("secret"), 5)] == ["y"]
    assert view.rows_as_of(["x"])["x"].has_vector is False


def test_second_process_view_sees_new_rows(tmp_path):
    emb = HashingEmbedder(dim=32)
    writer = VectorView(tmp_path / "v.sqlite", emb)
    reader = VectorView(tmp_path / "v.sqlite", emb)
    events = _events()
    writer.apply_batch(events[:2])
    q = reader.embed_query("coffee")
    assert {m for m, _ in reader.vector_search(q, 10)} == {"a", "b"}
    columns = reader._mem
    for cut in (4, 5, 7):
        writer.apply_batch(events[:cut])
        fresh = VectorView(tmp_path / "v.sqlite", emb)
        for as_of in range(cut):
            assert reader.vector_search(q, 10, as_of=as_of) == fresh.vector_search(q, 10, as_of=as_of)
        fresh.close()
    assert reader._mem is columns  # caught up incrementally, not reloaded
    assert {m for m, _ in reader.vector_search(q, 10)} == {"a", "b", "c", "d"}
    writer.apply_batch(
        [
            make_event(7, "work", ev.MEMORY_ADDED, {"memory_id": "s", "text": "coffee", "subject": "x"}),
            make_event(8, "_system", ev.SUBJECT_FORGOTTEN, {"subject": "x"}),
        ]
    )
    assert "s" not in {m for m, _ in reader.vector_search(q, 10)}
    assert reader._mem is not columns  # vectors were erased: full reload
    writer.close()
    reader.close()


def test_open_vector_view_from_configuration(tmp_path):
    from ledger.config import load_config
    from projections.vector.setup import open_vector_view

    (tmp_path / "memledger.toml").write_text('[views.vector]\nembedder = "hashing"\nann = "none"\n')
    v = open_vector_view(tmp_path, load_config(tmp_path))
    assert v.embedder.model_id.startswith("hashing") and v.ann_mode is None
    assert v.path == tmp_path / "views" / "vector.sqlite"
    v.close()
    (tmp_path / "memledger.toml").write_text('[views.vector]\nembedder = "nope"\n')
    with pytest.raises(InvalidRequest, match="unknown embedder"):
        open_vector_view(tmp_path, load_config(tmp_path))
