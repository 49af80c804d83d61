"""Hybrid search through the view set: filters, as-of, provenance, audit reads, branch overlays."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from ledger.config import init_data_dir
from ledger.errors import InvalidRequest
from ledger.factory import open_ledger
from projections.graph_view import GraphView
from projections.retrieval import Retriever
from projections.text_view import KeywordView
from projections.vector.embedding import HashingEmbedder
from projections.vector.view import VectorView
from projections.view_set import ViewSet
from tests.ledgers import make_ledger


@pytest.fixture()
def env(tmp_path: Path):
    init_data_dir(tmp_path)
    ledger = open_ledger(tmp_path)
    vec = VectorView(tmp_path / "views" / "vector.sqlite", HashingEmbedder(), ann=None)
    views = ViewSet.open(ledger, vector=vec)
    yield ledger, views
    views.close()
    ledger.log.close()


def ids(hits) -> list[str]:
    return [h.memory_id for h in hits]


def test_search_finds_filters_and_records_reads(env) -> None:
    ledger, views = env
    a = ledger.add("alice", "Alice adopted a beagle puppy named Biscuit", "u", metadata={"topic": "pets"})
    b = ledger.add("alice", "Alice is learning the cello on weekends", "u", metadata={"topic": "music"})
    c = ledger.add("bob", "Bob adopted a tabby cat", "u", metadata={"topic": "pets"})
    hits = views.search("adopted puppy", cube="alice", k=5, actor="auditor")
    assert ids(hits)[0] == a.id and c.id not in ids(hits)
    assert ids(views.search("adopted", k=5))[:2] and set(ids(views.search("adopted", k=5))) >= {a.id, c.id}
    assert ids(views.search("adopted", cube="alice", metadata={"topic": "music"})) in ([], [b.id])
    assert a.id not in ids(views.search("adopted", cube="alice", metadata={"topic": "music"}))
    # the read was audited with the query and the returned ids
    read = [e for e in ledger.events() if e.type == "memory.read"]
    assert len(read) == 1 and read[0].actor == "auditor" and read[0].payload["operation"] == "search"
    assert read[0].payload["query"] == "adopted puppy" and a.id in read[0].payload["memory_ids"]
    # provenance: the offsets and event ids that produced the version
    top = hits[0]
    assert top.memory.event_offsets == [a.offset]
    assert top.event_ids == [a.event_id]
    assert top.to_dict()["provenance"] == {"offsets": [a.offset], "event_ids": [a.event_id]}


def test_lifecycle_states_and_as_of(env) -> None:
    ledger, views = env
    a = ledger.add("c", "the quarterly budget review is on Friday", "u")
    b = ledger.add("c", "the budget for the offsite is ten thousand", "u")
    before = ledger.head()
    ledger.update(a.id, "the quarterly review moved to Monday", "u")
    ledger.change_state(b.id, "archived", "u")
    merged = ledger.merge(
        [a.id, ledger.add("c", "review notes: budget approved", "u").id],
        "review notes merged: budget approved, review on Monday",
        "u",
    )
    assert b.id not in ids(views.search("budget", cube="c"))  # archived: hidden by default
    assert b.id in ids(views.search("budget", cube="c", states=["archived"]))
    assert a.id not in ids(views.search("review", cube="c"))  # merged away
    assert a.id in ids(views.search("review", cube="c", all_states=True))
    assert merged.id in ids(views.search("review", cube="c"))
    old = views.search("budget friday", cube="c", as_of=before)
    assert ids(old)[0] == a.id and "Friday" in old[0].memory.text and old[0].valid_to is not None
    assert b.id in ids(old)
    assert views.search("budget friday", cube="c", as_of=-1) == []
    with pytest.raises(InvalidRequest):
        views.search("budget", cube="c", as_of=10_000)
    with pytest.raises(InvalidRequest):
        views.search("budget", states=["deleted"])
    with pytest.raises(InvalidRequest):
        views.search("   ")
    with pytest.raises(InvalidRequest):
        views.search("budget", metadata={"x": [1]})


def test_iso_time_as_of(env) -> None:
    ledger, views = env
    a = ledger.add("c", "first version about sailing", "u")
    t = ledger.get(a.id).updated_at
    ledger.update(a.id, "second version about climbing", "u")
    assert ids(views.search("sailing", cube="c", as_of=t)) == [a.id]
    assert ids(views.search("sailing", cube="c")) == []


def test_graph_links_bring_neighbours(env) -> None:
    ledger, views = env
    q = ledger.add("c", "What did you name the new puppy?", "u")
    ans = ledger.add("c", "We called him Biscuit after the snack", "u")
    ledger.link(q.id, ans.id, "next_turn", "u")
    for i in range(5):
        ledger.add("c", f"unrelated note number {i} about taxes", "u")
    hits = views.search("puppy name", cube="c", k=3)
    assert ids(hits)[:2] == [q.id, ans.id]
    assert "graph" in hits[1].signals


def test_branch_overlay_replaces_and_hides(env) -> None:
    ledger, views = env
    a = ledger.add("c", "the launch is planned for March", "u")
    b = ledger.add("c", "the launch budget is small", "u")
    fork = ledger.head()
    ledger.add("c", "after the fork: launch moved", "u")  # main only, invisible at the fork
    views.catch_up()
    retr: Retriever = views.retriever
    base = retr.search("launch", ["c"], as_of=fork)
    assert set(ids(base)) == {a.id, b.id}
    changed = replace(ledger.get(a.id), text="the launch is planned for June", version=2)
    branch_only = replace(ledger.get(b.id), memory_id="mem_branch", text="launch party in June")
    hits = retr.search("launch June", ["c"], as_of=fork, overlay={a.id: changed, b.id: None, "mem_branch": branch_only})
    assert set(ids(hits)) == {a.id, "mem_branch"}
    assert next(h for h in hits if h.memory_id == a.id).memory.text.endswith("June")
    assert all(h.branch for h in hits)


def test_views_catch_up_and_rebuild(env, tmp_path: Path) -> None:
    ledger, views = env
    for i in range(20):
        ledger.add("c", f"note {i} about gardening and tomatoes", "u")
    views.catch_up()
    head = ledger.head()
    assert set(views.status().values()) == {head}
    before = [h.to_dict() for h in views.search("tomatoes", cube="c", k=5)]
    assert views.rebuild(to=5) == {"keyword": 5, "graph": 5, "vector": 5}
    after = [h.to_dict() for h in views.search("tomatoes", cube="c", k=5)]  # catches up again
    assert before == after
    with pytest.raises(InvalidRequest):
        views.rebuild(to=head + 10)


def test_keyword_only_view_set(tmp_path: Path) -> None:
    init_data_dir(tmp_path)
    ledger = open_ledger(tmp_path)
    ledger.add("c", "a memory about chess openings", "u")
    with ViewSet.open(ledger, kinds=["keyword"]) as views:
        assert len(views.search("chess")) == 1
        assert isinstance(views.views["keyword"], KeywordView) and "graph" not in views.views
    with ViewSet.open(ledger, kinds=["keyword", "graph"]) as views:
        assert isinstance(views.views["graph"], GraphView)
    ledger.log.close()


def test_common_and_rare_terms_rank_exactly_among_many_ties(tmp_path: Path) -> None:
    from ledger import events as ev
    from ledger.events import NewEvent
    from projections.base import catch_up
    from tests.test_keyword_index import reference

    ledger = make_ledger(tmp_path / "log.sqlite")
    rare = ["harbour", "violin", "orchard", "falcon", "copper", "lantern"]
    batch = [
        NewEvent(
            "c",
            ev.MEMORY_ADDED,
            {"memory_id": f"m{i}", "text": f"common shared words {rare[i % 6]} {'common ' * (i % 4)}note {i}"},
            "u",
        )
        for i in range(1500)
    ]
    ledger.log.append(batch)
    view = KeywordView(tmp_path / "a.sqlite")
    catch_up(ledger.events, view)
    for q in ("common violin", "shared common falcon note", "violin orchard common words", "common"):
        for at in (None, 700):
            got = view.keyword_search(q, 10, as_of=at)
            want = reference(ledger, q, 10, None, ledger.head() if at is None else at)
            assert [(m, round(s, 9)) for m, s in got] == [(m, round(s, 9)) for m, s in want]
