"""Audit queries: filters, reads recorded with their actor, and 'who knew what, when'."""

from __future__ import annotations

import json
import time

import pytest

from ledger import events as ev
from ledger.cli.app import main
from ledger.errors import InvalidRequest, NotFound
from ledger.events import us_to_iso
from ledger.timemachine.audit import AuditQuery, audit, knowledge
from ledger.timemachine.branches import Branches
from ledger.timemachine.restore import restore_memory


def _story(led):
    """alice writes m1/m2 in cube c, bob reads and archives, carol works in cube d, restores."""
    led.add("c", "one", "alice", memory_id="m1")
    led.add("c", "two", "alice", memory_id="m2")
    led.get("m1", actor="bob")
    led.history("m2", actor="bob")
    led.update("m1", "one v2", "alice")
    led.change_state("m2", "archived", "bob")
    led.add("d", "three", "carol", memory_id="m3")
    restore_memory(led, "m1", 1, "carol")


def test_reads_are_recorded_with_the_actor(ledger):
    ledger.add("c", "one", "alice", memory_id="m1")
    ledger.get("m1", actor="bob")
    ledger.history("m1", actor="eve", as_of=1)
    ledger.get("m1")  # no actor: an internal read, not recorded
    reads = [e for e in ledger.events() if e.type == ev.MEMORY_READ]
    assert [(e.actor, e.payload["memory_ids"], e.payload["operation"], e.payload["as_of"]) for e in reads] == [
        ("bob", ["m1"], "get", None),
        ("eve", ["m1"], "history", 1),
    ]


def test_filter_by_memory_cube_actor_type(ledger):
    _story(ledger)
    m1 = audit(ledger, AuditQuery(memory="m1"))
    assert [(x.actor, x.action) for x in m1] == [
        ("alice", "created"),
        ("bob", "read (get)"),
        ("alice", "changed"),
        ("carol", "restored to offset 1"),
    ]
    assert [x.action for x in audit(ledger, AuditQuery(memory="m2"))] == ["created", "read (history)", "archived"]
    assert {x.stream for x in audit(ledger, AuditQuery(cube="d"))} == {"d"}
    assert [x.type for x in audit(ledger, AuditQuery(cube="d"))] == [ev.CUBE_CREATED, ev.MEMORY_ADDED]
    bob = audit(ledger, AuditQuery(actor="bob"))
    assert [x.action for x in bob] == ["read (get)", "read (history)", "archived"]
    reads = audit(ledger, AuditQuery(types=[ev.MEMORY_READ]))
    assert [x.memory_ids for x in reads] == [["m1"], ["m2"]]
    assert {x.type for x in audit(ledger, AuditQuery(types=["memory.*"]))} >= {
        ev.MEMORY_ADDED,
        ev.MEMORY_READ,
        ev.MEMORY_RESTORED,
    }
    combined = audit(ledger, AuditQuery(memory="m1", actor="alice", types=[ev.MEMORY_UPDATED]))
    assert [x.action for x in combined] == ["changed"]
    assert audit(ledger, AuditQuery(cube="c", actor="carol"))[0].action == "restored to offset 1"
    assert audit(ledger, AuditQuery(memory="m1", limit=2))[-1].actor == "bob"
    assert all("text" not in x.details for x in audit(ledger, AuditQuery()))
    with pytest.raises(InvalidRequest):
        audit(ledger, AuditQuery(types=["memory.nope"]))


def test_since_until_by_offset_and_time(ledger):
    ledger.add("c", "one", "alice", memory_id="m1")
    time.sleep(0.01)
    w = ledger.update("m1", "two", "bob")
    time.sleep(0.01)
    ledger.update("m1", "three", "carol")
    ts = next(ledger.log.read(w.offset, w.offset)).ts_us
    assert [x.actor for x in audit(ledger, AuditQuery(memory="m1", since=w.offset))] == ["bob", "carol"]
    assert [x.actor for x in audit(ledger, AuditQuery(memory="m1", until=str(w.offset)))] == ["alice", "bob"]
    assert [x.actor for x in audit(ledger, AuditQuery(since=us_to_iso(ts), until=us_to_iso(ts)))] == ["bob"]
    assert [x.actor for x in audit(ledger, AuditQuery(since=us_to_iso(ts + 1)))] == ["carol"]
    assert [x.actor for x in audit(ledger, AuditQuery(until=us_to_iso(ts - 1)))] == ["alice", "alice"]
    assert audit(ledger, AuditQuery(since=10, until=5)) == []


def test_what_did_the_system_know_and_who_had_read_it(ledger):
    ledger.add("c", "first", "alice", memory_id="m1")
    ledger.get("m1", actor="bob")
    ledger.get("m1", actor="bob")
    t = ledger.head()
    ledger.update("m1", "second", "alice")
    ledger.get("m1", actor="eve")
    k = knowledge(ledger, "m1", t)
    assert k["existed"] and k["state"]["text"] == "first" and k["state"]["version"] == 1
    assert [(r["actor"], r["reads"]) for r in k["readers"]] == [("bob", 2)]
    assert [e["action"] for e in k["events"]] == ["created", "read (get)", "read (get)"]
    now = knowledge(ledger, "m1", None)
    assert now["state"]["text"] == "second"
    assert [r["actor"] for r in now["readers"]] == ["bob", "eve"]
    assert knowledge(ledger, "m1", 0)["existed"] is False
    with pytest.raises(NotFound):
        knowledge(ledger, "ghost", None)


def test_reads_on_a_branch_are_audited_on_main(ledger):
    ledger.add("c", "one", "alice", memory_id="m1")
    branches = Branches(ledger)
    branches.create("b", None, "alice")
    branches.ledger("b").get("m1", actor="mallory")
    [read] = audit(ledger, AuditQuery(memory="m1", types=[ev.MEMORY_READ]))
    assert (read.actor, read.details["branch"], read.action) == ("mallory", "b", "read (get) on branch b")
    assert read.stream == "c" and audit(ledger, AuditQuery(cube="c", actor="mallory")) == [read]
    b = branches.ledger("b")
    b.add("branch-cube", "only here", "alice", memory_id="x")
    b.history("x", actor="mallory")
    [read_x] = audit(ledger, AuditQuery(memory="x"))  # the cube does not exist on main: _system
    assert (read_x.stream, read_x.action) == (ev.SYSTEM_STREAM, "read (history) on branch b")
    assert not ledger.cube_exists("branch-cube")
    branches.close()


def test_cli_audit(tmp_path, capsys):
    d = str(tmp_path / "data")
    run = lambda *a: main(["--data", d, *a])  # noqa: E731
    run("init")
    run("add", "--cube", "c", "--id", "m1", "--actor", "alice", "one")
    run("get", "m1", "--actor", "bob")
    run("update", "m1", "--actor", "alice", "two")
    capsys.readouterr()
    assert run("audit", "--memory", "m1", "--json") == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [(r["actor"], r["type"]) for r in rows] == [
        ("alice", "memory.added"),
        ("bob", "memory.read"),
        ("alice", "memory.updated"),
    ]
    assert run("audit", "--actor", "bob", "--type", "memory.read") == 0
    out = capsys.readouterr().out
    assert "bob" in out and "read (get)" in out and "alice" not in out
    assert run("audit", "--memory", "m1", "--as-of", "2", "--json") == 0
    k = json.loads(capsys.readouterr().out)
    assert k["state"]["text"] == "one" and k["readers"][0]["actor"] == "bob"
    assert run("audit", "--memory", "m1", "--as-of", "2") == 0
    assert "read by: bob" in capsys.readouterr().out
    assert run("audit", "--type", "bogus") == 2
    assert run("audit", "--cube", "zzz") == 0
    assert "no matching events" in capsys.readouterr().out
