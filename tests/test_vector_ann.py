"""The approximate (usearch HNSW) path: agrees with exact search, honours as-of and filters, is derived data."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from vector_events import make_event, sealed  # noqa: E402

from ledger import events as ev  # noqa: E402
from projections.vector import ann as vector_ann  # noqa: E402
from projections.vector.embedding import normalise_rows  # noqa: E402
from projections.vector.embedding_cache import EmbeddingCache  # noqa: E402
from projections.vector.view import VectorView  # noqa: E402

pytestmark = pytest.mark.skipif(not vector_ann.AVAILABLE, reason="usearch is not installed")
DIM = 32


class TableEmbedder:
    """Vectors from a fixed table: text "t<i>" -> row i."""

    model_id = "table-test"
    dim = DIM

    def __init__(self, table: np.ndarray):
        self.table = table

    def embed(self, texts):
        return np.stack([self.table[int(t[1:])] for t in texts])


def _events(n: int, rng):
    e = []
    for i in range(n):
        e.append(make_event(len(e), f"c{i % 4}", ev.MEMORY_ADDED, {"memory_id": f"m{i}", "text": f"t{i}"}))
    for i in rng.choice(n, n // 3, replace=False):  # a third get a new text later
        e.append(make_event(len(e), f"c{i % 4}", ev.MEMORY_UPDATED, {"memory_id": f"m{i}", "text": f"t{n + i}"}))
    return e


@pytest.fixture
def setup(tmp_path):
    rng = np.random.default_rng(5)
    n = 1500
    table = normalise_rows(rng.standard_normal((2 * n, DIM), dtype=np.float32))
    emb = TableEmbedder(table)
    events = _events(n, rng)
    cache = EmbeddingCache(tmp_path / "cache.sqlite")
    approx = VectorView(tmp_path / "ann.sqlite", emb, cache=cache, exact_threshold=0, ann_min_fraction=0.0)
    exact = VectorView(tmp_path / "exact.sqlite", emb, cache=cache, ann=None)
    for i in range(0, len(events), 400):
        approx.apply_batch(events[i : i + 400])
        exact.apply_batch(events[i : i + 400])
    approx.build_index()
    queries = normalise_rows(rng.standard_normal((30, DIM), dtype=np.float32))
    yield approx, exact, queries, n, events, tmp_path
    approx.close()
    exact.close()
    cache.close()


def _recall(a, b):
    return len({m for m, _ in a} & {m for m, _ in b}) / max(1, len(b))


def test_ann_agrees_with_exact_at_head_and_as_of(setup):
    approx, exact, queries, n, _, _ = setup
    recalls = []
    for q in queries:
        for kw in ({}, {"as_of": n - 1}, {"as_of": n // 2}, {"cubes": ["c1", "c2"]}):
            a, b = approx.vector_search(q, 10, **kw), exact.vector_search(q, 10, **kw)
            recalls.append(_recall(a, b))
            # every ANN hit is a row valid for the query, scored exactly
            exact_scores = dict(exact.vector_search(q, 5000, **kw))
            for m, s in a:
                assert s == pytest.approx(exact_scores[m], abs=1e-5)
    assert approx._ann is not None and len(approx._ann) == n + n // 3
    assert np.mean(recalls) >= 0.95


def test_ann_index_is_persisted_and_rebuilt_after_forget(setup):
    approx, _, queries, n, events, tmp_path = setup
    approx.vector_search(queries[0], 10)
    approx.close()
    index_file = tmp_path / "ann.sqlite.usearch"
    assert index_file.exists()
    table = approx.embedder.table
    again = VectorView(tmp_path / "ann.sqlite", approx.embedder, exact_threshold=0, ann_min_fraction=0.0)
    again.vector_search(queries[0], 10)
    assert again._ann_saved == again._ann.covered  # loaded from disk, not rebuilt
    # a forgotten subject's vector leaves the index file too
    rng = np.random.default_rng(99)
    zoe = normalise_rows(rng.standard_normal((1, DIM), dtype=np.float32))[0]
    again.embedder.table = np.vstack([table, zoe])
    zoe_text = f"t{len(table)}"
    again.opener = lambda s: {"text": s["ciphertext"]}
    again.apply_batch(
        [
            make_event(
                len(events),
                "c0",
                ev.MEMORY_ADDED,
                {"memory_id": "s1", "sealed": sealed("zoe", zoe_text), "subject": "zoe"},
            )
        ]
    )
    assert again.vector_search(zoe, 1)[0][0] == "s1"
    again.build_index()
    assert zoe.astype(np.float16).tobytes() in index_file.read_bytes()
    again.opener = lambda s: None  # the key is destroyed with the erasure
    again.apply_batch([make_event(len(events) + 1, "_system", ev.SUBJECT_FORGOTTEN, {"subject": "zoe"})])
    assert not index_file.exists()
    assert again._ann is None
    assert "s1" not in {m for m, _ in again.vector_search(zoe, 10)}
    again.build_index()
    assert index_file.exists() and zoe.astype(np.float16).tobytes() not in index_file.read_bytes()
    assert again.build_index()["vectors"] == n + n // 3
    again.close()


def test_queries_never_wait_for_indexing(tmp_path):
    rng = np.random.default_rng(8)
    table = normalise_rows(rng.standard_normal((600, DIM), dtype=np.float32))
    emb = TableEmbedder(table)
    v = VectorView(tmp_path / "v.sqlite", emb, exact_threshold=0, ann_min_fraction=0.0)
    exact = VectorView(tmp_path / "e.sqlite", emb, ann=None, cache=v.cache)
    events = [make_event(i, "c", ev.MEMORY_ADDED, {"memory_id": f"m{i}", "text": f"t{i}"}) for i in range(600)]
    v.apply_batch(events)
    exact.apply_batch(events)
    q = table[7]
    assert v.vector_search(q, 5) == exact.vector_search(q, 5)  # answered exactly while the index builds
    assert v._indexer is not None
    v._indexer.join(timeout=60)
    assert v._ann is not None and len(v._ann) == 600
    assert v.vector_search(q, 5)[0][0] == "m7"
    # new rows are scored exactly until indexed
    v.apply_batch([make_event(600, "c", ev.MEMORY_ADDED, {"memory_id": "new", "text": "t7"})])
    assert {m for m, _ in v.vector_search(q, 2)} == {"m7", "new"}
    exact.close()
    v.close()
