"""Lifecycle state machine through the Ledger API: every legal and illegal move, frozen, merge provenance."""

from __future__ import annotations

import itertools

import pytest

from ledger.errors import InvalidRequest, NotFound, StateError
from ledger.lifecycle import SEARCHABLE_BY_DEFAULT, STATES
from tests.ledgers import make_ledger

# Written out independently of ledger.lifecycle.TRANSITIONS on purpose.
LEGAL = {
    ("generated", "activated"),
    ("generated", "archived"),
    ("generated", "frozen"),
    ("activated", "generated"),
    ("activated", "archived"),
    ("activated", "frozen"),
    ("archived", "activated"),
    ("archived", "frozen"),
    ("merged", "archived"),
    ("merged", "frozen"),
}


@pytest.fixture
def ledger(tmp_path):
    return make_ledger(tmp_path / "log.sqlite")


def _memory_in(ledger, state, cube="c"):
    """A memory brought to ``state`` by legal moves only."""
    w = ledger.add(cube, f"memory bound for {state}", "u")
    if state == "generated":
        return w.id
    if state == "merged":
        other = ledger.add(cube, "its twin", "u")
        ledger.merge([w.id, other.id], "merged text", "u")
        return w.id
    path = {"activated": ["activated"], "archived": ["archived"], "frozen": ["frozen"]}[state]
    for s in path:
        ledger.change_state(w.id, s, "u")
    return w.id


@pytest.mark.parametrize("frm,to", list(itertools.product(STATES, STATES)))
def test_every_move(ledger, frm, to):
    mid = _memory_in(ledger, frm)
    head = ledger.head()
    if (frm, to) in LEGAL:
        w = ledger.change_state(mid, to, "u", reason="test")
        got = ledger.get(mid)
        assert got.state == to and w.offset == head + 1
        ev = ledger.memory_events(mid)[-1]
        assert ev.payload == {"memory_id": mid, "from": frm, "to": to, "reason": "test"}
    else:
        with pytest.raises(StateError) as err:
            ledger.change_state(mid, to, "u")
        msg = str(err.value)
        assert mid in msg
        if to == "merged" and frm in ("generated", "activated"):
            assert "only through a merge" in msg
        elif frm == to:
            assert "already" in msg
        else:
            assert f"{frm} -> {to}" in msg
        assert ledger.head() == head and ledger.get(mid).state == frm  # nothing written


def test_unknown_state_and_unknown_memory(ledger):
    mid = _memory_in(ledger, "generated")
    with pytest.raises(InvalidRequest, match="unknown lifecycle state 'deleted'"):
        ledger.change_state(mid, "deleted", "u")
    with pytest.raises(NotFound):
        ledger.change_state("mem_nope", "activated", "u")
    with pytest.raises(InvalidRequest, match="cannot be added as merged"):
        ledger.add("c", "x", "u", state="merged")


@pytest.mark.parametrize("state", ["frozen", "merged", "archived"])
def test_non_writable_memories_refuse_updates_and_merges(ledger, state):
    mid = _memory_in(ledger, state)
    other = ledger.add("c", "a fresh one", "u").id
    head = ledger.head()
    with pytest.raises(StateError, match="cannot be modified"):
        ledger.update(mid, "new text", "u")
    with pytest.raises(StateError, match="illegal lifecycle move|already merged"):
        ledger.merge([mid, other], "merged", "u")
    assert ledger.head() == head
    assert ledger.get(mid).text != "new text"


def test_frozen_is_terminal_and_still_readable(ledger):
    mid = _memory_in(ledger, "frozen")
    for to in STATES:
        with pytest.raises(StateError):
            ledger.change_state(mid, to, "u")
    assert ledger.get(mid).text == "memory bound for frozen"
    assert [v.state for v in ledger.history(mid)] == ["generated", "frozen"]
    assert "frozen" in SEARCHABLE_BY_DEFAULT and "archived" not in SEARCHABLE_BY_DEFAULT


def test_archived_is_visible_as_of_and_in_history(ledger):
    w = ledger.add("c", "old news", "u")
    ledger.change_state(w.id, "activated", "u")
    before = ledger.head()
    ledger.change_state(w.id, "archived", "u", reason="unused")
    assert ledger.get(w.id).state == "archived"
    assert ledger.get(w.id, as_of=before).state == "activated"
    assert [v.state for v in ledger.history(w.id)] == ["generated", "activated", "archived"]
    ledger.change_state(w.id, "activated", "u")  # revival
    assert ledger.get(w.id).state == "activated"


def test_merge_provenance(ledger):
    a = ledger.add("c", "Bob likes tea", "u").id
    b = ledger.add("c", "Bob likes green tea", "u").id
    c = ledger.add("c", "Bob drinks tea daily", "u").id
    ledger.change_state(c, "activated", "u")
    before = ledger.head()
    m = ledger.merge([a, b, c], "Bob likes green tea, daily", "merger", reason="near-duplicates")
    merged = ledger.get(m.id)
    assert merged.sources == [a, b, c] and merged.state == "generated" and merged.created_by == "merger"
    for s in (a, b, c):
        src = ledger.get(s)
        assert src.state == "merged" and src.merged_into == m.id
        assert m.offset in src.event_offsets  # the merge event is in each source's provenance
        assert ledger.memory_events(s)[-1].payload["sources"] == [a, b, c]
    assert ledger.get(a, as_of=before).state == "generated"
    assert ledger.get(c, as_of=before).state == "activated"
    with pytest.raises(NotFound):
        ledger.get(m.id, as_of=before)
    ev = ledger.memory_events(m.id)[0]
    assert ev.type == "memory.merged" and ev.payload["reason"] == "near-duplicates"
    # the merged memory is an ordinary memory: writable, and can be merged again
    ledger.update(m.id, "Bob likes green tea every day", "u")
    d = ledger.add("c", "Bob loves tea", "u").id
    m2 = ledger.merge([m.id, d], "Bob loves green tea every day", "u")
    assert ledger.get(m.id).merged_into == m2.id


def test_merge_refusals(ledger):
    a = ledger.add("c1", "one", "u").id
    b = ledger.add("c2", "two", "u").id
    head = ledger.head()
    with pytest.raises(InvalidRequest, match="several cubes"):
        ledger.merge([a, b], "x", "u")
    with pytest.raises(InvalidRequest, match="at least two"):
        ledger.merge([a, a], "x", "u")
    with pytest.raises(NotFound):
        ledger.merge([a, "mem_missing"], "x", "u")
    c = ledger.add("c1", "three", "u").id
    with pytest.raises(InvalidRequest, match="non-empty"):
        ledger.merge([a, c], "  ", "u")
    assert ledger.head() == head + 1  # only the add of c
    assert ledger.get(a).state == "generated"
