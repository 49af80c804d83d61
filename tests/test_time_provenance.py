"""Provenance: the events behind a memory version, merge sources recursively, restores."""

from __future__ import annotations

import json
import sqlite3

import pytest

from ledger.cli.app import main
from ledger.errors import InvalidRequest, NotFound
from ledger.timemachine.provenance import provenance
from ledger.timemachine.restore import restore_memory


def test_chain_of_events_for_each_version(ledger):
    a = ledger.add("c", "v1", "alice", memory_id="m")
    b = ledger.update("m", "v2", "bob")
    ledger.get("m", actor="eve")  # reads are not part of a version's provenance
    c = ledger.change_state("m", "archived", "carol")
    tree = provenance(ledger, "m")
    assert tree["version"] == 3
    assert [(e["offset"], e["actor"], e["action"]) for e in tree["events"]] == [
        (a.offset, "alice", "created"),
        (b.offset, "bob", "changed"),
        (c.offset, "carol", "archived"),
    ]
    assert all(e["hash_ok"] for e in tree["events"])
    assert tree["events"][1]["prev_hash"] == next(ledger.log.read(b.offset - 1, b.offset - 1)).hash
    assert [e["offset"] for e in provenance(ledger, "m", version=2)["events"]] == [a.offset, b.offset]
    assert provenance(ledger, "m", as_of=a.offset)["state"]["text"] == "v1"
    with pytest.raises(InvalidRequest):
        provenance(ledger, "m", version=9)
    with pytest.raises(NotFound):
        provenance(ledger, "nope")


def test_merge_sources_followed_recursively(ledger):
    ledger.add("c", "a", "alice", memory_id="a")
    ledger.add("c", "b", "alice", memory_id="b")
    ledger.update("b", "b2", "bob")
    ab = ledger.merge(["a", "b"], "a+b", "carol")
    ledger.add("c", "x", "alice", memory_id="x")
    top = ledger.merge([ab.id, "x"], "a+b+x", "dave")
    tree = provenance(ledger, top.id)
    assert [s["memory"] for s in tree["sources"]] == [ab.id, "x"]
    inner = tree["sources"][0]
    assert inner["as_of"] == top.offset - 1 and inner["state"]["text"] == "a+b"
    assert [s["memory"] for s in inner["sources"]] == ["a", "b"]
    assert [e["action"] for e in inner["sources"][1]["events"]] == ["created", "changed"]
    assert inner["sources"][1]["state"]["text"] == "b2"


def test_restored_version_points_at_its_origin(ledger):
    a = ledger.add("c", "v1", "alice", memory_id="m")
    ledger.update("m", "v2", "bob")
    restore_memory(ledger, "m", a.offset, "carol")
    tree = provenance(ledger, "m")
    assert tree["events"][-1]["action"] == f"restored to offset {a.offset}"
    [origin] = tree["restored_from"]
    assert origin["state"]["text"] == "v1" and origin["as_of"] == a.offset


def test_tampered_event_is_flagged(ledger, tmp_path):
    ledger.add("c", "v1", "alice", memory_id="m")
    ledger.log.close()
    with sqlite3.connect(tmp_path / "log.sqlite") as conn:
        conn.execute("UPDATE events SET actor = 'mallory' WHERE type = 'memory.added'")
    tree = provenance(ledger, "m")
    assert tree["events"][0]["actor"] == "mallory" and tree["events"][0]["hash_ok"] is False


def test_cli_provenance(tmp_path, capsys):
    d = str(tmp_path / "data")
    run = lambda *a: main(["--data", d, *a])  # noqa: E731
    run("init")
    run("add", "--cube", "c", "--id", "m", "--actor", "a", "v1")
    run("update", "m", "--actor", "b", "v2")
    capsys.readouterr()
    assert run("provenance", "m", "--json") == 0
    assert [e["actor"] for e in json.loads(capsys.readouterr().out)["events"]] == ["a", "b"]
    assert run("provenance", "m", "--as-of", "1") == 0
    assert "version 1" in capsys.readouterr().out


def test_events_merged_from_a_branch_name_it(ledger):
    from ledger.timemachine.branch_merge import merge
    from ledger.timemachine.branches import Branches

    ledger.add("c", "v1", "alice", memory_id="m")
    branches = Branches(ledger)
    branches.create("fix", None, "alice")
    branches.grant("fix", "bob", "writer", "alice")
    branches.grant("fix", "carol", "owner", "alice")
    branches.ledger("fix").update("m", "v2 from the branch", "bob")
    merge(branches, "fix", "carol")
    events = provenance(ledger, "m")["events"]
    assert [e.get("via_branch") for e in events] == [None, "fix"]
    assert events[1]["actor"] == "bob"
    branches.close()
