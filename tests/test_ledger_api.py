"""The Ledger facade: memories as events, upcasting, idempotency, optimistic concurrency, as-of."""

from __future__ import annotations

import pytest

from ledger.errors import ConcurrencyConflict, InvalidRequest, NotFound, StateError
from ledger.events import NewEvent


def test_add_creates_the_cube_once_and_returns_id_and_offset(ledger):
    w1 = ledger.add("alice", "likes green tea", actor="agent")
    w2 = ledger.add("alice", "lives in Lisbon", actor="agent")
    types = [e.type for e in ledger.events()]
    assert types == ["cube.created", "memory.added", "memory.added"]
    assert (w1.offset, w2.offset) == (1, 2)
    assert ledger.get(w1.id).text == "likes green tea"
    assert next(ledger.events(0, 0)).payload["owner"] == "agent"


def test_update_and_history(ledger):
    w = ledger.add("c", "v1", actor="a")
    ledger.update(w.id, "v2", actor="b")
    ledger.update(w.id, "v3", actor="c", metadata={"k": 1})
    hist = ledger.history(w.id)
    assert [(v.text, v.version, v.updated_by) for v in hist] == [("v1", 1, "a"), ("v2", 2, "b"), ("v3", 3, "c")]
    assert hist[-1].metadata == {"k": 1}
    assert hist[-1].event_offsets == [v.updated_offset for v in hist]


def test_as_of_offset_and_time(ledger):
    w = ledger.add("c", "v1", actor="a")
    u = ledger.update(w.id, "v2", actor="a")
    assert ledger.get(w.id, as_of=w.offset).text == "v1"
    assert ledger.get(w.id, as_of=str(u.offset)).text == "v2"
    with pytest.raises(NotFound):
        ledger.get(w.id, as_of=0)
    t_first = next(ledger.events(w.offset, w.offset)).time
    assert ledger.get(w.id, as_of=t_first).text == "v1"
    with pytest.raises(InvalidRequest):
        ledger.get(w.id, as_of=999)
    with pytest.raises(InvalidRequest):
        ledger.get(w.id, as_of="not a time")
    assert ledger.resolve_as_of("1999-01-01T00:00:00Z") == -1


def test_idempotent_add_with_event_id(ledger):
    a = ledger.add("c", "hello", actor="a", event_id="req-42")
    b = ledger.add("c", "hello", actor="a", event_id="req-42")
    assert a == b
    assert ledger.head() == 1


def test_expected_version_conflict_on_update(ledger):
    w = ledger.add("c", "v1", actor="a")
    ledger.update(w.id, "v2", actor="a", expected_version=1)
    with pytest.raises(ConcurrencyConflict):
        ledger.update(w.id, "v3", actor="a", expected_version=1)
    assert ledger.get(w.id).text == "v2"


def test_writes_on_other_memories_do_not_conflict(ledger):
    w1 = ledger.add("c", "one", actor="a")
    ledger.add("c", "two", actor="a")
    ledger.update(w1.id, "one again", actor="a", expected_version=1)
    assert ledger.get(w1.id).version == 2


def test_bad_input_writes_nothing(ledger):
    ledger.add("c", "x", actor="a")
    head = ledger.head()
    for bad in ("", "   "):
        with pytest.raises(InvalidRequest):
            ledger.add("c", bad, actor="a")
    with pytest.raises(InvalidRequest):
        ledger.add("_system", "x", actor="a")
    with pytest.raises(InvalidRequest):
        ledger.add("c", "x", actor="a", metadata=[1, 2])  # type: ignore[arg-type]
    with pytest.raises(NotFound):
        ledger.update("mem_missing", "x", actor="a")
    with pytest.raises(InvalidRequest):
        ledger.add("c", "x", actor="a", subject="s1")  # no key store configured
    assert ledger.head() == head


def test_legacy_events_are_upcast_on_read(ledger):
    ledger.append([NewEvent("c", "memory.added", {"memory_id": "old1", "content": "from v1"}, "a", schema_version=1)])
    m = ledger.get("old1")
    assert m.text == "from v1" and m.state == "generated"
    ev = next(ledger.events())
    assert ev.schema_version == ledger.registry.latest("memory.added") and ev.payload["text"] == "from v1"
    stored = next(ledger.log.read())
    assert stored.schema_version == 1


def test_lifecycle_moves_and_frozen_is_read_only(ledger):
    w = ledger.add("c", "x", actor="a")
    ledger.change_state(w.id, "activated", actor="a")
    ledger.change_state(w.id, "archived", actor="a")
    with pytest.raises(StateError):
        ledger.change_state(w.id, "generated", actor="a")
    with pytest.raises(StateError):
        ledger.update(w.id, "y", actor="a")
    ledger.change_state(w.id, "frozen", actor="a")
    with pytest.raises(StateError):
        ledger.change_state(w.id, "activated", actor="a")
    with pytest.raises(InvalidRequest):
        ledger.change_state(w.id, "deleted", actor="a")
    assert ledger.get(w.id).state == "frozen"


def test_merge_records_provenance(ledger):
    a = ledger.add("c", "Bob likes tea", actor="x")
    b = ledger.add("c", "Bob likes green tea", actor="x")
    m = ledger.merge([a.id, b.id], "Bob likes green tea", actor="sched", reason="near-duplicates")
    merged = ledger.get(m.id)
    assert merged.sources == [a.id, b.id]
    assert ledger.get(a.id).state == "merged" and ledger.get(a.id).merged_into == m.id
    with pytest.raises(InvalidRequest):
        ledger.merge([a.id], "x", actor="x")


def test_reads_are_recorded_when_an_actor_reads(ledger):
    w = ledger.add("c", "x", actor="a")
    ledger.get(w.id, actor="auditor-1")
    ledger.history(w.id, actor="auditor-2")
    reads = [e for e in ledger.events() if e.type == "memory.read"]
    assert [(r.actor, r.payload["operation"], r.payload["memory_ids"]) for r in reads] == [
        ("auditor-1", "get", [w.id]),
        ("auditor-2", "history", [w.id]),
    ]
    ledger.get(w.id)  # no actor: an internal read, not recorded
    assert sum(e.type == "memory.read" for e in ledger.events()) == 2


def test_events_between_times(ledger):
    import time

    ledger.add("c", "one", actor="a")
    time.sleep(0.005)
    w2 = ledger.add("c", "two", actor="a")
    time.sleep(0.005)
    ledger.add("c", "three", actor="a")
    t2 = next(ledger.events(w2.offset, w2.offset)).ts_us
    assert [e.offset for e in ledger.events_between(t2, t2)] == [w2.offset]
    assert [e.offset for e in ledger.events_between(since=t2)] == [2, 3]
    assert [e.offset for e in ledger.events_between(until=t2 - 1)] == [0, 1]
    assert list(ledger.events_between("2999-01-01T00:00:00Z")) == []
