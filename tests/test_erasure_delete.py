"""Issue 12, delete: a tombstone that leaves every head view and search, while as-of reads before it
still see the memory and restore brings it back; bulk deletes are one atomic batch."""

from __future__ import annotations

import json

import pytest

from ledger.errors import InvalidRequest, NotFound, StateError
from ledger.timemachine.restore import restore_memory
from projections.view_set import ViewSet
from tests.cli_helpers import init_data, run
from tests.service_support import make_service


def _ids(hits) -> set[str]:
    return {h.memory_id for h in hits}


def test_delete_leaves_head_reads_and_search_but_not_the_past(data_dir_ledger):
    led = data_dir_ledger
    tea = led.add("c", "Alice drinks green tea every morning", "agent", metadata={"user_id": "u1"})
    led.add("c", "Alice parks on level three", "agent")
    gone = led.delete(tea.id, "agent", reason="user asked")
    with pytest.raises(NotFound, match="deleted at offset"):
        led.get(tea.id)
    assert led.get(tea.id, as_of=tea.offset).text == "Alice drinks green tea every morning"
    assert tea.id not in led.cube_memories("c") and tea.id in led.cube_memories("c", as_of=tea.offset)
    with ViewSet.open(led, kinds=["keyword", "graph"]) as views:
        assert tea.id not in _ids(views.search("green tea", cube="c"))
        assert tea.id in _ids(views.search("green tea", cube="c", as_of=gone.offset - 1))
    event = next(iter(led.log.read(gone.offset, gone.offset)))
    assert event.type == "memory.deleted" and event.payload == {"memory_id": tea.id, "reason": "user asked"}
    # restore brings it back, with a compensating event; search at head finds it again
    restore_memory(led, tea.id, gone.offset - 1, "agent")
    assert led.get(tea.id).text == "Alice drinks green tea every morning"
    with ViewSet.open(led, kinds=["keyword", "graph"]) as views:
        assert tea.id in _ids(views.search("green tea", cube="c"))


def test_views_folded_incrementally_equal_a_rebuild_after_deletes(data_dir_ledger):
    led = data_dir_ledger
    ids = [led.add("c", f"note number {i} about green tea", "agent").id for i in range(6)]
    with ViewSet.open(led, kinds=["keyword", "graph"]) as views:
        views.catch_up()
        led.delete(ids[1], "agent")
        led.delete_where("c", "agent", {"id": {"$in": ids[3:5]}})
        views.catch_up()
        incremental = [(h.memory_id, round(h.score, 6)) for h in views.search("green tea", cube="c", k=10)]
        views.rebuild()
        rebuilt = [(h.memory_id, round(h.score, 6)) for h in views.search("green tea", cube="c", k=10)]
    assert incremental == rebuilt and {m for m, _ in rebuilt} == {ids[0], ids[2], ids[5]}


def test_bulk_delete_is_one_atomic_batch_or_nothing(data_dir_ledger):
    led = data_dir_ledger
    a = led.add("c", "u1 likes jazz", "agent", metadata={"user_id": "u1"})
    b = led.add("c", "u1 likes rain", "agent", metadata={"user_id": "u1"})
    keep = led.add("c", "u2 likes sun", "agent", metadata={"user_id": "u2"})
    out = led.delete_where("c", "agent", {"user_id": "u1"}, reason="account closed")
    assert sorted(out.memory_ids) == sorted([a.id, b.id]) and out.offsets == [out.offsets[0], out.offsets[0] + 1]
    events = list(led.log.read(out.offsets[0], out.offsets[-1]))
    assert {e.correlation_id for e in events} == {out.correlation_id} and out.correlation_id
    assert set(led.cube_memories("c")) == {keep.id}
    # a frozen memory among the matches refuses the whole batch: nothing is written
    f1 = led.add("c", "u3 one", "agent", metadata={"user_id": "u3"})
    f2 = led.add("c", "u3 two", "agent", metadata={"user_id": "u3"})
    for state in ("activated", "frozen"):
        led.change_state(f2.id, state, "agent")
    head = led.head()
    with pytest.raises(StateError, match="frozen"):
        led.delete_where("c", "agent", {"user_id": "u3"})
    assert led.head() == head and f1.id in led.cube_memories("c")


def test_bad_deletes_are_one_line_and_write_nothing(data_dir_ledger):
    led = data_dir_ledger
    m = led.add("c", "something to keep", "agent")
    head = led.head()
    with pytest.raises(NotFound):
        led.delete("mem_nope", "agent")
    with pytest.raises(InvalidRequest, match="unknown operator"):
        led.delete_where("c", "agent", {"user_id": {"$regex": "x"}})
    with pytest.raises(NotFound):
        led.delete_where("no-such-cube", "agent")
    with pytest.raises(InvalidRequest, match="reason"):
        led.delete(m.id, "agent", reason="x" * 3000)
    led.delete(m.id, "agent")
    with pytest.raises(NotFound, match="deleted"):
        led.delete(m.id, "agent")
    assert led.head() == head + 1


def test_cli_delete_by_id_and_by_filter(tmp_path, capsys):
    data = init_data(tmp_path, capsys)
    ids = []
    for text, user in (("alpha fact", "u1"), ("beta fact", "u1"), ("gamma fact", "u2")):
        code, out, _ = run(
            capsys,
            "--data",
            data,
            "add",
            "--cube",
            "c",
            "--actor",
            "a",
            "--json",
            "--metadata",
            json.dumps({"user_id": user}),
            text,
        )
        ids.append(json.loads(out)["id"])
    assert run(capsys, "--data", data, "delete", ids[2], "--actor", "a")[0] == 0
    code, out, _ = run(
        capsys, "--data", data, "delete", "--cube", "c", "--where", '{"user_id": "u1"}', "--actor", "a", "--json"
    )
    assert code == 0 and sorted(json.loads(out)["deleted"]) == sorted(ids[:2])
    code, _, err = run(capsys, "--data", data, "get", ids[0])
    assert code == 3 and "deleted" in err
    code, _, err = run(capsys, "--data", data, "delete", "--where", "{}", "--actor", "a")
    assert code == 2 and "--where needs --cube" in err


def test_http_delete_needs_writer_and_bulk_needs_owner(tmp_path):
    s = make_service(tmp_path)
    c = s.client
    c.post("/v1/cubes", json={"cube": "w"}, headers=s.h("alice"))
    for who, role in (("bob", "writer"), ("carol", "reader")):
        c.post("/v1/cubes/w/grants", json={"principal": who, "role": role}, headers=s.h("alice"))
    a = c.post(
        "/v1/memories", json={"cube": "w", "text": "first memory", "metadata": {"user_id": "u1"}}, headers=s.h("alice")
    ).json()
    b = c.post(
        "/v1/memories", json={"cube": "w", "text": "second memory", "metadata": {"user_id": "u1"}}, headers=s.h("alice")
    ).json()
    assert c.request("DELETE", f"/v1/memories/{a['id']}", headers=s.h("carol")).status_code == 403
    r = c.request("DELETE", f"/v1/memories/{a['id']}", json={"reason": "stale"}, headers=s.h("bob"))
    assert r.status_code == 200 and r.json()["id"] == a["id"]
    assert c.get(f"/v1/memories/{a['id']}", headers=s.h("alice")).status_code == 404
    assert c.get(f"/v1/memories/{a['id']}?as_of={a['offset']}", headers=s.h("alice")).json()["text"] == "first memory"
    assert c.post("/v1/cubes/w/delete", json={"where": {"user_id": "u1"}}, headers=s.h("bob")).status_code == 403
    r = c.post("/v1/cubes/w/delete", json={"where": {"user_id": "u1"}}, headers=s.h("alice"))
    assert r.status_code == 200 and r.json()["deleted"] == [b["id"]]
    assert c.post("/v1/cubes/w/delete", json={"where": {"$bad": 1}}, headers=s.h("alice")).status_code == 422
    assert [e.actor for e in s.events() if e.type == "memory.deleted"] == ["bob", "alice"]


@pytest.mark.parametrize("reason", ["", "   ", "\u200b"])
def test_a_blank_delete_reason_is_refused_embedded_as_over_http(ledger, reason):
    m = ledger.add("c", "Alice parks on level three", "agent")
    head = ledger.head()
    with pytest.raises(InvalidRequest, match="reason must be a non-blank string"):
        ledger.delete(m.id, "agent", reason=reason)
    assert ledger.head() == head and ledger.get(m.id).text == "Alice parks on level three"
