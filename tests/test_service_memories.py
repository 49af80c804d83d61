"""Memory routes end to end: add, update, get/history as of, lifecycle, merge, link, list; metrics."""

from __future__ import annotations

from tests.service_support import make_service


def test_memory_lifecycle_over_http(tmp_path):
    s = make_service(tmp_path)
    c, h = s.client, s.h("alice")
    assert c.post("/v1/cubes", json={"cube": "work", "metadata": {"team": "x"}}, headers=h).status_code == 201
    a = c.post("/v1/memories", json={"cube": "work", "text": "deploy on fridays", "tags": ["ops"]}, headers=h).json()
    b = c.post("/v1/memories", json={"cube": "work", "text": "never deploy on fridays"}, headers=h).json()
    up = c.put(f"/v1/memories/{a['id']}", json={"text": "deploy on thursdays", "reason": "policy"}, headers=h)
    assert up.status_code == 200
    now = c.get(f"/v1/memories/{a['id']}", headers=h).json()
    assert now["text"] == "deploy on thursdays" and now["version"] == 2 and now["cube"] == "work"
    then = c.get(f"/v1/memories/{a['id']}?as_of={a['offset']}", headers=h).json()
    assert then["text"] == "deploy on fridays"
    hist = c.get(f"/v1/memories/{a['id']}/history", headers=h).json()["versions"]
    assert [v["text"] for v in hist] == ["deploy on fridays", "deploy on thursdays"]
    r = c.post(f"/v1/memories/{a['id']}/state", json={"to": "activated"}, headers=h)
    assert r.status_code == 200
    r = c.post("/v1/memories/merge", json={"sources": [a["id"], b["id"]], "text": "deploy thursdays only"}, headers=h)
    assert r.status_code == 201, r.text
    merged = r.json()["id"]
    assert c.get(f"/v1/memories/{a['id']}", headers=h).json()["state"] == "merged"
    assert (
        c.post(f"/v1/memories/{merged}/links", json={"target": b["id"], "relation": "replaces"}, headers=h).status_code
        == 201
    )
    listing = c.get("/v1/cubes/work/memories", headers=h).json()
    assert {m["id"] for m in listing["memories"]} == {a["id"], b["id"], merged}
    assert c.get("/v1/cubes/work/memories?state=merged", headers=h).json()["memories"][0]["state"] == "merged"
    page = c.get("/v1/cubes/work/memories?limit=2", headers=h).json()
    assert len(page["memories"]) == 2 and page["next_after"]
    rest = c.get(f"/v1/cubes/work/memories?limit=2&after={page['next_after']}", headers=h).json()
    assert len(rest["memories"]) == 1
    info = c.get("/v1/cubes/work", headers=h).json()
    assert info["owner"] == "alice" and info["roles"] == ["owner"]
    assert c.get("/v1/cubes", headers=h).json()["cubes"] == [{"cube": "work", "roles": ["owner"]}]
    assert c.get("/v1/verify", headers=h).json()["chain"]["ok"] is True
    head = c.get("/v1/head", headers=h).json()
    assert head["offset"] == s.head() and len(head["hash"]) == 64


def test_idempotency_key_is_per_principal(tmp_path):
    s = make_service(tmp_path)
    c = s.client
    c.post("/v1/cubes", json={"cube": "a"}, headers=s.h("alice"))
    c.post("/v1/cubes", json={"cube": "b"}, headers=s.h("bob"))
    first = c.post("/v1/memories", json={"cube": "a", "text": "t", "idempotency_key": "k1"}, headers=s.h("alice"))
    again = c.post("/v1/memories", json={"cube": "a", "text": "t", "idempotency_key": "k1"}, headers=s.h("alice"))
    assert first.json() == again.json()
    other = c.post("/v1/memories", json={"cube": "b", "text": "t", "idempotency_key": "k1"}, headers=s.h("bob"))
    assert other.status_code == 201 and other.json()["id"] != first.json()["id"]


def test_health_metrics_and_openapi(tmp_path):
    s = make_service(tmp_path)
    c = s.client
    assert c.get("/healthz").json() == {"status": "ok"}
    assert c.get("/metrics").status_code == 401
    c.post("/v1/cubes", json={"cube": "m"}, headers=s.h("alice"))
    c.post("/v1/memories", json={"cube": "m", "text": "x"}, headers=s.h("alice"))
    text = c.get("/metrics", headers=s.h("alice")).text
    assert 'memledger_events_appended_total{type="memory.added"} 1.0' in text
    assert "memledger_log_events" in text
    assert 'route="/v1/memories"' in text and "memledger_http_request_duration_seconds_bucket" in text
    spec = c.get("/openapi.json").json()
    assert "/v1/log/stream" in spec["paths"] and "HTTPBearer" in spec["components"]["securitySchemes"]


def test_projection_lag_is_reported_per_view(tmp_path):
    from fastapi.testclient import TestClient

    from ledger.service import create_app
    from ledger.service.settings import Settings

    s = make_service(tmp_path)
    app = create_app(s.data, settings=Settings(public_metrics=True), views={"keyword": lambda: -1})
    c = TestClient(app)
    c.post("/v1/cubes", json={"cube": "m"}, headers=s.h("alice"))
    text = c.get("/metrics").text
    assert 'memledger_projection_lag_events{view="keyword"} 1.0' in text


def test_request_id_is_echoed_and_labels_the_events_of_the_request(tmp_path):
    s = make_service(tmp_path)
    c = s.client
    r = c.post("/v1/cubes", json={"cube": "r"}, headers={**s.h("alice"), "X-Request-ID": "trace-42"})
    assert r.headers["x-request-id"] == "trace-42"
    assert s.events()[-1].correlation_id == "trace-42" and s.events()[-1].actor == "alice"
    r = c.post("/v1/memories", json={"cube": "r", "text": "x"}, headers={**s.h("alice"), "X-Request-ID": "bad id!"})
    generated = r.headers["x-request-id"]
    assert generated.startswith("req_") and s.events()[-1].correlation_id == generated
    # refusals carry the id too, so a 404 in the access log can be matched to its audit event
    r = c.get("/v1/memories/nope", headers={**s.h("bob"), "X-Request-ID": "probe-1"})
    assert r.status_code == 404 and s.denials()[-1].correlation_id == "probe-1"
