"""The HTTP service on a partitioned ledger: each request runs on its cube's (or memory's)
partition, with that partition's access control and audit; search, forget, holds, the cube list,
head and verify span every partition; routes that need one log answer 422 and write nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.service_support import make_service

CONFIG = '[log]\nbackend = "sqlite"\nsynchronous = "NORMAL"\npartitions = 4\n'


@pytest.fixture
def svc(tmp_path):
    return make_service(tmp_path, config=CONFIG)


def _partitions(svc) -> list:
    return svc.client.app.state.memledger_partitions.states  # type: ignore[attr-defined]


def _cubes_in_two_partitions(svc) -> tuple[str, str]:
    pledger = svc.client.app.state.memledger_partitions.pledger  # type: ignore[attr-defined]
    names = [f"cube{i}" for i in range(20)]
    first = names[0]
    other = next(n for n in names if pledger.partition_of(n) != pledger.partition_of(first))
    return first, other


def _cube(svc, name: str, who: str) -> None:
    r = svc.client.post("/v1/cubes", json={"cube": name}, headers=svc.h(who))
    assert r.status_code == 201, r.text


def _heads(svc) -> list[int]:
    return svc.client.get("/v1/head", headers=svc.h("alice")).json()["heads"]


def test_memories_run_on_their_partition_with_its_access_control(svc):
    c, h = svc.client, svc.h
    a, b = _cubes_in_two_partitions(svc)
    _cube(svc, a, "alice")
    _cube(svc, b, "bob")
    r = c.post("/v1/memories", json={"cube": a, "text": "alice likes oolong tea"}, headers=h("alice"))
    assert r.status_code == 201, r.text
    mem = r.json()
    r = c.post("/v1/memories", json={"cube": b, "text": "bob rides a green bicycle"}, headers=h("bob"))
    assert r.status_code == 201, r.text
    other = r.json()
    states = _partitions(svc)
    pa = svc.client.app.state.memledger_partitions.pledger.partition_of(a)  # type: ignore[attr-defined]
    assert [e.type for e in states[pa].ledger.events()][:2] == ["cube.created", "memory.added"]
    assert r.headers["X-Memledger-Partition"] != str(pa)  # bob's memory: the other cube's partition
    assert c.get(f"/v1/memories/{mem['id']}", headers=h("alice")).headers["X-Memledger-Partition"] == str(pa)
    got = c.get(f"/v1/memories/{mem['id']}", headers=h("alice"))
    assert got.status_code == 200 and got.json()["text"] == "alice likes oolong tea"
    # bob has no role on alice's cube, in alice's cube's partition: refused there, and recorded there
    denied = c.get(f"/v1/memories/{mem['id']}", headers=h("bob"))
    assert denied.status_code in (403, 404)
    assert any(e.type == "access.denied" for e in states[pa].ledger.events())
    upd = c.put(f"/v1/memories/{mem['id']}", json={"text": "alice likes sencha now"}, headers=h("alice"))
    assert upd.status_code == 200, upd.text
    hist = c.get(f"/v1/memories/{mem['id']}/history", headers=h("alice")).json()
    assert [v["text"] for v in hist["versions"]] == ["alice likes oolong tea", "alice likes sencha now"]
    listed = c.post(f"/v1/cubes/{b}/list", json={}, headers=h("bob")).json()
    assert [m["id"] for m in listed["memories"]] == [other["id"]]
    cubes = c.get("/v1/cubes", headers=h("alice")).json()["cubes"]
    assert [x["cube"] for x in cubes] == [a]
    assert c.get("/v1/memories/mem_nowhere", headers=h("alice")).status_code == 404


def test_search_spans_partitions_and_sees_only_readable_cubes(svc):
    c, h = svc.client, svc.h
    a, b = _cubes_in_two_partitions(svc)
    _cube(svc, a, "alice")
    _cube(svc, b, "alice")
    for cube in (a, b):
        r = c.post("/v1/memories", json={"cube": cube, "text": f"notes about kayaks in {cube}"}, headers=h("alice"))
        assert r.status_code == 201, r.text
    assert (
        c.post("/v1/memories", json={"cube": b, "text": "bob's kayak"}, headers=h("bob")).status_code == 404
    )  # not revealed
    hits = c.post("/v1/search", json={"query": "kayaks"}, headers=h("alice")).json()["hits"]
    assert {x["cube"] for x in hits} == {a, b} and len({x["partition"] for x in hits}) == 2
    bob = c.post("/v1/search", json={"query": "kayaks"}, headers=h("bob")).json()["hits"]
    assert bob == []  # bob holds no role on either cube
    refused = c.post("/v1/search", json={"query": "kayaks", "cubes": [a, b], "as_of": "1"}, headers=h("alice"))
    assert refused.status_code == 422 and "ISO-8601" in refused.text
    one = c.post("/v1/search", json={"query": "kayaks", "cubes": [a], "as_of": "1"}, headers=h("alice"))
    assert one.status_code == 200 and one.json()["as_of"] == 1


def test_forget_and_holds_reach_every_partition(svc, tmp_path):
    c, h = svc.client, svc.h
    a, b = _cubes_in_two_partitions(svc)
    _cube(svc, a, "alice")
    _cube(svc, b, "alice")
    ids = []
    for cube in (a, b):
        r = c.post(
            "/v1/memories",
            json={"cube": cube, "text": f"lena's {cube} secret quince", "subject": "lena"},
            headers=h("alice"),
        )
        ids.append(r.json()["id"])
    c.post("/v1/search", json={"query": "secret"}, headers=h("alice"))  # the views hold the texts
    placed = c.post("/v1/holds", json={"subject": "lena", "reason": "case 3"}, headers=h("root"))
    assert placed.status_code == 201 and placed.json()["partitions"] == [0, 1, 2, 3]
    held = c.post("/v1/subjects/lena/forget", json={"reason": "request"}, headers=h("root"))
    assert held.status_code in (409, 423), held.text
    holds = c.get("/v1/holds", headers=h("root")).json()["holds"]
    assert len(holds) == 1 and holds[0]["partitions"] == [0, 1, 2, 3]
    rel = c.post(f"/v1/holds/{placed.json()['hold_id']}/release", json={"reason": "closed"}, headers=h("root"))
    assert rel.status_code == 200 and len(rel.json()["released"]) == 4
    done = c.post("/v1/subjects/lena/forget", json={"reason": "request"}, headers=h("root"))
    assert done.status_code == 200 and done.json()["complete"], done.text
    assert sorted(done.json()["offsets"]) == ["0", "1", "2", "3"]
    for mid in ids:
        assert c.get(f"/v1/memories/{mid}", headers=h("alice")).json()["text"] is None
    data: Path = svc.data
    assert [p for p in data.rglob("*") if p.is_file() and b"quince" in p.read_bytes()] == []
    verify = c.get("/v1/verify", headers=h("alice")).json()
    assert verify["ok"] and len(verify["heads"]) == 4


def test_routes_that_need_one_log_are_refused_and_write_nothing(svc):
    c, h = svc.client, svc.h
    a, _ = _cubes_in_two_partitions(svc)
    _cube(svc, a, "alice")
    c.post("/v1/memories", json={"cube": a, "text": "a note"}, headers=h("alice"))
    before = _heads(svc)
    for method, path, body in (
        ("GET", "/v1/log", None),
        ("GET", "/v1/audit", None),
        ("GET", "/v1/branches", None),
        ("POST", "/v1/branches", {"name": "b1"}),
        ("POST", f"/v1/cubes/{a}/chat", {"message": "hi"}),
        ("GET", "/v1/checkpoints", None),
    ):
        r = c.request(method, path, json=body, headers=h("alice"))
        assert r.status_code == 422, (path, r.status_code, r.text)
        assert "needs a ledger of one partition" in r.json()["error"]["message"]
    assert _heads(svc) == before
    assert c.get("/healthz").status_code == 200
    assert c.get("/v1/whoami", headers=h("alice")).status_code == 200


def test_mcp_over_http_on_a_partitioned_ledger(tmp_path):
    """`memledger serve --mcp` on a partitioned ledger: the tools go through the routed REST API,
    and a tool that needs one log (branches) says so in one line."""
    import anyio

    from ledger.factory import open_partitioned_memory
    from tests.live_server import LiveServer
    from tests.mcp_support import call, http_client, refused

    server = LiveServer.start(tmp_path / "data", extra_args=["--mcp"], config=CONFIG + '[views]\nvector = "none"\n')
    try:
        token = server.principal("alice")

        async def run() -> tuple[dict, dict, list, str]:
            async with http_client(f"{server.url}/mcp", token) as client:
                one = await call(client, "add_memory", text="Nora plays the oboe", cube="cube0")
                two = await call(client, "add_memory", text="Nora's oboe is from Vienna", cube="cube1")
                hits = (await call(client, "search_memories", query="oboe"))["hits"]
                assert (await call(client, "get_memory", memory_id=two["id"]))["text"] == "Nora's oboe is from Vienna"
                message = await refused(client, "list_branches")
                return one, two, hits, message

        one, two, hits, message = anyio.run(run)
        assert {h["id"] for h in hits} == {one["id"], two["id"]}
        assert "one partition" in message
    finally:
        server.stop()
    pledger = open_partitioned_memory(tmp_path / "data")
    try:
        assert pledger.partition_of("cube0") != pledger.partition_of("cube1")
        for cube, mem in (("cube0", one), ("cube1", two)):
            events = list(pledger.for_cube(cube).events())
            assert any(e.type == "memory.added" and e.payload["memory_id"] == mem["id"] for e in events)
            assert {e.actor for e in events if e.stream == cube} == {"alice"}
    finally:
        pledger.close()
