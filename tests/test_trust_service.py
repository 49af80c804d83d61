"""Regression tests of issue 11 ("Trust holes"), service items, each against a real ``memledger serve``.

- item 4: an open SSE stream stops once the token that opened it is revoked or rotated;
- item 8: clients cannot grow ``/metrics`` (label cardinality) by inventing methods, paths or statuses;
- item 14: a non-admin's inclusion proof never signs a new checkpoint;
- item 18: 405 responses carry an ``Allow`` header listing every method of the path.
"""

from __future__ import annotations

import queue
import re
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
            with (
                httpx.Client(base_url=server.url, timeout=httpx.Timeout(30, read=30)) as c,
                c.stream("GET", "/v1/log/stream?from=0", headers={"Authorization": f"Bearer {token}"}) as r,
            ):
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
        assert (
            c.post("/v1/cubes/c/grants", json={"principal": "bob", "role": "writer"}, headers=s.h("alice")).status_code
            == 201
        )
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


LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def _request_series(metrics: str) -> set[tuple[str, str, str]]:
    """The (method, route, status) label sets of the request-latency histogram."""
    out = set()
    for line in metrics.splitlines():
        if line.startswith("memledger_http_request_duration_seconds_count{"):
            labels = dict(LABEL.findall(line[: line.rindex("}") + 1]))
            out.add((labels["method"], labels["route"], labels["status"]))
    return out


def test_item08_metrics_labels_stay_bounded_whatever_clients_send(live_server):  # noqa: F811
    s = live_server
    paths = ["/v1/cubes", "/v1/head", "/nowhere", "/v1/memories/x", "/metrics"]

    def flood(c: httpx.Client, start: int, n: int) -> None:
        for i in range(start, start + n):
            c.request(f"X{i}", paths[i % len(paths)])  # invented methods, unauthenticated
            c.get(f"/random/{i}/path")  # unmatched paths
            c.request("GET", "/v1/head", headers={"Authorization": f"Bearer wrong-{i}"})

    with s.client() as c:
        before = c.get("/metrics", headers=s.h("root")).text
        flood(c, 0, 150)
        mid = c.get("/metrics", headers=s.h("root")).text
        flood(c, 150, 150)
        after = c.get("/metrics", headers=s.h("root")).text
    series = _request_series(after)
    assert {m for m, _, _ in series} <= {
        "GET",
        "HEAD",
        "POST",
        "PUT",
        "PATCH",
        "DELETE",
        "OPTIONS",
        "TRACE",
        "CONNECT",
        "other",
    }, sorted(series)
    assert not any(r.startswith("/random") for _, r, _ in series), sorted(series)
    # 150 more requests of the same kinds add no series: the body does not grow with what clients send
    assert _request_series(mid) == series, sorted(series ^ _request_series(mid))
    assert len(after) < len(before) + 30_000, (len(before), len(after))


def test_item14_reader_inclusion_proof_never_signs_a_checkpoint(live_server):  # noqa: F811
    s = live_server
    with s.client() as c:
        c.post("/v1/cubes", json={"cube": "c"}, headers=s.h("alice"))
        c.post("/v1/cubes/c/grants", json={"principal": "bob", "role": "reader"}, headers=s.h("alice"))
        w = c.post("/v1/memories", json={"cube": "c", "text": "prove me"}, headers=s.h("alice")).json()

        def stored() -> list[int]:
            return [cp["seq"] for cp in c.get("/v1/checkpoints", headers=s.h("bob")).json()["checkpoints"]]

        # no checkpoint covers the offset: a clear 409, and no checkpoint is signed on a reader's behalf
        for who in ("bob", "alice"):
            r = c.get("/v1/proofs/inclusion", params={"offset": w["offset"]}, headers=s.h(who))
            assert r.status_code == 409, r.text
            assert "no signed checkpoint covers offset" in r.json()["error"]["message"]
        assert stored() == []
        assert c.get("/v1/checkpoints/public-key", headers=s.h("bob")).status_code == 404  # no key made either

        # against an existing checkpoint the reader gets a proof, and still nothing new is signed
        assert c.post("/v1/checkpoints", headers=s.h("root")).status_code == 201
        r = c.get("/v1/proofs/inclusion", params={"offset": w["offset"]}, headers=s.h("bob"))
        assert r.status_code == 200 and r.json()["checkpoint"]["seq"] == 1, r.text
        later = c.post("/v1/memories", json={"cube": "c", "text": "not yet covered"}, headers=s.h("alice")).json()
        r = c.get("/v1/proofs/inclusion", params={"offset": later["offset"]}, headers=s.h("bob"))
        assert r.status_code == 409 and "covers offsets 0.." in r.json()["error"]["message"], r.text
        assert stored() == [1]
        # an admin (who may create checkpoints) still gets one made when none covers the offset
        r = c.get("/v1/proofs/inclusion", params={"offset": later["offset"]}, headers=s.h("root"))
        assert r.status_code == 200 and r.json()["checkpoint"]["seq"] == 2
        assert stored() == [1, 2]


def test_item18_405_responses_carry_an_allow_header_listing_every_method(live_server):  # noqa: F811
    s = live_server
    with s.client() as c:
        c.post("/v1/cubes", json={"cube": "c"}, headers=s.h("alice"))
        mid = c.post("/v1/memories", json={"cube": "c", "text": "t"}, headers=s.h("alice")).json()["id"]
        for method, path, allowed in (
            ("OPTIONS", "/v1/cubes", "GET, POST"),
            ("DELETE", "/v1/cubes", "GET, POST"),
            ("PATCH", f"/v1/memories/{mid}", "DELETE, GET, PUT"),
            ("X-INVENTED", "/v1/checkpoints", "GET, POST"),
            ("PUT", "/v1/cubes/c", "GET, PATCH"),
            ("OPTIONS", "/v1/memories/merge", "POST"),
        ):  # the merge, not an id
            r = c.request(method, path, headers=s.h("alice"))
            assert r.status_code == 405, (method, path, r.status_code, r.text)
            assert r.headers.get("allow") == allowed, (method, path, r.headers.get("allow"))


def test_item18_schema_states_what_the_server_requires(live_server):  # noqa: F811
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    s = live_server
    with s.client() as c:
        spec = c.get("/openapi.json").json()
        c.post("/v1/cubes", json={"cube": "c"}, headers=s.h("alice"))
        mid = c.post("/v1/memories", json={"cube": "c", "text": "t"}, headers=s.h("alice")).json()["id"]
        get = spec["paths"]["/v1/memories/{memory_id}"]["get"]
        as_of = next(p for p in get["parameters"] if p["name"] == "as_of")["schema"]["anyOf"][0]
        assert "pattern" in as_of, as_of
        text = spec["components"]["schemas"]["MemoryAdd"]["properties"]["text"]
        assert "pattern" in text and not re.search(text["pattern"], "\u200b \t"), text
        audit = spec["paths"]["/v1/audit"]["get"]
        types = next(p for p in audit["parameters"] if p["name"] == "type")["schema"]["anyOf"][0]["items"]
        assert "pattern" in types and not re.search(types["pattern"], "")
        assert spec["components"]["schemas"]["CubeUpdate"].get("minProperties") == 1
        assert c.get("/v1/audit", params={"type": ""}, headers=s.h("root")).status_code == 422
        assert c.patch("/v1/cubes/c", json={}, headers=s.h("alice")).status_code == 422

        # every as_of the pattern admits is understood (200, or 404 for an offset not written yet),
        # and values it refuses are refused by the server too
        pattern = re.compile(as_of["pattern"])

        @settings(max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(st.one_of(st.from_regex(pattern, fullmatch=True), st.text(max_size=30)))
        def check(value: str) -> None:
            r = c.get(f"/v1/memories/{mid}", params={"as_of": value}, headers=s.h("alice"))
            if pattern.fullmatch(value) and len(value) <= 64:
                assert r.status_code in (200, 404), (value, r.status_code, r.text)
            else:
                assert r.status_code == 422, (value, r.status_code, r.text)

        check()
