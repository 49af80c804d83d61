"""Regression tests of issue 11 ("Trust holes"), service items, each against a real ``memledger serve``.

- item 4: an open SSE stream stops once the token that opened it is revoked or rotated;
- item 8: clients cannot grow ``/metrics`` (label cardinality) by inventing methods, paths or statuses;
- item 14: a non-admin's inclusion proof never signs a new checkpoint;
- item 18: 405 responses carry an ``Allow`` header listing every method of the path.
"""

from __future__ import annotations

import queue
import threading
import time

import httpx
import orjson
import pytest

from ledger.principals import PrincipalStore
from tests.live_server import LiveServer, live_server  # noqa: F401


def _sse_reader(server: LiveServer, token: str, out: queue.Queue) -> threading.Thread:
    """Read ``/v1/log/stream`` in a thread; put each event's data (dict) on ``out``, then ``None`` at the end."""

    def run() -> None:
        try:
            with httpx.Client(base_url=server.url, timeout=httpx.Timeout(30, read=30)) as c, c.stream(
                    "GET", "/v1/log/stream?from=0", headers={"Authorization": f"Bearer {token}"}) as r:
                assert r.status_code == 200
                block: dict[str, str] = {}
                for line in r.iter_lines():
                    if not line:
                        if "data" in block:
                            out.put({"event": block.get("event"), **orjson.loads(block["data"])})
                        block = {}
                    elif not line.startswith(":") and ": " in line:
                        key, value = line.split(": ", 1)
                        block[key] = value
        except httpx.HTTPError as exc:  # a read timeout means the stream stayed open and silent
            out.put({"event": "reader-error", "error": repr(exc)})
        finally:
            out.put(None)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _until(out: queue.Queue, pred, timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        item = out.get(timeout=max(0.01, deadline - time.monotonic()))
        assert item is not None, "the stream ended early"
        if pred(item):
            return item
    raise AssertionError("event not seen in time")


@pytest.mark.parametrize("how", ["revoke", "rotate"])
def test_item04_sse_stream_stops_after_token_revoked(live_server, how):  # noqa: F811
    s = live_server
    with s.client() as c:
        assert c.post("/v1/cubes", json={"cube": "c"}, headers=s.h("alice")).status_code == 201
        assert c.post("/v1/cubes/c/grants", json={"principal": "bob", "role": "writer"},
                      headers=s.h("alice")).status_code == 201
        first = c.post("/v1/memories", json={"cube": "c", "text": "before the revocation"}, headers=s.h("alice"))
        assert first.status_code == 201
        out: queue.Queue = queue.Queue()
        reader = _sse_reader(s, s.tokens["alice"], out)
        _until(out, lambda e: e.get("payload", {}).get("memory_id") == first.json()["id"])

        store = PrincipalStore(s.data)
        if how == "revoke":
            store.revoke("alice")
        else:
            store.rotate("alice")
        assert c.get("/v1/whoami", headers=s.h("alice")).status_code == 401  # the old token is refused
        later = c.post("/v1/memories", json={"cube": "c", "text": "after the revocation"}, headers=s.h("bob"))
        assert later.status_code == 201

        # the stream must end (well before the 30 s read timeout), delivering nothing written after it
        reader.join(timeout=15)
        assert not reader.is_alive(), "the stream is still open after the token was " + how + "d"
        rest = []
        while (item := out.get(timeout=1)) is not None:
            rest.append(item)
        assert not any("after the revocation" in orjson.dumps(e).decode() for e in rest), rest
        assert all(e["event"] != "reader-error" for e in rest), rest
        assert rest and rest[-1]["event"] == "unauthenticated", rest
