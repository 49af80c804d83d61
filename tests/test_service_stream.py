"""The server-sent-events stream of the log: from any offset, resumable, live over real HTTP."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import orjson
import pytest
import uvicorn

from tests.service_support import make_service


def _parse_sse(text: str) -> list[dict]:
    out = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line and not line.startswith(":"))
        if "data" in fields:
            out.append({"id": int(fields["id"]), "event": fields["event"], "data": orjson.loads(fields["data"])})
    return out


@pytest.fixture
def svc(tmp_path):
    s = make_service(tmp_path)
    s.client.post("/v1/cubes", json={"cube": "s"}, headers=s.h("alice"))
    for i in range(5):
        s.client.post("/v1/memories", json={"cube": "s", "text": f"m{i}"}, headers=s.h("alice"))
    return s


def test_stream_from_an_offset_until_head(svc):
    r = svc.client.get("/v1/log/stream?from=2&follow=false", headers=svc.h("alice"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = _parse_sse(r.text)
    assert [e["id"] for e in events] == list(range(2, svc.head() + 1))
    assert events[0]["data"]["offset"] == 2 and events[0]["event"] == "memory.added"


def test_resume_with_last_event_id_and_limit(svc):
    r = svc.client.get("/v1/log/stream?follow=false", headers={**svc.h("alice"), "Last-Event-ID": "3"})
    assert [e["id"] for e in _parse_sse(r.text)] == list(range(4, svc.head() + 1))
    r = svc.client.get("/v1/log/stream?from=0&limit=2", headers=svc.h("alice"))
    assert [e["id"] for e in _parse_sse(r.text)] == [0, 1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_live_stream_over_uvicorn_delivers_new_events(svc):
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(svc.client.app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(100):
            if server.started:
                break
            time.sleep(0.05)
        base = f"http://127.0.0.1:{port}"
        got: list[int] = []
        head = svc.head()
        with httpx.Client(base_url=base, timeout=10) as client:
            with client.stream("GET", f"/v1/log/stream?from={head}&limit=3", headers=svc.h("alice")) as resp:
                assert resp.status_code == 200

                def write_later() -> None:
                    time.sleep(0.3)
                    with httpx.Client(base_url=base, timeout=10) as w:
                        for t in ("live1", "live2"):
                            w.post("/v1/memories", json={"cube": "s", "text": t}, headers=svc.h("alice"))

                writer = threading.Thread(target=write_later)
                writer.start()
                buf = ""
                for chunk in resp.iter_text():
                    buf += chunk
                    got = [e["id"] for e in _parse_sse(buf)]
                    if len(got) >= 3:
                        break
                writer.join()
        texts = [(e["data"].get("opened") or {}).get("text") for e in _parse_sse(buf)]
        assert got == [head, head + 1, head + 2]
        assert texts[1:] == ["live1", "live2"]
    finally:
        server.should_exit = True
        thread.join(timeout=10)
