"""Cube export/share/update, scheduler status and chat over HTTP (active where those parts exist)."""

from __future__ import annotations

import pytest

from tests.service_support import make_service


@pytest.fixture
def svc(tmp_path):
    s = make_service(tmp_path)
    c = s.client
    c.post("/v1/cubes", json={"cube": "a"}, headers=s.h("alice"))
    s.m = c.post("/v1/memories", json={"cube": "a", "text": "alice drinks green tea"}, headers=s.h("alice")).json()
    return s


def test_share_update_and_export_are_for_owners(svc):
    c = svc.client
    assert c.post("/v1/cubes/a/share", json={"principal": "bob"}, headers=svc.h("carol")).status_code == 404
    r = c.post("/v1/cubes/a/share", json={"principal": "bob"}, headers=svc.h("alice"))
    assert r.status_code == 200, r.text
    assert c.get(f"/v1/memories/{svc.m['id']}", headers=svc.h("bob")).status_code == 200
    assert c.get("/v1/cubes/a/export", headers=svc.h("bob")).status_code == 403
    r = c.post("/v1/cubes/a/share", json={"principal": "bob", "unshare": True}, headers=svc.h("alice"))
    assert r.status_code == 200
    assert c.get(f"/v1/memories/{svc.m['id']}", headers=svc.h("bob")).status_code == 404
    # a second owner (granted, not the creator) changes visibility; the event names them
    c.post("/v1/cubes/a/grants", json={"principal": "dave", "role": "owner"}, headers=svc.h("alice"))
    r = c.patch("/v1/cubes/a", json={"visibility": "shared"}, headers=svc.h("dave"))
    assert r.status_code == 200 and r.json()["visibility"] == "shared"
    assert svc.events()[-1].type == "cube.updated" and svc.events()[-1].actor == "dave"
    assert c.patch("/v1/cubes/a", json={}, headers=svc.h("dave")).status_code == 422
    assert c.get(f"/v1/memories/{svc.m['id']}", headers=svc.h("bob")).status_code == 200
    r = c.get("/v1/cubes/a/export", headers=svc.h("alice"))
    assert r.status_code == 200
    lines = [line for line in r.text.splitlines() if line]
    # sealed payloads, and the memories' own keys so the export opens in another ledger
    assert len(lines) >= 3 and "green tea" not in r.text and '"memory_keys"' in lines[-1]


def test_scheduler_status_and_run(svc):
    c = svc.client
    assert c.get("/v1/scheduler", headers=svc.h("alice")).json()["running"] is False
    assert c.post("/v1/scheduler/run", headers=svc.h("alice")).status_code == 403
    head = svc.head()
    r = c.post("/v1/scheduler/run", headers=svc.h("root"))
    assert r.status_code == 200, r.text
    assert "decisions" in r.json()
    assert {e.actor for e in svc.events(head + 1) if e.type != "access.denied"} <= {"root"}


def test_chat_needs_write_and_writes_the_exchange_back(svc):
    from ledger.memos.chat import ChatSession, scan_retriever
    from tests.memos_fixtures import tiny_model

    model = tiny_model()

    def factory(ledger, cube, actor, **options):
        options.pop("subject", None)
        return ChatSession(
            ledger, cube, actor, scan_retriever(ledger), model=model, max_new_tokens=4, k=options.get("k", 3)
        )

    c = svc.client
    c.app.state.memledger.extras["chat_factory"] = factory
    c.post("/v1/cubes/a/grants", json={"principal": "bob", "role": "reader"}, headers=svc.h("alice"))
    assert c.post("/v1/cubes/a/chat", json={"message": "what tea?"}, headers=svc.h("bob")).status_code == 403
    assert c.post("/v1/cubes/a/chat", json={"message": "what tea?"}, headers=svc.h("carol")).status_code == 404
    head = svc.head()
    r = c.post("/v1/cubes/a/chat", json={"message": "What tea do I drink?"}, headers=svc.h("alice"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["session_id"] and svc.m["id"] in body["retrieved"]
    written = svc.events(head + 1)
    # the principal's events carry the principal; ledger.memos.chat attributes the model's own turn to
    # "assistant:<model id>" and the extractor's decision to "extractor:<name>" (server-determined,
    # never taken from the request)
    machine = ("assistant:", "extractor:")
    assert written and {e.actor for e in written if not e.actor.startswith(machine)} == {"alice"}
    assert next(e for e in written if e.type == "memory.read").actor == "alice"
    again = c.post(
        "/v1/cubes/a/chat", json={"message": "and coffee?", "session_id": body["session_id"]}, headers=svc.h("alice")
    )
    assert again.status_code == 200 and again.json()["session_id"] == body["session_id"]


def test_background_scheduler_reports_its_runs(svc):
    import time

    from fastapi.testclient import TestClient

    from ledger.service import create_app

    app = create_app(svc.data, scheduler_interval=0.1)
    with TestClient(app) as c:
        for _ in range(100):
            status = c.get("/v1/scheduler", headers=svc.h("alice")).json()
            if status["last_run"] is not None:
                break
            time.sleep(0.05)
        assert status["running"] is True and status["interval_s"] == 0.1
        assert status["last_run"] is not None and status["last_error"] is None


def test_chat_shared_cubes_need_read_access(svc):
    from ledger.memos.chat import ChatSession, scan_retriever
    from tests.memos_fixtures import tiny_model

    model = tiny_model()

    def factory(ledger, cube, actor, **options):
        return ChatSession(
            ledger,
            cube,
            actor,
            scan_retriever(ledger),
            model=model,
            max_new_tokens=4,
            k=3,
            shared_cubes=options.get("shared_cubes", []),
        )

    c = svc.client
    c.app.state.memledger.extras["chat_factory"] = factory
    c.post("/v1/cubes", json={"cube": "b"}, headers=svc.h("bob"))
    c.post("/v1/memories", json={"cube": "b", "text": "bob drinks oolong tea"}, headers=svc.h("bob"))
    head = svc.head()
    r = c.post("/v1/cubes/a/chat", json={"message": "tea?", "shared_cubes": ["b"]}, headers=svc.h("alice"))
    assert r.status_code == 404 and svc.head() == head + 1  # refused, only the denial written
    c.post("/v1/cubes/b/grants", json={"principal": "alice", "role": "reader"}, headers=svc.h("bob"))
    r = c.post("/v1/cubes/a/chat", json={"message": "which tea?", "shared_cubes": ["b"]}, headers=svc.h("alice"))
    assert r.status_code == 200, r.text
