"""The Elasticsearch keyword + vector view: temporal answers, idempotent redelivery, crash recovery."""

from __future__ import annotations

import pytest

from projections.base import catch_up, rebuild
from projections.es_views import ElasticsearchView
from tests.dist_env import endpoint, unique_name
from tests.dist_fixtures import WordHashEmbedder
from tests.fake_sealer import FakeSealer
from tests.ledgers import make_ledger

pytestmark = pytest.mark.integration


@pytest.fixture
def ledger(tmp_path):
    lg = make_ledger(tmp_path / "log.sqlite", record_reads=False)
    yield lg
    lg.log.close()


@pytest.fixture
def view(ledger):
    url = endpoint("elasticsearch")
    v = ElasticsearchView(url, ledger, index_prefix=unique_name("ml").lower(), embedder=WordHashEmbedder())
    yield v
    v.es.options(ignore_status=404).indices.delete(index=v.versions_index)
    v.es.options(ignore_status=404).indices.delete(index=v.meta_index)
    v.close()


def _docs(view):
    view.es.indices.refresh(index=view.versions_index)
    hits = list(view._scan({"match_all": {}}))
    return {h["_id"]: {k: v for k, v in h["_source"].items()} for h in hits}


def test_keyword_and_vector_search_are_temporal(ledger, view):
    a = ledger.add("work", "Caroline adopted a golden retriever puppy", "alice")
    ledger.add("work", "The quarterly budget review is on Friday", "alice")
    ledger.add("home", "Caroline bought a red bicycle", "bob")
    before = ledger.head()
    ledger.update(a.id, "Caroline adopted a grey kitten instead", "alice")
    catch_up(ledger.events, view)
    assert view.checkpoint() == ledger.head()

    now = view.keyword_search("puppy retriever", 5)
    assert a.id not in [m for m, _ in now]
    then = view.keyword_search("puppy retriever", 5, as_of=before)
    assert then and then[0][0] == a.id
    assert [m for m, _ in view.keyword_search("kitten", 5)] == [a.id]
    assert view.keyword_search("kitten", 5, as_of=before) == []
    # cube filter
    assert {m for m, _ in view.keyword_search("Caroline", 5, cubes=["home"])} == {
        m for m, _ in view.keyword_search("bicycle", 5)
    }
    # vector search: the current version is the kitten one, the old one the puppy
    emb = WordHashEmbedder()
    hits = view.vector_search(list(emb.embed(["grey kitten"])[0]), 3)
    assert hits[0][0] == a.id and 0 < hits[0][1] <= 1.0001
    old = view.vector_search(list(emb.embed(["golden retriever puppy"])[0]), 1, as_of=before)
    assert old[0][0] == a.id
    # every version is one document with a closed or open interval
    docs = _docs(view)
    assert docs[f"{a.id}@{a.offset}"]["valid_to"] == before + 1
    assert docs[f"{a.id}@{before + 1}"]["valid_to"] == 2**62


def test_states_filter_and_lifecycle(ledger, view):
    a = ledger.add("c", "archived note about tax forms", "alice")
    ledger.change_state(a.id, "activated", "alice")
    mid = ledger.head()
    ledger.change_state(a.id, "archived", "alice")
    catch_up(ledger.events, view)
    assert view.keyword_search("tax", 5, states=["activated"]) == []
    assert [m for m, _ in view.keyword_search("tax", 5, states=["activated"], as_of=mid)] == [a.id]
    assert [m for m, _ in view.keyword_search("tax", 5, states=["archived"])] == [a.id]


def test_redelivery_and_a_half_written_batch_end_like_one_clean_pass(ledger, view):
    for i in range(5):
        w = ledger.add("c", f"memory number {i} about apples", "alice")
        ledger.update(w.id, f"memory number {i} about pears", "alice")
    events = list(ledger.events())
    view.apply_batch(events[:4])
    # a process dies after writing the view rows of the next batch but before its checkpoint
    view._bulk(view._actions(events[4:8]))
    view.tracker.invalidate()
    assert view.checkpoint() == 3
    catch_up(ledger.events, view)  # redelivers 4..7 and the rest
    view.apply_batch(events)  # a full redelivery is skipped by the checkpoint
    crashed = _docs(view)
    assert rebuild(ledger.events, view) == ledger.head()
    assert _docs(view) == crashed
    assert len(crashed) == 10


def test_bad_queries_fail_clearly(view):
    from ledger.errors import InvalidRequest

    with pytest.raises(InvalidRequest, match="dimensions"):
        view.vector_search([1.0, 0.0], 3)
    assert view.keyword_search("   ", 3) == []
    with pytest.raises(InvalidRequest, match="index prefix"):
        ElasticsearchView(view.es, None, index_prefix="Bad Name")


def test_forgetting_a_subject_purges_its_text_from_every_version(tmp_path):
    import json

    from ledger.events import SYSTEM_STREAM, NewEvent

    sealer = FakeSealer()
    ledger = make_ledger(tmp_path / "log.sqlite", sealer=sealer, record_reads=False)
    view = ElasticsearchView(
        endpoint("elasticsearch"), ledger, index_prefix=unique_name("fg").lower(), embedder=WordHashEmbedder()
    )
    try:
        a = ledger.add("hr", "Dana's medical leave starts in March", "alice", subject="dana")
        ledger.update(a.id, "Dana's medical leave starts in April", "alice")
        other = ledger.add("hr", "Team offsite planning for March", "alice")
        catch_up(ledger.events, view)
        before = ledger.head()
        assert a.id in [m for m, _ in view.keyword_search("medical leave", 5)]
        sealer.forgotten.add("dana")
        ledger.append([NewEvent(SYSTEM_STREAM, "subject.forgotten", {"subject": "dana"}, "dpo")])
        catch_up(ledger.events, view)
        assert view.keyword_search("medical leave", 5) == []
        assert view.keyword_search("medical leave", 5, as_of=before) == []  # gone from the past too
        assert [m for m, _ in view.keyword_search("March", 5, as_of=before)] == [other.id]
        docs = _docs(view)
        dana = [d for d in docs.values() if d["memory_id"] == a.id]
        assert len(dana) == 2 and all(d["text"] is None and "embedding" not in d for d in dana)
        assert not any("medical" in json.dumps(d) for d in docs.values())
    finally:
        view.es.options(ignore_status=404).indices.delete(index=[view.versions_index, view.meta_index])
        view.close()
        ledger.log.close()


def test_vector_top_k_equals_the_exact_embedded_view(tmp_path, ledger, view):
    """Issue 16 defect 7: no quantisation (explicit HNSW float index options) and exact rescoring of the
    candidates, so top-k ids, order and cosine scores equal the exact embedded vector view."""
    import random

    from projections.vector.view import VectorView

    words = "lisbon porto budget puppy kitten river tram bakery museum garden harbour violin chess winter".split()
    rng = random.Random(7)
    for i in range(120):
        ledger.add(f"c{i % 3}", " ".join(rng.choices(words, k=rng.randint(2, 9))) + f" note{i}", "alice")
    exact = VectorView(tmp_path / "exact.sqlite", WordHashEmbedder())
    catch_up(ledger.events, exact)
    catch_up(ledger.events, view)
    mapping = view.es.indices.get_mapping(index=view.versions_index)[view.versions_index]["mappings"]
    assert mapping["properties"]["embedding"]["index_options"]["type"] == "hnsw"  # not int8_hnsw
    emb = WordHashEmbedder()
    agree = 0
    queries = [" ".join(rng.sample(words, 2)) for _ in range(12)]
    for query in queries:
        q = list(emb.embed([query])[0])
        got, want = view.vector_search(q, 10), exact.vector_search(q, 10)
        assert len(got) == len(want) == 10
        assert all(abs(a[1] - b[1]) < 1e-5 for a, b in zip(got, want, strict=True)), query  # true cosines
        # the same ids at every rank, except among ties: each side's cosine may be off the true one by
        # the float32 rounding checked above (1e-5), so two memories closer than twice that may swap
        tie = 2e-5
        cut = want[-1][1]
        assert {m for m, s in got if s > cut + tie} == {m for m, s in want if s > cut + tie}, query
        # a tie may be with a memory just below the top 10 (ids are random, so is the tie's order)
        wider = exact.vector_search(q, 40)
        untied = [i for i, (m, s) in enumerate(want) if all(abs(s - t) > tie for other, t in wider if other != m)]
        assert [got[i][0] for i in untied] == [want[i][0] for i in untied], query
        agree += [m for m, _ in got] == [m for m, _ in want]
    print(f"top-10 ids in the exact view's order (ties included) for {agree}/{len(queries)} queries")
    exact.close()


def test_vector_search_filters_inside_the_knn_by_ids_and_scope_fields(ledger, view):
    mine = [ledger.add("c", f"green tea note {i}", "alice", metadata={"user_id": "u1"}).id for i in range(2)]
    for _ in range(30):  # more relevant memories of another user, which a post-filter would have to skip
        ledger.add(
            "c", "green tea green tea", "alice", metadata={"user_id": "u2", "run_id": "r1"}, allow_duplicate=True
        )
    catch_up(ledger.events, view)
    q = WordHashEmbedder().embed(["green tea"])[0]
    docs = _docs(view)
    assert {d["user_id"] for d in docs.values()} == {"u1", "u2"}
    assert all(d.get("run_id") == "r1" for d in docs.values() if d["user_id"] == "u2")
    assert {m for m, _ in view.vector_search(q, 2, allowed=set(mine))} == set(mine)
    assert {m for m, _ in view.vector_search(q, 2, scopes={"user_id": {"u1"}})} == set(mine)
    assert view.vector_search(q, 2, scopes={"user_id": {"u9"}}) == []
