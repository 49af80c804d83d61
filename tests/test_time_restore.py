"""Restore: compensating events bring a memory or a cube back; history is never rewritten."""

from __future__ import annotations

import json

import pytest

from ledger import events as ev
from ledger.cli.app import main
from ledger.errors import InvalidRequest, NotFound, StateError
from ledger.timemachine.restore import restore_cube, restore_memory
from tests.fake_sealer import FakeSealer
from tests.ledgers import make_ledger


@pytest.fixture()
def ledger(tmp_path):
    sealer = FakeSealer()
    led = make_ledger(tmp_path / "log.sqlite", sealer=sealer)
    yield led
    led.log.close()


def test_restore_memory_appends_a_compensating_event(ledger):
    a = ledger.add("c", "v1", "alice", memory_id="m", metadata={"k": 1}, tags=["t"])
    ledger.update("m", "v2", "bob", metadata={"k": 2})
    ledger.change_state("m", "archived", "bob")
    before = list(ledger.events())
    result = restore_memory(ledger, "m", a.offset, "carol")
    assert result.restored == ["m"]
    assert list(ledger.events())[: len(before)] == before  # nothing rewritten
    [e] = result.events
    assert (e.type, e.actor, e.payload["to_offset"]) == (ev.MEMORY_RESTORED, "carol", a.offset)
    m = ledger.get("m")
    assert (m.text, m.metadata, m.tags, m.state, m.version) == ("v1", {"k": 1}, ["t"], "generated", 4)
    assert [v.text for v in ledger.history("m")] == ["v1", "v2", "v2", "v1"]
    again = restore_memory(ledger, "m", a.offset, "carol")  # already there: nothing written
    assert again.events == [] and again.unchanged == ["m"]


def test_restore_to_before_a_memory_existed_removes_it(ledger):
    ledger.add("c", "keep", "alice", memory_id="k")
    at = ledger.head()
    ledger.add("c", "later", "alice", memory_id="m")
    restore_memory(ledger, "m", at, "carol")
    with pytest.raises(NotFound):
        ledger.get("m")
    assert ledger.get("m", as_of=at + 1).text == "later"  # the past still answers
    restore_memory(ledger, "m", at + 1, "carol")  # and it can be brought back
    assert ledger.get("m").text == "later"


def test_restore_cube_in_one_atomic_batch(ledger):
    ledger.add("c", "one", "alice", memory_id="m1")
    ledger.add("c", "two", "alice", memory_id="m2")
    ledger.add("other", "untouched", "alice", memory_id="o")
    at = ledger.head()
    ledger.update("m1", "one changed", "bob")
    ledger.change_state("m2", "activated", "bob")
    ledger.add("c", "three", "bob", memory_id="m3")
    merged = ledger.merge(["m1", "m3"], "one and three", "bob")
    ledger.update("o", "other changed", "bob")
    result = restore_cube(ledger, "c", at, "carol")
    assert sorted(result.restored) == sorted(["m1", "m2", "m3", merged.id])
    assert len({e.correlation_id for e in result.events}) == 1
    assert sorted(ledger.cube_memories("c")) == ["m1", "m2"]
    assert ledger.get("m1").text == "one" and ledger.get("m1").state == "generated"
    assert ledger.get("m2").state == "generated"
    assert ledger.get("o").text == "other changed"
    assert restore_cube(ledger, "c", at, "carol").events == []
    with pytest.raises(NotFound):
        restore_cube(ledger, "nope", at, "carol")


def test_restore_refuses_frozen_memories_and_bad_targets(ledger):
    ledger.add("c", "v1", "alice", memory_id="m")
    at = ledger.head()
    ledger.add("c", "other", "alice", memory_id="n")
    ledger.update("m", "v2", "alice")
    ledger.change_state("m", "frozen", "alice")
    head = ledger.head()
    with pytest.raises(StateError):
        restore_memory(ledger, "m", at, "carol")
    with pytest.raises(StateError) as info:
        restore_cube(ledger, "c", at, "carol")
    assert "m" in str(info.value) and ledger.head() == head  # all or nothing: n is not removed either
    with pytest.raises(InvalidRequest):
        restore_memory(ledger, "m", head + 5, "carol")
    with pytest.raises(NotFound):
        restore_memory(ledger, "ghost", at, "carol")


def test_restore_of_sealed_content_copies_ciphertext_and_cannot_undo_forgetting(ledger):
    ledger.add("c", "secret", "alice", memory_id="m", subject="subj", tags=["a"])
    at = ledger.head()
    ledger.change_state("m", "activated", "alice")
    result = restore_memory(ledger, "m", at, "carol")
    payload = result.events[0].payload
    assert "text" not in payload and "metadata" not in payload and payload["sealed"]["keys"][0]["id"] == "subj"
    m = ledger.get("m")
    assert (m.text, m.state, m.tags, m.sealed) == ("secret", "generated", ["a"], True)
    ledger.sealer.forgotten.add("subj")  # crypto-shredded: a restore must not bring the text back
    restore_memory(ledger, "m", at + 1, "carol")
    m = ledger.get("m")
    assert m.text is None and m.forgotten and m.state == "activated"


def test_cli_restore(tmp_path, capsys):
    d = str(tmp_path / "data")
    run = lambda *a: main(["--data", d, *a])  # noqa: E731
    run("init")
    run("add", "--cube", "c", "--id", "m", "--actor", "a", "v1")
    run("update", "m", "--actor", "a", "v2")
    capsys.readouterr()
    assert run("restore", "m", "--to", "1", "--actor", "auditor", "--json") == 0
    out = json.loads(capsys.readouterr().out)
    assert out["restored"] == ["m"] and out["to_offset"] == 1
    assert run("get", "m", "--json") == 0
    assert json.loads(capsys.readouterr().out)["text"] == "v1"
    assert run("restore", "--cube", "c", "--to", "0", "--actor", "auditor") == 0
    assert "restored 1 memory" in capsys.readouterr().out
    assert run("get", "m") == 3
    assert run("restore", "--to", "0") == 2  # neither an id nor --cube
    assert run("restore", "m", "--cube", "c", "--to", "0") == 2


def test_restore_and_branches_with_the_real_cipher_respect_forgetting(tmp_path, capsys):
    d = str(tmp_path / "data")
    run = lambda *a: main(["--data", d, *a])  # noqa: E731
    run("init")
    assert run("add", "--cube", "c", "--id", "m", "--subject", "s1", "--actor", "a", "secret one") == 0
    assert run("update", "m", "--actor", "a", "secret two") == 0
    assert run("restore", "m", "--to", "1", "--actor", "a") == 0
    assert run("branch", "create", "b", "--actor", "a") == 0
    assert run("update", "m", "--branch", "b", "--actor", "a", "secret on the branch") == 0
    capsys.readouterr()
    assert run("get", "m", "--json") == 0
    assert json.loads(capsys.readouterr().out)["text"] == "secret one"
    assert run("forget", "--subject", "s1", "--actor", "dpo") == 0
    capsys.readouterr()
    for extra in ([], ["--branch", "b"]):
        assert run("get", "m", "--json", *extra) == 0
        m = json.loads(capsys.readouterr().out)
        assert m["text"] is None and m["forgotten"]
    assert run("restore", "m", "--to", "1", "--actor", "a", "--json") == 0
    assert json.loads(capsys.readouterr().out)["restored"] == []  # ciphertext only: nothing comes back
    for path in (tmp_path / "data").rglob("*"):
        if path.is_file():
            assert b"secret on the branch" not in path.read_bytes()
