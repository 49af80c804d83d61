"""HTTP throughput and latency of the service under concurrent clients on loopback.

Run: python -m bench.http_bench [--clients 8] [--adds 2000] [--searches 1000] [--seconds 30]

Starts ``memledger serve`` (uvicorn, one process) on 127.0.0.1 over a fresh data directory,
creates an authenticated principal and one cube per client, then runs each workload with
``--clients`` concurrent httpx clients until the request count or the time bound is reached.
Reads (GET of a memory, audited as ``memory.read`` events) are measured too; searches are
measured when the service exposes ``/v1/search``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
WORDS = ("tea", "travel", "berlin", "deploy", "friday", "budget", "garden", "piano", "meeting", "allergy")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _text(i: int) -> str:
    return f"memory {i}: " + " ".join(WORDS[(i * k) % len(WORDS)] for k in range(1, 12))


def _pct(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    idx = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[idx]


async def _workload(
    clients: list[httpx.AsyncClient],
    total: int,
    seconds: float,
    call: Callable[[httpx.AsyncClient, int, int], Awaitable[httpx.Response]],
) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    counter = iter(range(total))
    deadline = time.perf_counter() + seconds

    async def worker(w: int, client: httpx.AsyncClient) -> None:
        nonlocal errors
        for i in counter:
            if time.perf_counter() > deadline:
                return
            t0 = time.perf_counter()
            r = await call(client, w, i)
            latencies.append(time.perf_counter() - t0)
            if r.status_code >= 300:
                errors += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker(w, c) for w, c in enumerate(clients)))
    elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "n": len(latencies),
        "errors": errors,
        "rate": len(latencies) / elapsed if elapsed else 0.0,
        "p50": _pct(latencies, 0.50) * 1000,
        "p99": _pct(latencies, 0.99) * 1000,
    }


async def _wait_for_views(client: httpx.AsyncClient, seconds: float) -> None:
    """Wait (bounded) until every view has caught up with the log, so searches measure search."""
    deadline = time.perf_counter() + max(seconds, 60.0)
    while time.perf_counter() < deadline:
        text = (await client.get("/metrics")).text
        lags = [
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("memledger_projection_lag_events{")
        ]
        if lags and max(lags) == 0:
            return
        await asyncio.sleep(0.2)


async def _run(base: str, token: str, n_clients: int, adds: int, searches: int, seconds: float) -> list[tuple]:
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    clients = [httpx.AsyncClient(base_url=base, headers=headers, timeout=60, limits=limits) for _ in range(n_clients)]
    rows: list[tuple] = []
    try:
        for w, c in enumerate(clients):
            r = await c.post("/v1/cubes", json={"cube": f"bench-{w}"})
            r.raise_for_status()
        ids: dict[int, list[str]] = {w: [] for w in range(n_clients)}

        async def add(c: httpx.AsyncClient, w: int, i: int) -> httpx.Response:
            r = await c.post("/v1/memories", json={"cube": f"bench-{w}", "text": _text(i), "tags": ["bench"]})
            if r.status_code == 201:
                ids[w].append(r.json()["id"])
            return r

        res = await _workload(clients, adds, seconds, add)
        rows.append(("add (POST /v1/memories)", res))

        async def get(c: httpx.AsyncClient, w: int, i: int) -> httpx.Response:
            mine = ids[w]
            return await c.get(f"/v1/memories/{mine[i % len(mine)]}")

        res = await _workload(clients, searches, seconds, get)
        rows.append(("get (GET /v1/memories/{id})", res))

        spec = (await clients[0].get("/openapi.json")).json()
        if "/v1/search" in spec.get("paths", {}):
            await _wait_for_views(clients[0], seconds)

            async def search(c: httpx.AsyncClient, w: int, i: int) -> httpx.Response:
                query = f"{WORDS[i % len(WORDS)]} {WORDS[(i * 3) % len(WORDS)]}"
                return await c.get("/v1/search", params={"q": query, "cube": f"bench-{w}", "k": 10})

            res = await _workload(clients, searches, seconds, search)
            rows.append(("search (GET /v1/search)", res))
        else:
            rows.append(("search", None))

        # one stream consumer reading the whole log from offset 0 over SSE (no follow)
        t0 = time.perf_counter()
        n = 0
        async with clients[0].stream("GET", "/v1/log/stream", params={"from": 0, "follow": "false"}) as resp:
            async for line in resp.aiter_lines():
                if line.startswith("id: "):
                    n += 1
        elapsed = time.perf_counter() - t0
        rows.append(
            (
                "SSE stream from offset 0 (1 client)",
                {
                    "n": n,
                    "errors": 0,
                    "rate": n / elapsed if elapsed else 0.0,
                    "p50": float("nan"),
                    "p99": float("nan"),
                    "unit": "events",
                },
            )
        )
    finally:
        for c in clients:
            await c.aclose()
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--adds", type=int, default=2000)
    ap.add_argument("--searches", type=int, default=1000, help="requests for each read workload")
    ap.add_argument("--seconds", type=float, default=30.0, help="time bound per workload")
    ap.add_argument(
        "--vector",
        choices=("none", "embedded"),
        default="none",
        help="vector view for search: none (keyword BM25 + graph) or the embedded MiniLM view",
    )
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="memledger-http-bench-") as tmp:
        data = Path(tmp) / "data"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        cli = [sys.executable, "-m", "ledger", "--data", str(data)]
        subprocess.run(cli + ["init"], check=True, env=env, capture_output=True)
        if args.vector == "none":
            config = data / "memledger.toml"
            config.write_text(config.read_text().replace('# vector = "embedded"', 'vector = "none"'))
        out = subprocess.run(
            cli + ["principal", "create", "bench", "--json"], check=True, env=env, capture_output=True, text=True
        ).stdout
        import json

        token = json.loads(out)["token"]
        port = _free_port()
        server = subprocess.Popen(
            cli + ["serve", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"], env=env
        )
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(200):
                try:
                    if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)
            rows = asyncio.run(_run(base, token, args.clients, args.adds, args.searches, args.seconds))
        finally:
            server.terminate()
            server.wait(timeout=30)

    print(
        f"memledger HTTP service, uvicorn (1 process) on loopback, {args.clients} concurrent clients, "
        f"SQLite log synchronous=FULL, bearer-token auth, every read audited, vector view: {args.vector}"
    )
    print(f"{'workload':<36} {'requests':>9} {'errors':>7} {'req/s':>9} {'p50 ms':>9} {'p99 ms':>9}")
    for name, r in rows:
        if r is None:
            print(f"{name:<36} {'not measured: the service has no /v1/search route yet':>45}")
            continue
        if r.get("unit") == "events":
            print(f"{name:<36} {r['n']:>9} {r['errors']:>7} {r['rate']:>9.1f} {'events/s':>19}")
            continue
        print(f"{name:<36} {r['n']:>9} {r['errors']:>7} {r['rate']:>9.1f} {r['p50']:>9.2f} {r['p99']:>9.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
