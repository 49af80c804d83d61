"""As-of queries on the vector view equal the same query on a fresh fold of events 0..N."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))
from vector_events import CUBES, WORDS, Opener, event_sequences  # noqa: E402

from ledger.memory_state import fold  # noqa: E402
from projections.vector.embedding import HashingEmbedder  # noqa: E402
from projections.vector.embedding_cache import EmbeddingCache  # noqa: E402
from projections.vector.view import VectorView  # noqa: E402

EMB = HashingEmbedder(dim=64)
QUERIES = ["coffee paris", "dog", "alpha beta gamma", "blue tea meeting"]
STATE_FILTERS = [None, ["generated", "activated"], ["merged"]]


def _search_all(view: VectorView, as_of: int | None, q: np.ndarray, cubes, states):
    return view.vector_search(q, 1000, cubes=cubes, as_of=as_of, states=states)


def _same(a, b) -> bool:
    if [m for m, _ in a] != [m for m, _ in b]:
        return False
    return all(abs(x - y) < 1e-5 for (_, x), (_, y) in zip(a, b, strict=True))


def _truth(events, n, opener, q, cubes, states):
    """Brute force from THE definition of memory state (ledger.memory_state.fold)."""
    st_ = fold(events[: n + 1], opener)
    hits = []
    for mid, s in st_.items():
        if not s.exists or not s.text:
            continue
        if cubes is not None and s.cube not in cubes:
            continue
        if states is not None and s.state not in states:
            continue
        hits.append((mid, float(EMB.embed([s.text])[0] @ q)))
    hits.sort(key=lambda h: (-h[1], h[0]))
    return hits


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(
    data=event_sequences(),
    n_pick=st.integers(0, 10_000),
    batch=st.integers(1, 7),
    qi=st.integers(0, 3),
    ci=st.integers(0, 2),
    si=st.integers(0, 2),
)
def test_as_of_equals_fresh_fold(tmp_path_factory, data, n_pick, batch, qi, ci, si):
    events, forgotten = data
    n = n_pick % len(events)
    opener = Opener(forgotten)  # keys of forgotten subjects are gone *now*, for every replay
    d = tmp_path_factory.mktemp("v")
    cache = EmbeddingCache(d / "cache.sqlite")
    full = VectorView(d / "full.sqlite", EMB, opener, cache=cache)
    fresh = VectorView(d / "fresh.sqlite", EMB, opener, cache=cache)
    try:
        for i in range(0, len(events), batch):
            full.apply_batch(events[i : i + batch])
        fresh.apply_batch(events[: n + 1])
        q = EMB.embed([QUERIES[qi]])[0]
        cubes = [None, [CUBES[0]], CUBES][ci]
        states = STATE_FILTERS[si]
        as_of = _search_all(full, n, q, cubes, states)
        head_of_fresh = _search_all(fresh, None, q, cubes, states)
        assert _same(as_of, head_of_fresh), (as_of, head_of_fresh)
        assert _same(as_of, _truth(events, n, opener, q, cubes, states))
        # small k: a prefix of the full ranking
        assert _same(full.vector_search(q, 2, cubes=cubes, as_of=n, states=states), as_of[:2])
        # head of the full view agrees with the full fold
        assert _same(
            _search_all(full, None, q, cubes, states), _truth(events, len(events) - 1, opener, q, cubes, states)
        )
        # provenance = the offsets of the events that changed the memory (as the fold records them)
        states_n = fold(events[: n + 1], opener)
        for mid, hit_score in as_of[:3]:
            assert full.provenance(mid, as_of=n) == states_n[mid].event_offsets
            assert hit_score <= 1.0001
    finally:
        full.close()
        fresh.close()
        cache.close()


def test_view_reopened_answers_the_same(tmp_path):
    from vector_events import make_event

    from ledger import events as ev

    events = [
        make_event(i, "c1", ev.MEMORY_ADDED, {"memory_id": f"m{i}", "text": f"{w} {WORDS[(i + 3) % 12]}"})
        for i, w in enumerate(WORDS)
    ]
    events.append(make_event(len(events), "c1", ev.MEMORY_UPDATED, {"memory_id": "m0", "text": "dog cat"}))
    v = VectorView(tmp_path / "v.sqlite", EMB)
    v.apply_batch(events)
    q = EMB.embed(["dog"])[0]
    head, past = v.vector_search(q, 5), v.vector_search(q, 5, as_of=5)
    v.close()
    v2 = VectorView(tmp_path / "v.sqlite", EMB)
    assert v2.checkpoint() == len(events) - 1
    assert v2.vector_search(q, 5) == head
    assert v2.vector_search(q, 5, as_of=5) == past
    assert head[0][0] == "m0"
    assert all(m != "m0" for m, _ in past) or past[0][0] != "m0"
    v2.close()


def test_bad_queries_are_refused(tmp_path):
    from ledger.errors import InvalidRequest

    v = VectorView(tmp_path / "v.sqlite", EMB)
    with pytest.raises(InvalidRequest):
        v.vector_search(np.zeros(3), 5)
    with pytest.raises(InvalidRequest, match="catch it up"):
        v.vector_search(np.zeros(64), 5, as_of=10)
    assert v.vector_search(np.zeros(64), 5, as_of=-1) == []
    with pytest.raises(InvalidRequest, match="lifecycle state"):
        v.vector_search(np.ones(64), 5, states=["activ"])
    with pytest.raises(InvalidRequest, match="NaN"):
        v.vector_search(np.full(64, np.nan), 5)
    v.close()
