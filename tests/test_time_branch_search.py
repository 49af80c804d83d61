"""Search on a branch: main's views as of the fork with the branch's changes overlaid."""

from __future__ import annotations

import pytest

from ledger import events as ev
from ledger.timemachine.branch_search import search_branch
from ledger.timemachine.branches import Branches
from ledger.timemachine.restore import restore_memory
from projections.view_set import ViewSet
from tests.ledgers import make_ledger


@pytest.fixture()
def world(tmp_path):
    main = make_ledger(tmp_path / "log.sqlite")
    main.add("c", "the cat sat on the mat", "alice", memory_id="m1")
    main.add("c", "a cat chases the dog", "alice", memory_id="m2")
    main.add("c", "weather report for monday", "alice", memory_id="m0")
    fork = main.head()
    branches = Branches(main)
    branches.create("b", fork, "alice")
    branches.grant("b", "bob", "writer", "alice")  # bob writes on alice's branch with her consent
    b = branches.ledger("b")
    b.update("m1", "the bird sang all day", "bob")
    b.add("c", "cat food bought on the branch", "bob", memory_id="m3")
    restore_memory(b, "m2", 0, "bob")  # m2 is gone on the branch
    main.add("c", "a cat seen on main after the fork", "alice", memory_id="m4")
    views = ViewSet.open(main, data_dir=tmp_path, kinds=["keyword", "graph"])
    yield main, branches, views, fork
    views.close()
    branches.close()
    main.log.close()


def test_branch_search_sees_the_branch_and_main_search_does_not(world):
    main, branches, views, fork = world
    on_main = {h.memory_id for h in views.search("cat", cube="c", k=10)}
    assert on_main == {"m1", "m2", "m4"}
    hits = search_branch(views, branches, "b", "cat", cube="c", k=10)
    assert {h.memory_id for h in hits} == {"m3"}
    [m3] = hits
    b = branches.ledger("b")
    assert m3.event_ids == [e.event_id for e in b.log.read_refs("m3")]
    assert {h.memory_id for h in search_branch(views, branches, "b", "bird", cube="c")} == {"m1"}
    assert {h.memory_id for h in search_branch(views, branches, "b", "cat", cube="c", as_of=fork)} == {"m1", "m2"}


def test_branch_search_records_reads_on_main_naming_the_branch(world):
    main, branches, views, _ = world
    search_branch(views, branches, "b", "cat", cube="c", actor="mallory")
    [read] = [e for e in main.events() if e.type == ev.MEMORY_READ]
    assert (read.actor, read.stream, read.payload["branch"], read.payload["memory_ids"]) == (
        "mallory",
        "c",
        "b",
        ["m3"],
    )
    assert read.payload["operation"] == "search" and read.payload["query"] == "cat"


def test_cli_search_branch(tmp_path, capsys):
    import json

    from ledger.cli.app import main

    d = str(tmp_path / "data")
    run = lambda *a: main(["--data", d, *a])  # noqa: E731
    run("init")
    run("add", "--cube", "c", "--id", "m1", "--actor", "a", "the cat sat on the mat")
    run("branch", "create", "b", "--actor", "a")
    run("update", "m1", "--branch", "b", "--actor", "a", "the bird sang")
    run("add", "--cube", "c", "--id", "m2", "--branch", "b", "--actor", "a", "a cat on the branch")
    capsys.readouterr()
    assert run("search", "--no-vector", "--cube", "c", "--json", "--actor", "eve", "cat") == 0
    assert [h["id"] for h in json.loads(capsys.readouterr().out)] == ["m1"]
    assert run("search", "--no-vector", "--cube", "c", "--json", "--branch", "b", "--actor", "eve", "cat") == 0
    assert [h["id"] for h in json.loads(capsys.readouterr().out)] == ["m2"]
    assert run("search", "--no-vector", "--cube", "c", "--json", "--branch", "b", "--as-of", "1", "cat") == 0
    assert [h["id"] for h in json.loads(capsys.readouterr().out)] == ["m1"]
    assert run("audit", "--actor", "eve", "--json") == 0
    reads = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [(r["memory_ids"], r["details"].get("branch")) for r in reads] == [(["m1"], None), (["m2"], "b")]
    assert run("search", "--no-vector", "--branch", "nope", "cat") == 3


def test_branch_versions_get_the_same_entity_focus_as_main(tmp_path):
    """A memory changed on a branch is ranked with the same signals as on main (entity focus)."""
    from ledger.config import init_data_dir
    from ledger.factory import open_ledger
    from ledger.timemachine.branch_search import search_branch
    from ledger.timemachine.branches import Branches
    from projections.view_set import ViewSet

    d, _ = init_data_dir(tmp_path / "d")
    led = open_ledger(d)
    moved = led.add("c", "Caroline moved from Sweden to Lisbon four years ago.", actor="x").id
    led.add("c", "Caroline's favourite drink is green tea.", actor="x")
    views = ViewSet.open(led, d, kinds=["keyword", "graph"])
    try:
        main_hits = views.search("where did Caroline move to?", cube="c", k=2)
        branches = Branches(led)
        branches.create("w", at=led.head(), actor="x")
        branches.ledger("w").update(moved, "Caroline moved from Sweden to Porto four years ago.", actor="x")
        branch_hits = search_branch(views, branches, "w", "where did Caroline move to?", cube="c", k=2)
        assert [h.memory_id for h in branch_hits] == [h.memory_id for h in main_hits]
        on_branch = next(h for h in branch_hits if h.memory_id == moved)
        on_main = next(h for h in main_hits if h.memory_id == moved)
        assert on_branch.memory.text.endswith("Porto four years ago.")
        assert on_main.signals.get("entity_boost", 1.0) > 1.0
        assert on_branch.signals.get("entity_boost") == on_main.signals.get("entity_boost")
        branches.close()
    finally:
        views.close()


def test_feedback_rescores_a_branch_like_main_and_adds_no_candidates(tmp_path):
    """Regression (found by tests/test_filter_properties.py): pseudo-relevance feedback only
    rescores the candidates on main, but on a branch it added every own version that contains an
    expansion term, so "cloud" was a hit for "river" on the branch and not on main."""
    main = make_ledger(tmp_path / "log.sqlite")
    main.add("c", "river cloud", "alice", memory_id="m1")
    for i, word in enumerate(["alpha", "beta", "gamma", "delta", "epsilon", "zeta"]):
        main.add("c", word, "alice", memory_id=f"f{i}")
    branches = Branches(main)
    branches.create("b", main.head(), "alice")
    branches.ledger("b").add("c", "cloud", "alice", memory_id="x")
    views = ViewSet.open(main, data_dir=tmp_path, kinds=["keyword", "graph"])
    try:
        assert {h.memory_id for h in search_branch(views, branches, "b", "river", cube="c")} == {"m1"}
        main.add("c", "cloud", "alice", memory_id="y")  # the same memory on main is no hit either
        assert {h.memory_id for h in views.search("river", cube="c")} == {"m1"}
    finally:
        views.close()
        branches.close()
        main.log.close()
