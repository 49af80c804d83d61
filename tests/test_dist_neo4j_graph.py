"""The Neo4j graph view: temporal co-mention and link relations, atomic exactly-once batches."""

from __future__ import annotations

import pytest

from projections.base import catch_up, rebuild
from projections.neo4j_graph import Neo4jGraphView, parse_bolt_url
from tests.dist_env import endpoint, unique_name
from tests.fake_sealer import FakeSealer
from tests.ledgers import make_ledger

pytestmark = pytest.mark.integration


@pytest.fixture
def ledger(tmp_path):
    """Reads are not recorded: the view must see exactly the events the test writes."""
    lg = make_ledger(tmp_path / "log.sqlite", record_reads=False)
    yield lg
    lg.log.close()


@pytest.fixture
def view(ledger):
    url = endpoint("neo4j")
    v = Neo4jGraphView(url, ledger, namespace="T" + unique_name("g").replace("_", ""))
    yield v
    v.reset()
    v.close()


def test_co_mention_and_links_as_of(ledger, view):
    a = ledger.add("c", "Caroline went hiking in Yosemite", "alice")
    b = ledger.add("c", "Melanie met Caroline at the gallery", "alice")
    c = ledger.add("c", "The Yosemite trip was in June", "alice")
    d = ledger.add("other", "Unrelated shopping list", "alice")
    before_link = ledger.head()
    ledger.link(a.id, d.id, "reminds_of", "alice")
    before_update = ledger.head()
    ledger.update(b.id, "Melanie met Jon at the gallery", "alice")
    catch_up(ledger.events, view)
    assert view.checkpoint() == ledger.head()

    now = dict(view.neighbours([a.id]))
    assert set(now) == {c.id, d.id}  # b no longer mentions Caroline; d is linked
    then = dict(view.neighbours([a.id], as_of=before_update))
    assert set(then) == {b.id, c.id, d.id}
    assert set(dict(view.neighbours([a.id], as_of=before_link))) == {b.id, c.id}
    assert set(dict(view.neighbours([a.id], cubes=["c"]))) == {c.id}
    assert view.entities_of(b.id, as_of=before_update) == sorted(view.entities_of(b.id, as_of=before_update))
    assert "caroline" in view.entities_of(b.id, as_of=before_update)
    assert "caroline" not in view.entities_of(b.id)


def test_merge_relates_sources_and_two_hops_decay(ledger, view):
    a = ledger.add("c", "Alpha project kickoff with Zed", "alice")
    b = ledger.add("c", "Zed reviewed the Beta plan", "alice")
    c = ledger.add("c", "Beta plan approved by Quinn", "alice")
    catch_up(ledger.events, view)
    one = dict(view.neighbours([a.id], hops=1))
    two = dict(view.neighbours([a.id], hops=2))
    assert set(one) == {b.id} and set(two) == {b.id, c.id} and two[c.id] < two[b.id]
    m = ledger.merge([a.id, b.id], "Alpha kickoff and Beta review", "alice")
    catch_up(ledger.events, view)
    assert {a.id, b.id} <= set(dict(view.neighbours([m.id])))


def test_redelivery_is_harmless_and_rebuild_matches(ledger, view):
    for i in range(4):
        ledger.add("c", f"Caroline note {i} about Paris", "alice")
    events = list(ledger.events())
    view.apply_batch(events[:3])
    view.apply_batch(events)  # redelivered prefix is skipped
    view.apply_batch(events)
    first = view.neighbours([events[1].payload["memory_id"]])
    rebuild(ledger.events, view)
    assert view.neighbours([events[1].payload["memory_id"]]) == first and len(first) == 3


def test_failed_batch_writes_nothing(ledger, view, monkeypatch):
    ledger.add("c", "Caroline in Paris", "alice")
    ledger.add("c", "Caroline in Rome", "alice")
    events = list(ledger.events())

    def boom(tx, plan, last):
        Neo4jGraphView._write(view, tx, plan, last)
        raise RuntimeError("process died mid-transaction")

    monkeypatch.setattr(view, "_write", boom)
    with pytest.raises(RuntimeError):
        view.apply_batch(events)
    monkeypatch.undo()
    assert view.checkpoint() == -1 and view.neighbours([events[1].payload["memory_id"]]) == []
    view.apply_batch(events)
    assert len(view.neighbours([events[1].payload["memory_id"]])) == 1


def test_bolt_url_parsing():
    assert parse_bolt_url("bolt://root:p%40ss@127.0.0.1:17687/graph") == (
        "bolt://127.0.0.1:17687",
        ("root", "p@ss"),
        "graph",
    )
    with pytest.raises(Exception, match="Bolt"):
        parse_bolt_url("http://x")


def test_forgetting_a_subject_removes_its_entities(tmp_path):

    from ledger.events import SYSTEM_STREAM, NewEvent

    sealer = FakeSealer()
    ledger = make_ledger(tmp_path / "log.sqlite", sealer=sealer, record_reads=False)
    view = Neo4jGraphView(endpoint("neo4j"), ledger, namespace="T" + unique_name("f").replace("_", ""))
    try:
        a = ledger.add("hr", "Dana visited the Mayo Clinic", "alice", subject="dana")
        b = ledger.add("hr", "The Mayo Clinic invoice arrived", "alice")
        catch_up(ledger.events, view)
        before = ledger.head()
        assert set(dict(view.neighbours([b.id]))) == {a.id}
        sealer.forgotten.add("dana")
        ledger.append([NewEvent(SYSTEM_STREAM, "subject.forgotten", {"subject": "dana"}, "dpo")])
        catch_up(ledger.events, view)
        assert view.neighbours([b.id]) == [] and view.neighbours([b.id], as_of=before) == []
        assert view.entities_of(a.id, as_of=before) == []
    finally:
        view.reset()
        view.close()
        ledger.log.close()


def test_version_nodes_carry_indexed_scope_ids(ledger, view):
    a = ledger.add("c", "Zed met Quinn", "alice", metadata={"user_id": "u1", "run_id": "r1"})
    b = ledger.add("c", "Quinn met Zed", "alice", metadata={"user_id": "u2"})
    m = ledger.merge([a.id, b.id], "Zed and Quinn met", "alice")
    catch_up(ledger.events, view)
    with view._session() as s:
        rows = {
            r["m"]: (r["u"], r["r"])
            for r in s.run(
                f"MATCH (v:{view.V}) WHERE v.valid_to = $open RETURN v.memory_id AS m, v.user_id AS u, v.run_id AS r",
                open=2**62,
            )
        }
        indexed = {
            tuple(r["properties"])
            for r in s.run("SHOW INDEXES YIELD labelsOrTypes, properties")
            if r["labelsOrTypes"] == [view.V]
        }
    assert rows[a.id] == (["u1"], ["r1"]) and rows[b.id] == (["u2"], [])
    assert rows[m.id] == (["u1", "u2"], ["r1"])
    assert {("user_id",), ("agent_id",), ("run_id",)} <= indexed
