"""Authentication and per-cube access control over HTTP: refusals are indistinguishable and audited."""

from __future__ import annotations

import pytest

from ledger.service.settings import Settings
from tests.service_support import make_service


@pytest.fixture
def svc(tmp_path):
    s = make_service(tmp_path)
    c = s.client
    assert c.post("/v1/cubes", json={"cube": "alice-notes"}, headers=s.h("alice")).status_code == 201
    r = c.post("/v1/memories", json={"cube": "alice-notes", "text": "alice likes green tea"}, headers=s.h("alice"))
    assert r.status_code == 201, r.text
    s.mid = r.json()["id"]  # type: ignore[attr-defined]
    return s


def test_unauthenticated_requests_are_refused_and_audited(svc):
    c, head = svc.client, svc.head()
    for method, url in (("get", f"/v1/memories/{svc.mid}"), ("get", "/v1/log"), ("post", "/v1/cubes")):
        r = getattr(c, method)(url)
        assert r.status_code == 401, (url, r.text)
        assert r.json()["error"]["type"] == "Unauthenticated"
        assert "Bearer" in r.headers["www-authenticate"]
    r = c.get(f"/v1/memories/{svc.mid}", headers={"Authorization": "Bearer mlk_forged"})
    assert r.status_code == 401
    denied = svc.denials(head + 1)
    assert len(denied) == 4
    assert {e.payload["principal"] for e in denied} == {"anonymous"}
    assert {e.actor for e in denied} == {"anonymous"}
    assert "invalid or revoked credentials" in denied[-1].payload["reason"]
    assert all(e.type == "access.denied" for e in svc.events(head + 1))  # nothing else was written


def test_api_key_header_works_like_bearer(svc):
    r = svc.client.get("/v1/whoami", headers={"X-API-Key": svc.tokens["bob"]})
    assert r.status_code == 200 and r.json()["principal"] == "bob"


def test_cross_cube_guessing_is_a_404_like_an_unknown_id_and_both_are_audited(svc):
    c, head = svc.client, svc.head()
    forbidden = c.get(f"/v1/memories/{svc.mid}", headers=svc.h("bob"))
    unknown = c.get("/v1/memories/mem_doesnotexist00", headers=svc.h("bob"))
    assert forbidden.status_code == unknown.status_code == 404
    assert forbidden.json()["error"]["type"] == unknown.json()["error"]["type"] == "NotFound"
    assert forbidden.text.replace(svc.mid, "ID") == unknown.text.replace("mem_doesnotexist00", "ID")
    for url in (
        f"/v1/memories/{svc.mid}/history",
        "/v1/cubes/alice-notes",
        "/v1/cubes/alice-notes/memories",
        "/v1/cubes/alice-notes/events",
    ):
        assert c.get(url, headers=svc.h("bob")).status_code == 404, url
    r = c.put(f"/v1/memories/{svc.mid}", json={"text": "bob was here"}, headers=svc.h("bob"))
    assert r.status_code == 404
    r = c.post("/v1/memories", json={"cube": "alice-notes", "text": "bob writes"}, headers=svc.h("bob"))
    assert r.status_code == 404
    denied = svc.denials(head + 1)
    assert len(denied) == 8 and {e.payload["principal"] for e in denied} == {"bob"}
    by_reason = {e.payload["reason"] for e in denied}
    assert "unknown memory" in by_reason
    assert any(r.startswith("no role") for r in by_reason)
    # the memory still says what alice wrote; bob's attempts wrote nothing but denials
    assert c.get(f"/v1/memories/{svc.mid}", headers=svc.h("alice")).json()["text"] == "alice likes green tea"
    assert all(e.type in ("access.denied", "memory.read") for e in svc.events(head + 1))


def test_reader_can_read_but_not_write(svc):
    c = svc.client
    assert (
        c.post(
            "/v1/cubes/alice-notes/grants", json={"principal": "bob", "role": "reader"}, headers=svc.h("alice")
        ).status_code
        == 201
    )
    r = c.get(f"/v1/memories/{svc.mid}", headers=svc.h("bob"))
    assert r.status_code == 200 and r.json()["text"] == "alice likes green tea"
    head = svc.head()
    for method, url, body in (
        ("put", f"/v1/memories/{svc.mid}", {"text": "changed"}),
        ("post", "/v1/memories", {"cube": "alice-notes", "text": "new"}),
        ("post", f"/v1/memories/{svc.mid}/state", {"to": "archived"}),
        ("post", "/v1/cubes/alice-notes/grants", {"principal": "carol", "role": "reader"}),
    ):
        r = getattr(c, method)(url, json=body, headers=svc.h("bob"))
        assert r.status_code == 403, (url, r.text)
    assert [e.type for e in svc.events(head + 1)] == ["access.denied"] * 4
    # the read itself was audited, attributed to bob
    reads = [e for e in svc.events() if e.type == "memory.read"]
    assert reads[-1].actor == "bob" and reads[-1].payload["memory_ids"] == [svc.mid]


def test_writer_writes_and_events_carry_the_authenticated_actor(svc):
    c = svc.client
    c.post("/v1/cubes/alice-notes/grants", json={"principal": "carol", "role": "writer"}, headers=svc.h("alice"))
    r = c.put(f"/v1/memories/{svc.mid}", json={"text": "alice likes oolong"}, headers=svc.h("carol"))
    assert r.status_code == 200, r.text
    event = next(e for e in svc.events() if e.offset == r.json()["offset"])
    assert event.actor == "carol" and event.type == "memory.updated"
    # a client-supplied actor is rejected, not silently used
    head = svc.head()
    r = c.post("/v1/memories", json={"cube": "alice-notes", "text": "x", "actor": "alice"}, headers=svc.h("carol"))
    assert r.status_code == 422 and "authenticated principal" in r.text
    assert svc.head() == head


def test_auditor_reads_the_trail_redacted_but_never_texts(svc):
    c = svc.client
    c.post("/v1/cubes/alice-notes/grants", json={"principal": "dave", "role": "auditor"}, headers=svc.h("alice"))
    r = c.get("/v1/cubes/alice-notes/events", headers=svc.h("dave"))
    assert r.status_code == 200
    body = r.json()
    assert body["redacted"] is True
    added = [e for e in body["events"] if e["type"] == "memory.added"]
    assert added and added[0]["payload"]["sealed"] is None and "sealed" in added[0]["redacted"]
    assert "opened" not in added[0]  # nothing decrypted for an auditor
    assert "green tea" not in r.text
    assert c.get("/v1/cubes/alice-notes/grants", headers=svc.h("dave")).json()["grants"]["dave"] == ["auditor"]
    # the whole-log view gives the auditor the same redacted form
    r = c.get("/v1/log", headers=svc.h("dave"))
    assert r.status_code == 200 and "green tea" not in r.text
    assert any(e["type"] == "memory.added" for e in r.json()["events"])
    for url in (f"/v1/memories/{svc.mid}", f"/v1/memories/{svc.mid}/history", "/v1/cubes/alice-notes/memories"):
        assert c.get(url, headers=svc.h("dave")).status_code == 403, url
    # the owner sees the same trail unredacted
    r = c.get("/v1/cubes/alice-notes/events", headers=svc.h("alice"))
    assert r.json()["redacted"] is False and "green tea" in r.text


def test_owner_grants_and_revocation_takes_effect_at_once(svc):
    c = svc.client
    c.post("/v1/cubes/alice-notes/grants", json={"principal": "bob", "role": "reader"}, headers=svc.h("alice"))
    assert c.get(f"/v1/memories/{svc.mid}", headers=svc.h("bob")).status_code == 200
    r = c.delete("/v1/cubes/alice-notes/grants/bob/reader", headers=svc.h("alice"))
    assert r.status_code == 200
    assert c.get(f"/v1/memories/{svc.mid}", headers=svc.h("bob")).status_code == 404
    types = [e.type for e in svc.events()]
    assert "access.granted" in types and "access.revoked" in types
    # revoking what is not held, or the last owner, is refused
    assert c.delete("/v1/cubes/alice-notes/grants/bob/reader", headers=svc.h("alice")).status_code == 404
    assert c.delete("/v1/cubes/alice-notes/grants/alice/owner", headers=svc.h("alice")).status_code == 409
    # granting to an unknown principal is refused
    r = c.post("/v1/cubes/alice-notes/grants", json={"principal": "nobody", "role": "reader"}, headers=svc.h("alice"))
    assert r.status_code == 404


def test_revoked_principal_loses_access_at_once(svc):
    c = svc.client
    assert c.get(f"/v1/memories/{svc.mid}", headers=svc.h("alice")).status_code == 200
    svc.store.revoke("alice")  # as `memledger principal revoke alice` would, beside the server
    r = c.get(f"/v1/memories/{svc.mid}", headers=svc.h("alice"))
    assert r.status_code == 401
    assert svc.denials()[-1].payload["reason"].startswith("invalid or revoked credentials")


def test_log_and_stream_only_show_cubes_the_caller_may_see(svc):
    c = svc.client
    c.post("/v1/cubes", json={"cube": "bob-notes"}, headers=svc.h("bob"))
    c.post("/v1/memories", json={"cube": "bob-notes", "text": "bob secret"}, headers=svc.h("bob"))
    r = c.get("/v1/log", headers=svc.h("bob"))
    assert {e["stream"] for e in r.json()["events"]} == {"bob-notes"}
    assert "green tea" not in r.text
    r = c.get("/v1/log/stream?follow=false", headers=svc.h("bob"))
    assert "green tea" not in r.text and "bob secret" in r.text
    admin = c.get("/v1/log?limit=1000", headers=svc.h("root")).json()["events"]
    assert {"alice-notes", "bob-notes"} <= {e["stream"] for e in admin}


def test_admin_routes_need_an_admin(svc):
    c = svc.client
    assert c.get("/v1/principals", headers=svc.h("alice")).status_code == 403
    r = c.post("/v1/principals", json={"name": "erin"}, headers=svc.h("root"))
    assert r.status_code == 201
    token = r.json()["token"]
    assert c.get("/v1/whoami", headers={"Authorization": f"Bearer {token}"}).json()["principal"] == "erin"
    assert c.delete("/v1/principals/erin", headers=svc.h("root")).status_code == 200
    assert c.get("/v1/whoami", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    names = [p["name"] for p in c.get("/v1/principals", headers=svc.h("root")).json()["principals"]]
    assert "erin" in names and "token_sha256" not in c.get("/v1/principals", headers=svc.h("root")).text


def test_anonymous_access_only_when_configured(tmp_path):
    s = make_service(tmp_path, settings=Settings(allow_anonymous=True))
    r = s.client.post("/v1/cubes", json={"cube": "scratch"})
    assert r.status_code == 201 and r.json()["owner"] == "anonymous"
    r = s.client.post("/v1/memories", json={"cube": "scratch", "text": "hi"})
    assert r.status_code == 201
    assert s.events()[-1].actor == "anonymous"


def test_a_cube_created_shared_is_readable_by_every_principal_but_writable_only_by_grant(svc):
    c = svc.client
    assert (
        c.post("/v1/cubes", json={"cube": "handbook", "visibility": "shared"}, headers=svc.h("alice")).status_code
        == 201
    )
    mid = c.post("/v1/memories", json={"cube": "handbook", "text": "office opens at 9"}, headers=svc.h("alice")).json()[
        "id"
    ]
    assert c.get(f"/v1/memories/{mid}", headers=svc.h("bob")).json()["text"] == "office opens at 9"
    assert c.get("/v1/cubes/handbook", headers=svc.h("bob")).json()["visibility"] == "shared"
    assert c.put(f"/v1/memories/{mid}", json={"text": "9:30"}, headers=svc.h("bob")).status_code == 403
    assert {"cube": "handbook", "roles": ["reader"]} in c.get("/v1/cubes", headers=svc.h("bob")).json()["cubes"]


def test_reading_another_cubes_stream_from_the_log_is_refused_and_audited(svc):
    head = svc.head()
    r = svc.client.get("/v1/log", params={"stream": "alice-notes"}, headers=svc.h("bob"))
    assert r.status_code == 404
    assert [e.payload["action"] for e in svc.denials(head + 1)] == ["log.read"]
    r = svc.client.get("/v1/log", params={"stream": "alice-notes"}, headers=svc.h("alice"))
    assert r.status_code == 200 and {e["stream"] for e in r.json()["events"]} == {"alice-notes"}
