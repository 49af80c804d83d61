"""Audit-query benchmark on a large ledger.

    python bench/audit_bench.py --events 1000000 --data /tmp/memledger-bench-1m

Builds the ledger on first use (batched appends) and reuses it. Prints median / p95 / max in
milliseconds. Target: an audit query for one memory <= 50 ms on a 1M-event ledger.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from time_ledger_1m import build, memory_count  # noqa: E402

from ledger.timemachine.audit import AuditQuery, audit, knowledge  # noqa: E402
from ledger.timemachine.provenance import provenance  # noqa: E402


def stats(samples: list[float]) -> tuple[float, float, float]:
    s = sorted(samples)
    return statistics.median(s), s[min(len(s) - 1, int(len(s) * 0.95))], s[-1]


def timed(fn, *args, **kw) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn(*args, **kw)
    return (time.perf_counter() - t) * 1000, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--data", default="/tmp/memledger-bench-1m")
    ap.add_argument("--queries", type=int, default=200)
    a = ap.parse_args()
    ledger = build(Path(a.data), a.events)
    head = ledger.head()
    n_mem = memory_count(ledger)
    rng = random.Random(2)
    ids = [f"m{rng.randrange(n_mem):08d}" for _ in range(a.queries)]
    rows: list[tuple[str, tuple[float, float, float], str]] = []

    def run(label: str, calls: list, size=len) -> None:
        samples, sizes = [], []
        for fn, args, kw in calls:
            ms, out = timed(fn, *args, **kw)
            samples.append(ms)
            sizes.append(size(out))
        rows.append((label, stats(samples), f"{statistics.mean(sizes):.1f}"))

    run("audit --memory ID", [(audit, (ledger, AuditQuery(memory=m)), {}) for m in ids])
    run(
        "audit --memory ID --type memory.read",
        [(audit, (ledger, AuditQuery(memory=m, types=["memory.read"])), {}) for m in ids],
    )
    run(
        "audit --memory ID --since/--until (offsets)",
        [(audit, (ledger, AuditQuery(memory=m, since=head // 4, until=head // 2)), {}) for m in ids],
    )
    run(
        "audit --memory ID --as-of T (knowledge)",
        [(knowledge, (ledger, m, rng.randrange(head // 2, head)), {}) for m in ids],
        size=lambda k: len(k["events"]),
    )
    run("provenance ID", [(provenance, (ledger, m), {}) for m in ids[:50]], size=lambda t: len(t["events"]))
    run(
        "audit --actor A --since (last 10k events)",
        [(audit, (ledger, AuditQuery(actor=f"reader{i}", since=head - 10_000)), {}) for i in range(10)],
    )
    run(
        "audit --type memory.read --limit 100",
        [(audit, (ledger, AuditQuery(types=["memory.read"], since=head // 2, limit=100)), {}) for _ in range(10)],
    )
    run(
        "audit --actor A (whole ledger, SQL scan)",
        [(audit, (ledger, AuditQuery(actor=f"reader{i}")), {}) for i in range(3)],
    )
    run(
        "audit --cube C --since (last 10k events)",
        [(audit, (ledger, AuditQuery(cube=f"cube{i}", since=head - 10_000)), {}) for i in range(10)],
    )

    print(f"\nledger: {head + 1:,} events, {n_mem:,} memories\n")
    print(f"| {'query':<44} | {'median ms':>9} | {'p95 ms':>8} | {'max ms':>8} | {'rows':>7} |")
    print(f"|{'-' * 46}|{'-' * 11}|{'-' * 10}|{'-' * 10}|{'-' * 9}|")
    for label, (med, p95, mx), size in rows:
        print(f"| {label:<44} | {med:>9.2f} | {p95:>8.2f} | {mx:>8.2f} | {size:>7} |")


if __name__ == "__main__":
    main()
