"""Scoped search and listing: the views' pre-filter against a post-filter of the top k, in one run.

Run: python -m bench.filter_bench [--memories 20000] [--users 200] [--queries 200] [--k 10]

Writes ``--memories`` memories spread over ``--users`` users (``user_id``) and 4 agents
(``agent_id``) into one cube of a fresh ledger, with the keyword and graph views (no vector
model). Then, for ``--queries`` queries, times and checks:

* unfiltered search (the ceiling: no filter work at all);
* ``where={"user_id": U}``: a scope pin, answered by the scope index, then ranked inside the views;
* ``where={"n": {"$gte": ...}}``: no scope pin, so every memory of the cube is checked;
* the peer, a post-filter: the unfiltered top k with non-matching hits dropped (what a store
  without filters inside its index returns), and the same with 10x over-fetch;
* listing with the user filter: ``Ledger.list_memories`` (a fold of the cube's stream per page)
  and ``ViewSet.list_memories`` (the record view's scope index; what the HTTP service uses).

"full k" is the share of queries that returned k hits among those where at least k matching
memories match the query (the pre-filter must score 1.00).
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ledger import events as ev
from ledger.events import NewEvent
from ledger.rules.filters import parse_filter, record_of
from projections.view_set import ViewSet
from tests.ledgers import make_ledger

WORDS = ("tea", "travel", "berlin", "deploy", "friday", "budget", "garden", "piano", "meeting", "allergy", "coffee")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _timed(queries: list[Any], run: Callable[[Any], list[Any]]) -> tuple[list[float], list[list[Any]]]:
    times, results = [], []
    for q in queries:
        start = time.perf_counter()
        results.append(run(q))
        times.append((time.perf_counter() - start) * 1000)
    return times, results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--memories", type=int, default=20_000)
    ap.add_argument("--users", type=int, default=200)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--k", type=int, default=10)
    args = ap.parse_args()
    rng = random.Random(7)
    tmp = Path(tempfile.mkdtemp(prefix="filter-bench-"))
    led = make_ledger(tmp / "log.sqlite", record_reads=False)
    led.add("c", "seed", "bench")
    batch = []
    for i in range(args.memories):
        meta = {"user_id": f"u{rng.randrange(args.users)}", "agent_id": f"a{i % 4}", "n": i % 100}
        text = " ".join(rng.choice(WORDS) for _ in range(6))
        batch.append(NewEvent("c", ev.MEMORY_ADDED, {"memory_id": f"m{i}", "text": text, "metadata": meta}, "bench"))
        if len(batch) == 2000:
            led.append(batch)
            batch = []
    if batch:
        led.append(batch)
    views = ViewSet.open(led, data_dir=tmp, kinds=["keyword", "graph"])
    start = time.perf_counter()
    views.catch_up()
    fold_s = time.perf_counter() - start
    states = led.cube_memories("c")
    k = args.k
    queries = [
        (
            " ".join(rng.sample(WORDS, 2)),
            {"user_id": f"u{rng.randrange(args.users)}"} if i % 2 == 0 else {"n": {"$gte": 97}},
        )
        for i in range(args.queries)
    ]

    def search(q: Any, where: Any = None, kk: int = k) -> list[str]:
        return [h.memory_id for h in views.search(q[0], cube="c", k=kk, where=where)]

    def post(q: Any, factor: int) -> list[str]:
        flt = parse_filter(q[1])
        return [m for m in search(q, None, min(1000, k * factor)) if flt.matches(record_of(states[m]))][:k]

    def matching(q: Any) -> int:
        flt = parse_filter(q[1])
        words = set(q[0].split())
        return sum(1 for s in states.values() if flt.matches(record_of(s)) and words & set((s.text or "").split()))

    need = [matching(q) >= k for q in queries]
    rows = []
    for label, run in [
        ("unfiltered (ceiling)", lambda q: search(q)),
        ("where (pre-filter in the views)", lambda q: search(q, q[1])),
        ("post-filter of the top k (peer)", lambda q: post(q, 1)),
        ("post-filter, 10x over-fetch (peer)", lambda q: post(q, 10)),
    ]:
        times, results = _timed(queries, run)
        for kind, sel in (("scope pin", 0), ("no pin", 1)):
            ts = [t for i, t in enumerate(times) if i % 2 == sel]
            fk = [len(r) == k for i, (r, n) in enumerate(zip(results, need, strict=True)) if n and i % 2 == sel]
            share = f"{sum(fk) / len(fk):.2f}" if fk and label != "unfiltered (ceiling)" else "-"
            rows.append((label, kind, statistics.median(ts), _pct(ts, 0.99), share))
    list_times, _ = _timed(
        queries[::2][:50], lambda q: led.list_memories("c", where=q[1], limit=100, record_read=False).items
    )
    print(f"\n{args.memories:,} memories, {args.users} users, keyword+graph views folded in {fold_s:.1f} s; k={k}")
    print(f"{'search':38} {'filter':10} {'p50 ms':>8} {'p99 ms':>8} {'full k':>7}")
    for label, kind, p50, p99, share in rows:
        print(f"{label:38} {kind:10} {p50:8.1f} {p99:8.1f} {share:>7}")
    view_times, _ = _timed(
        queries[::2][:50], lambda q: views.list_memories("c", where=q[1], limit=100, record_read=False).items
    )
    for label, ts in (("Ledger.list_memories (fold)", list_times), ("ViewSet.list_memories (scope index)", view_times)):
        print(f"{label:38} {'scope pin':10} {statistics.median(ts):8.1f} {_pct(ts, 0.99):8.1f} {'-':>7}")
    views.close()
    led.log.close()


if __name__ == "__main__":
    main()
