"""Counterfactual branches: isolation, nesting, storage, diff, merge (clean and conflicting), drop."""

from __future__ import annotations

import json
import sqlite3

import pytest

from ledger import events as ev
from ledger.cli.app import main
from ledger.errors import ConcurrencyConflict, InvalidRequest, NotFound, StateError
from ledger.timemachine.branch_merge import MergeConflict, diff, merge
from ledger.timemachine.branches import Branches
from tests.ledgers import make_ledger


@pytest.fixture()
def main_ledger(tmp_path):
    led = make_ledger(tmp_path / "log.sqlite")
    yield led
    led.log.close()


@pytest.fixture()
def branches(main_ledger):
    b = Branches(main_ledger)
    yield b
    b.close()


def _team(branches, name, writers=("bob",), owners=("carol",)):
    """On alice's branch ``name``, bob may write and carol may merge and drop (roles on the branch)."""
    for who in writers:
        branches.grant(name, who, "writer", "alice")
    for who in owners:
        branches.grant(name, who, "owner", "alice")


def _seed(led):
    led.add("c", "alpha", "alice", memory_id="m1")
    led.add("c", "beta", "alice", memory_id="m2")
    return led.head()


def test_branch_sees_base_until_fork_and_main_never_sees_branch(main_ledger, branches):
    fork = _seed(main_ledger)
    br = branches.ledger(branches.create("b", fork, "alice").name)
    _team(branches, "b")
    main_ledger.update("m1", "alpha on main after fork", "alice")
    main_ledger.add("c", "main only", "alice", memory_id="m_main")
    br.update("m2", "beta on branch", "bob")
    br.add("c", "branch only", "bob", memory_id="m_br")
    br.change_state("m1", "archived", "bob")
    # branch -> main: nothing leaks
    assert main_ledger.get("m2").text == "beta"
    assert main_ledger.get("m1").state == "generated"
    with pytest.raises(NotFound):
        main_ledger.get("m_br")
    assert all(e.payload.get("memory_id") != "m_br" for e in main_ledger.events())
    # main -> branch: writes after the fork are invisible
    assert br.get("m1").text == "alpha" and br.get("m1").state == "archived"
    with pytest.raises(NotFound):
        br.get("m_main")
    assert br.get("m2").text == "beta on branch"
    assert [v.text for v in br.history("m2")] == ["beta", "beta on branch"]
    # offsets continue after the fork; as-of on the branch works in its own numbering
    own = list(br.log.own_events())
    assert [e.offset for e in own] == list(range(fork + 1, fork + 1 + len(own)))
    assert br.get("m2", as_of=fork).text == "beta"
    assert set(br.cube_memories("c")) == {"m1", "m2", "m_br"}
    # a branch write never fails because main moved on
    assert br.log.stream_version("c") == main_ledger.log.stream_version_at("c", fork) + len(own)


def test_branch_storage_is_an_overlay_with_its_own_chain(main_ledger, branches, tmp_path):
    fork = _seed(main_ledger)
    for i in range(50):
        main_ledger.add("c", f"filler {i}", "alice")
    info = branches.create("b", fork, "alice")
    _team(branches, "b")
    br = branches.ledger("b")
    br.update("m1", "changed", "bob")
    with sqlite3.connect(tmp_path / "branches.sqlite") as conn:
        assert conn.execute("SELECT COUNT(*) FROM branch_events").fetchone()[0] == 1
    first = next(br.log.own_events())
    fork_event = next(main_ledger.log.read(fork, fork))
    assert first.prev_hash == fork_event.hash == info.fork_hash
    assert br.log.verify().ok
    with sqlite3.connect(tmp_path / "branches.sqlite") as conn:
        conn.execute("UPDATE branch_events SET payload = replace(payload, 'changed', 'forged')")
    result = br.log.verify()
    assert not result.ok and result.first_bad_offset == fork + 1


def test_creation_and_drop_are_audited_on_main(main_ledger, branches):
    fork = _seed(main_ledger)
    branches.create("b", fork, "alice")
    with pytest.raises(StateError):
        branches.create("b", fork, "alice")
    for bad in ("main", "", "has space", "-x"):
        with pytest.raises(InvalidRequest):
            branches.create(bad, fork, "alice")
    with pytest.raises(InvalidRequest):
        branches.create("late", fork + 100, "alice")
    branches.ledger("b").add("c", "x", "alice")
    branches.drop("b", "alice")
    with pytest.raises(NotFound):
        branches.ledger("b")
    sys_events = list(main_ledger.log.read_stream(ev.SYSTEM_STREAM))
    assert [(e.type, e.actor, e.payload["name"]) for e in sys_events] == [
        (ev.BRANCH_CREATED, "alice", "b"),
        (ev.BRANCH_DROPPED, "alice", "b"),
    ]
    assert sys_events[0].payload["at_offset"] == fork
    branches.create("b", 0, "alice")  # the name is free again
    assert branches.ledger("b").head() == 0


def test_nested_branches(main_ledger, branches):
    fork = _seed(main_ledger)
    branches.create("a", fork, "alice")
    a = branches.ledger("a")
    a.update("m1", "alpha on a", "alice")
    a_mid = a.head()
    a.update("m1", "alpha on a, later", "alice")
    branches.create("a2", a_mid, "alice", from_branch="a")
    _team(branches, "a2")
    a2 = branches.ledger("a2")
    assert a2.get("m1").text == "alpha on a"  # a's events after the fork of a2 are invisible
    a2.update("m2", "beta on a2", "bob")
    assert a.get("m2").text == "beta" and main_ledger.get("m2").text == "beta"
    assert a2.get("m2").text == "beta on a2"
    assert [e.offset for e in a2.events()] == list(range(a2.head() + 1))
    with pytest.raises(StateError):
        branches.drop("a", "alice")  # a2 depends on it
    # a nested branch can also fork below its parent's own fork: it then sees main only
    branches.create("low", 1, "alice", from_branch="a")
    assert branches.ledger("low").get("m1").text == "alpha"
    # merge a2 into its parent a
    result = merge(branches, "a2", "alice")
    assert result.into == "a"
    assert a.get("m2").text == "beta on a2"
    assert main_ledger.get("m2").text == "beta"
    merged = [e for e in main_ledger.log.read_stream(ev.SYSTEM_STREAM) if e.type == ev.BRANCH_MERGED]
    assert merged[0].payload == {"name": "a2", "events": 1, "into": "a"}


def test_diff_lists_added_changed_removed(main_ledger, branches):
    fork = _seed(main_ledger)
    main_ledger.add("c", "gamma", "alice", memory_id="m3")
    branches.create("b", fork + 1, "alice")
    _team(branches, "b")
    br = branches.ledger("b")
    br.add("c", "new", "bob", memory_id="m_new")
    br.update("m1", "alpha 2", "bob")
    br.change_state("m2", "archived", "bob")
    from ledger.timemachine.restore import restore_memory

    restore_memory(br, "m3", fork, "bob")  # m3 did not exist at `fork`: removed on the branch
    br.add("c", "temp", "bob", memory_id="m_tmp")
    restore_memory(br, "m_tmp", fork + 1, "bob")  # added then removed: no difference
    got = {d.memory_id: (d.change, d.fields) for d in diff(branches, "b")}
    assert got == {
        "m_new": ("added", []),
        "m1": ("changed", ["text"]),
        "m2": ("changed", ["state"]),
        "m3": ("removed", []),
    }


def test_merge_without_conflict_replays_events_atomically(main_ledger, branches):
    fork = _seed(main_ledger)
    branches.create("b", fork, "alice")
    _team(branches, "b")
    br = branches.ledger("b")
    br.update("m1", "alpha from branch", "bob")
    br.add("c", "new on branch", "bob", memory_id="m_new")
    br.add("other", "new cube on branch", "bob", memory_id="m_other")
    main_ledger.update("m2", "beta on main", "alice")  # an unrelated change on main
    main_ledger.get("m1", actor="auditor")  # a read does not conflict
    head_before = main_ledger.head()
    result = merge(branches, "b", "carol")
    assert result.memories == ["m1", "m_new", "m_other"]
    assert main_ledger.get("m1").text == "alpha from branch"
    assert main_ledger.get("m1").updated_by == "bob"
    assert main_ledger.get("m_new").text == "new on branch"
    assert main_ledger.get("m_other").cube == "other"
    assert main_ledger.get("m2").text == "beta on main"
    appended = list(main_ledger.log.read(head_before + 1))
    assert appended[-1].type == ev.BRANCH_MERGED and appended[-1].actor == "carol"
    assert {e.event_id for e in appended[:-1]} == {e.event_id for e in br.log.own_events()}
    assert main_ledger.log.verify().ok
    assert branches.info("b").status == "merged"
    with pytest.raises(StateError):
        br.add("c", "after merge", "bob")
    with pytest.raises(StateError):
        merge(branches, "b", "carol")


def test_merge_with_conflicts_names_memories_and_writes_nothing(main_ledger, branches):
    fork = _seed(main_ledger)
    branches.create("b", fork, "alice")
    _team(branches, "b")
    br = branches.ledger("b")
    br.update("m1", "alpha from branch", "bob")
    br.update("m2", "beta from branch", "bob")
    br.add("newcube", "x", "bob")
    main_ledger.update("m1", "alpha on main", "alice")
    main_ledger.change_state("m2", "archived", "alice")
    main_ledger.add("newcube", "y", "alice")
    head = main_ledger.head()
    with pytest.raises(MergeConflict) as info:
        merge(branches, "b", "carol")
    refs = {(c.kind, c.ref) for c in info.value.conflicts}
    assert refs == {("memory", "m1"), ("memory", "m2"), ("cube", "newcube")}
    assert "m1" in str(info.value) and "memory.updated" in str(info.value)
    assert main_ledger.head() == head
    assert branches.info("b").status == "active"


def test_strict_merge_refuses_when_a_written_stream_moved(main_ledger, branches):
    fork = _seed(main_ledger)
    branches.create("b", fork, "alice")
    _team(branches, "b")
    branches.ledger("b").update("m1", "alpha from branch", "bob")
    main_ledger.add("c", "unrelated", "alice")
    head = main_ledger.head()
    with pytest.raises(MergeConflict) as info:
        merge(branches, "b", "carol", strict=True)
    assert info.value.conflicts[0].ref == "c"
    assert main_ledger.head() == head
    assert merge(branches, "b", "carol").events  # the default memory-level check lets it through


def test_merge_retries_when_the_base_moves_during_the_merge(main_ledger, branches, monkeypatch):
    fork = _seed(main_ledger)
    branches.create("b", fork, "alice")
    _team(branches, "b")
    branches.ledger("b").update("m1", "alpha from branch", "bob")
    real_append = main_ledger.log.append
    calls = {"n": 0}

    def racing_append(events, expected=None):
        calls["n"] += 1
        if calls["n"] == 1:  # someone writes to the cube between the check and the append
            real_append([ev.NewEvent("c", ev.MEMORY_UPDATED, {"memory_id": "m2", "text": "race"}, "zed")])
            raise ConcurrencyConflict("c", 0, 1)
        return real_append(events, expected)

    monkeypatch.setattr(main_ledger.log, "append", racing_append)
    merge(branches, "b", "carol")
    assert calls["n"] == 2
    assert main_ledger.get("m1").text == "alpha from branch"


def test_cli_branch_flow(tmp_path, capsys):
    d = str(tmp_path / "data")
    run = lambda *a: main(["--data", d, *a])  # noqa: E731
    assert run("init") == 0
    assert run("add", "--cube", "c", "--id", "m1", "--actor", "a", "one") == 0
    capsys.readouterr()
    assert run("branch", "create", "exp", "--at", "1", "--actor", "a", "--json") == 0
    assert json.loads(capsys.readouterr().out)["fork_offset"] == 1
    assert run("update", "m1", "--branch", "exp", "--actor", "a", "two") == 0
    assert run("add", "--cube", "c", "--id", "m2", "--branch", "exp", "--actor", "a", "three") == 0
    capsys.readouterr()
    assert run("get", "m1", "--branch", "exp", "--json") == 0
    assert json.loads(capsys.readouterr().out)["text"] == "two"
    assert run("get", "m1", "--json") == 0
    assert json.loads(capsys.readouterr().out)["text"] == "one"
    assert run("get", "m2") == 3
    capsys.readouterr()
    assert run("history", "m1", "--branch", "exp", "--json") == 0
    assert [v["text"] for v in json.loads(capsys.readouterr().out)] == ["one", "two"]
    assert run("log", "--branch", "exp") == 0
    assert [json.loads(x)["offset"] for x in capsys.readouterr().out.splitlines()] == [0, 1, 2, 3]
    assert run("branch", "list", "--json") == 0
    [row] = json.loads(capsys.readouterr().out)
    assert (row["name"], row["events"], row["head"], row["status"]) == ("exp", 2, 3, "active")
    assert run("branch", "diff", "exp", "--json") == 0
    assert {(x["id"], x["change"]) for x in json.loads(capsys.readouterr().out)} == {("m1", "changed"), ("m2", "added")}
    assert run("update", "m1", "--actor", "a", "main moved") == 0
    capsys.readouterr()
    assert run("branch", "merge", "exp", "--actor", "a", "--json") == 4
    out = capsys.readouterr()
    assert json.loads(out.out)["conflicts"][0]["ref"] == "m1" and "conflict" in out.err
    assert run("branch", "create", "exp2", "--from", "exp", "--at", "3", "--actor", "a") == 0
    assert run("get", "m2", "--branch", "exp2") == 0
    assert run("branch", "drop", "exp", "--actor", "a") == 2
    assert "nested" in capsys.readouterr().err
    assert run("branch", "drop", "exp2", "--actor", "a") == 0 and run("branch", "drop", "exp", "--actor", "a") == 0
    assert run("get", "m1", "--branch", "nope") == 3


def test_search_overlay_of_nested_branch(main_ledger, branches):
    from ledger.timemachine.restore import restore_memory

    fork = _seed(main_ledger)
    main_ledger.add("c", "after fork on main", "alice", memory_id="late")
    branches.create("a", fork, "alice")
    _team(branches, "a")
    a = branches.ledger("a")
    a.update("m1", "alpha on a", "bob")
    branches.create("a2", None, "bob", from_branch="a")
    a2 = branches.ledger("a2")
    a2.add("c", "new on a2", "bob", memory_id="n")
    restore_memory(a2, "m2", 0, "bob")  # m2 did not exist at offset 0: gone on a2
    a2.get("m1", actor="reader")  # reads are recorded on main, they change nothing
    fork_offset, overlay = branches.overlay("a2")
    assert fork_offset == fork
    assert set(overlay) == {"m1", "n", "m2"}
    assert overlay["m1"].text == "alpha on a" and overlay["n"].text == "new on a2" and overlay["m2"] is None
    # as of an offset of a2 that is below a's own events: only main up to there, nothing overlaid
    assert branches.overlay("a2", fork) == (fork, {})
    fork_offset, overlay = branches.overlay("a2", fork + 1)
    assert (fork_offset, set(overlay)) == (fork, {"m1"})


def test_merge_reports_an_event_id_used_on_both_sides(main_ledger, branches):
    fork = _seed(main_ledger)
    branches.create("b", fork, "alice")
    _team(branches, "b")
    branches.ledger("b").add("c", "on branch", "bob", event_id="retry-key-1")
    main_ledger.add("c", "on main", "alice", event_id="retry-key-1")
    with pytest.raises(MergeConflict) as info:
        merge(branches, "b", "carol")
    assert [(c.kind, c.ref) for c in info.value.conflicts] == [("event id", "retry-key-1")]


def test_cli_head_and_verify_on_a_branch(tmp_path, capsys):
    d = str(tmp_path / "data")
    run = lambda *a: main(["--data", d, *a])  # noqa: E731
    run("init")
    run("add", "--cube", "c", "--id", "m1", "--actor", "a", "one")
    run("branch", "create", "b", "--at", "0", "--actor", "a")
    run("add", "--cube", "c", "--id", "m2", "--actor", "a", "two", "--branch", "b")
    capsys.readouterr()
    assert run("head", "--branch", "b", "--json") == 0
    assert json.loads(capsys.readouterr().out)["offset"] == 1  # fork at 0, one own event
    assert run("verify", "--branch", "b", "--json") == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] and out["checked"] == 1


def test_concurrent_writers_on_one_branch_keep_a_gapless_chain(main_ledger, branches):
    import threading

    _seed(main_ledger)
    branches.create("b", None, "alice")
    _team(branches, "b", writers=[f"w{n}" for n in range(4)], owners=())
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            br = branches.ledger("b")  # each thread its own Ledger; the store gives each thread a connection
            for i in range(25):
                br.add("c", f"writer {n} item {i}", f"w{n}")
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    log = branches.log("b")
    own = list(log.own_events())
    assert len(own) == 100
    assert [e.offset for e in own] == list(range(log.fork + 1, log.fork + 101))
    assert [e.version for e in own] == list(range(own[0].version, own[0].version + 100))
    assert log.verify().ok


def test_audit_and_provenance_on_a_branch(tmp_path, capsys):
    d = str(tmp_path / "data")
    run = lambda *a: main(["--data", d, *a])  # noqa: E731
    run("init")
    run("add", "--cube", "c", "--id", "m1", "--actor", "alice", "one")
    run("branch", "create", "b", "--actor", "alice")
    run("branch", "grant", "b", "--principal", "bob", "--role", "writer", "--actor", "alice")
    run("update", "m1", "--branch", "b", "--actor", "bob", "two")
    capsys.readouterr()
    assert run("audit", "--memory", "m1", "--branch", "b", "--json") == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [(r["actor"], r["action"]) for r in rows] == [("alice", "created"), ("bob", "changed")]
    assert run("audit", "--memory", "m1", "--json") == 0
    assert [json.loads(x)["actor"] for x in capsys.readouterr().out.splitlines()] == ["alice"]
    assert run("provenance", "m1", "--branch", "b", "--json") == 0
    assert [e["actor"] for e in json.loads(capsys.readouterr().out)["events"]] == ["alice", "bob"]


def test_an_interrupted_merge_is_completed_by_running_it_again(main_ledger, branches, monkeypatch, tmp_path):
    fork = _seed(main_ledger)
    branches.create("a", fork, "alice")
    _team(branches, "a")
    branches.ledger("a").update("m1", "on a", "bob")
    branches.create("a2", None, "alice", from_branch="a")
    _team(branches, "a2")
    branches.ledger("a2").update("m2", "on a2", "bob")
    real_append = main_ledger.log.append

    def crash_on_record(events, expected=None):
        if any(e.type == ev.BRANCH_MERGED for e in events):
            raise RuntimeError("crash before the merge record")
        return real_append(events, expected)

    monkeypatch.setattr(main_ledger.log, "append", crash_on_record)
    with pytest.raises(RuntimeError):
        merge(branches, "a2", "carol")  # into a: events landed on a, the record on main did not
    monkeypatch.undo()
    assert branches.info("a2").status == "active"
    result = merge(branches, "a2", "carol")
    assert branches.info("a2").status == "merged" and result.into == "a"
    assert len([e for e in branches.log("a").own_events() if e.payload.get("memory_id") == "m2"]) == 1
    records = [e for e in main_ledger.log.read_stream(ev.SYSTEM_STREAM) if e.type == ev.BRANCH_MERGED]
    assert len(records) == 1
    # into main: events and record landed atomically, but the status update was lost
    merge(branches, "a", "carol")
    with sqlite3.connect(tmp_path / "branches.sqlite") as conn:
        conn.execute("UPDATE branches SET status = 'active' WHERE name = 'a'")
    head = main_ledger.head()
    again = merge(branches, "a", "carol")
    assert main_ledger.head() == head and branches.info("a").status == "merged"
    assert {e.payload.get("memory_id") for e in again.events} >= {"m1", "m2"}


def test_diff_of_a_nested_branch_against_main_or_parent(main_ledger, branches):
    fork = _seed(main_ledger)
    branches.create("a", fork, "alice")
    _team(branches, "a")
    branches.ledger("a").update("m1", "changed on a", "bob")
    branches.create("a2", None, "bob", from_branch="a")
    branches.ledger("a2").add("c", "new on a2", "bob", memory_id="n")
    against_main = {d.memory_id: d.change for d in diff(branches, "a2")}
    assert against_main == {"m1": "changed", "n": "added"}
    assert {d.memory_id: d.change for d in diff(branches, "a2", against="parent")} == {"n": "added"}
    assert diff(branches, "a2")[0].before.text == "alpha"
    with pytest.raises(InvalidRequest):
        diff(branches, "a2", against="sideways")
