"""Issue 11, access control: revocations take effect however access was obtained (item 3), the last
owner survives concurrent revocations (item 5), knowledge audits show only what the caller may see
(item 11). Driven through a real ``memledger serve`` on loopback."""

from __future__ import annotations

import threading

from tests.live_server import LiveServer


def _cube(s: LiveServer, c, name: str, owner: str = "alice") -> str:
    r = c.post("/v1/cubes", json={"cube": name}, headers=s.h(owner))
    assert r.status_code == 201, r.text
    r = c.post("/v1/memories", json={"cube": name, "text": f"secret of {name}"}, headers=s.h(owner))
    assert r.status_code == 201, r.text
    return r.json()["id"]


def test_item03_revoking_a_shared_reader_removes_access(live_server):
    s = live_server
    with s.client() as c:
        mid = _cube(s, c, "c")
        assert c.post("/v1/cubes/c/share", json={"principal": "mallory"}, headers=s.h("alice")).status_code == 200
        assert c.get(f"/v1/memories/{mid}", headers=s.h("mallory")).status_code == 200
        assert "c" in c.get("/v1/whoami", headers=s.h("mallory")).json()["cubes"]
        r = c.delete("/v1/cubes/c/grants/mallory/reader", headers=s.h("alice"))
        assert r.status_code == 200, r.text
        assert c.get(f"/v1/memories/{mid}", headers=s.h("mallory")).status_code == 404
        assert "c" not in c.get("/v1/whoami", headers=s.h("mallory")).json()["cubes"]
        r = c.post("/v1/search", json={"query": "secret", "cubes": ["c"]}, headers=s.h("mallory"))
        assert r.status_code in (403, 404) or r.json()["hits"] == [], r.text
        info = c.get("/v1/cubes/c", headers=s.h("alice")).json()
        assert "mallory" not in info["shared_with"]
        # a second revocation has nothing left to take away: refused, and no event claims it
        r = c.delete("/v1/cubes/c/grants/mallory/reader", headers=s.h("alice"))
        assert r.status_code == 404, r.text


def test_item03_a_reader_by_grant_and_by_share_loses_both(live_server):
    s = live_server
    with s.client() as c:
        mid = _cube(s, c, "c")
        c.post("/v1/cubes/c/share", json={"principal": "mallory"}, headers=s.h("alice"))
        assert c.post(
            "/v1/cubes/c/grants", json={"principal": "mallory", "role": "reader"}, headers=s.h("alice")
        ).status_code in (200, 201)
        assert c.delete("/v1/cubes/c/grants/mallory/reader", headers=s.h("alice")).status_code == 200
        assert c.get(f"/v1/memories/{mid}", headers=s.h("mallory")).status_code == 404


def test_item03_a_cube_visible_to_everyone_refuses_to_revoke_one_reader(live_server):
    s = live_server
    with s.client() as c:
        r = c.post("/v1/cubes", json={"cube": "pub", "visibility": "shared"}, headers=s.h("alice"))
        assert r.status_code == 201, r.text
        before = c.get("/v1/head", headers=s.h("root")).json()["offset"]
        r = c.delete("/v1/cubes/pub/grants/mallory/reader", headers=s.h("alice"))
        assert r.status_code == 409 and "every principal" in r.json()["error"]["message"], r.text
        events = c.get("/v1/log", params={"from": before + 1}, headers=s.h("root")).json()["events"]
        assert "access.revoked" not in [e["type"] for e in events]


def test_item05_concurrent_owners_revoking_each_other_leave_an_owner(live_server):
    s = live_server
    cubes = [f"c{i}" for i in range(20)]
    with s.client() as c:
        for name in cubes:
            assert c.post("/v1/cubes", json={"cube": name}, headers=s.h("alice")).status_code == 201
            r = c.post(f"/v1/cubes/{name}/grants", json={"principal": "bob", "role": "owner"}, headers=s.h("alice"))
            assert r.status_code in (200, 201), r.text
    barrier = threading.Barrier(2, timeout=60)
    codes: dict[str, list[int]] = {"alice": [], "bob": []}
    errors: list[BaseException] = []

    def revoke_other(me: str, other: str) -> None:
        try:
            with s.client() as c:
                for name in cubes:
                    barrier.wait()
                    r = c.delete(f"/v1/cubes/{name}/grants/{other}/owner", headers=s.h(me))
                    codes[me].append(r.status_code)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
            barrier.abort()

    threads = [
        threading.Thread(target=revoke_other, args=("alice", "bob")),
        threading.Thread(target=revoke_other, args=("bob", "alice")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    with s.client() as c:
        for name in cubes:
            grants = c.get(f"/v1/cubes/{name}/grants", headers=s.h("root")).json()["grants"]
            owners = [p for p, roles in grants.items() if "owner" in roles]
            assert len(owners) == 1, (name, grants)
        # every 200 is a revocation that took effect: exactly one per cube
        revoked = [
            e
            for e in c.get("/v1/log", params={"limit": 1000}, headers=s.h("root")).json()["events"]
            if e["type"] == "access.revoked"
        ]
        assert len(revoked) == len(cubes)
    assert sorted(codes["alice"] + codes["bob"]).count(200) == len(cubes)


def test_item11_knowledge_audit_hides_events_of_cubes_the_auditor_cannot_see(live_server):
    s = live_server
    with s.client() as c:
        mid = _cube(s, c, "a")
        assert (
            c.post("/v1/cubes/a/grants", json={"principal": "bob", "role": "reader"}, headers=s.h("alice")).status_code
            == 201
        )
        assert (
            c.post(
                "/v1/cubes/a/grants", json={"principal": "mallory", "role": "auditor"}, headers=s.h("alice")
            ).status_code
            == 201
        )
        other = _cube(s, c, "b", owner="bob")
        r = c.post(
            f"/v1/memories/{other}/links", json={"target": mid, "relation": "private-relation-of-b"}, headers=s.h("bob")
        )
        assert r.status_code == 201, r.text
        r = c.get(f"/v1/memories/{mid}", headers=s.h("bob"))  # a read recorded on a's stream: visible
        assert r.status_code == 200
        seen = c.get(f"/v1/audit/knowledge/{mid}", headers=s.h("mallory"))
        assert seen.status_code == 200, seen.text
        body = seen.text
        assert other not in body and "private-relation-of-b" not in body
        assert {e["stream"] for e in seen.json()["events"]} == {"a"}
        assert [r["actor"] for r in seen.json()["readers"]] == ["bob"]
        # the owner of a sees only a's events too; an auditor of a who owns b sees b's link
        own = c.get(f"/v1/audit/knowledge/{mid}", headers=s.h("alice")).json()
        assert {e["stream"] for e in own["events"]} == {"a"}
        assert (
            c.post("/v1/cubes/a/grants", json={"principal": "bob", "role": "auditor"}, headers=s.h("alice")).status_code
            == 201
        )
        full = c.get(f"/v1/audit/knowledge/{mid}", headers=s.h("bob")).json()
        assert any(e["stream"] == "b" for e in full["events"])
