"""Round trip of the Python client over HTTP vs the embedded API, add and search, in one run.

Run: python -m bench.client_bench [--adds 300] [--searches 100] [--rounds 3] [--vector]

Starts ``memledger serve`` on 127.0.0.1 over a fresh data directory and opens a second fresh data
directory for ``EmbeddedClient``; both use the same configuration (vector view off unless
``--vector``). Each round times ``--adds`` sequential ``add`` calls and then ``--searches``
sequential ``search`` calls on each side (one client, one request at a time: the latency an
agent sees). The table shows the median over the rounds of each round's p50 and p99.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ledger.client import EmbeddedClient, MemledgerClient
from ledger.config import init_data_dir
from tests.live_server import LiveServer

WORDS = ("tea", "travel", "berlin", "deploy", "friday", "budget", "garden", "piano", "meeting", "allergy")


def _text(i: int) -> str:
    return f"memory {i}: " + " ".join(WORDS[(i * k) % len(WORDS)] for k in range(1, 9))


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _timed(n: int, call: Callable[[int], Any]) -> tuple[float, float]:
    """(p50, p99) in milliseconds of ``n`` sequential calls."""
    out = []
    for i in range(n):
        start = time.perf_counter()
        call(i)
        out.append((time.perf_counter() - start) * 1000)
    return _pct(out, 0.5), _pct(out, 0.99)


def _round(client: Any, cube: str, base: int, adds: int, searches: int) -> dict[str, tuple[float, float]]:
    add = _timed(adds, lambda i: client.add(cube=cube, text=_text(base + i), metadata={"i": base + i}))
    search = _timed(searches, lambda i: client.search(f"{WORDS[i % len(WORDS)]} memory", cubes=[cube], k=10))
    return {"add": add, "search": search}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--adds", type=int, default=300)
    ap.add_argument("--searches", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--vector", action="store_true", help="with the MiniLM vector view (default: keyword + graph)")
    args = ap.parse_args()
    config = '[views]\nvector = "embedded"\n' if args.vector else '[views]\nvector = "none"\n'
    with tempfile.TemporaryDirectory() as tmp:
        server = LiveServer.start(Path(tmp) / "served", config=config)
        try:
            token = server.principal("bench")
            data, _ = init_data_dir(Path(tmp) / "embedded")
            (data / "memledger.toml").write_text(config)
            sides = {"HTTP client": MemledgerClient(server.url, token=token), "embedded": EmbeddedClient(data, "bench")}
            results: dict[str, list[dict[str, tuple[float, float]]]] = {name: [] for name in sides}
            for r in range(args.rounds):
                for name, client in sides.items():  # interleaved, so both see the same machine load
                    results[name].append(_round(client, "bench", r * args.adds, args.adds, args.searches))
            for client in sides.values():
                client.close()
        finally:
            server.stop()
    print(f"{args.adds} adds then {args.searches} searches per round, {args.rounds} rounds, medians of the rounds")
    print("| side | add p50 ms | add p99 ms | search p50 ms | search p99 ms |")
    print("|---|---|---|---|---|")
    for name, rounds in results.items():
        cells = [statistics.median(r[op][i] for r in rounds) for op in ("add", "search") for i in (0, 1)]
        print(f"| {name} | " + " | ".join(f"{c:.2f}" for c in cells) + " |")


if __name__ == "__main__":
    main()
