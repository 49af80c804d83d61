"""Append throughput of the embedded log through the Python API, hash chain and schema checks on.

Run: python -m bench.append_bench [--events N] [--synchronous FULL|NORMAL]

Durability: SQLite WAL, synchronous=FULL by default (every committed batch is fsynced before
append returns). Each batch is one transaction: validate, chain, insert events + ref index.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from ledger.backends.sqlite_log import SqliteLog
from ledger.events import NewEvent


def _batch(n: int, start: int) -> list[NewEvent]:
    return [
        NewEvent(
            f"cube-{(start + i) % 16}",
            "memory.added",
            {
                "memory_id": f"m{start + i}",
                "text": f"memory number {start + i} about tea and travel plans",
                "metadata": {"source": "bench"},
                "tags": ["bench"],
            },
            "bench",
        )
        for i in range(n)
    ]


def run(batch_sizes: list[int], total: int, synchronous: str) -> list[tuple[int, int, float]]:
    rows = []
    with tempfile.TemporaryDirectory() as d:
        log = SqliteLog(Path(d) / "log.sqlite", synchronous=synchronous)
        written = 0
        for size in batch_sizes:
            n_batches = max(1, min(total // size, 2000))
            batches = [_batch(size, written + k * size) for k in range(n_batches)]
            t0 = time.perf_counter()
            for b in batches:
                log.append(b)
            dt = time.perf_counter() - t0
            written += size * n_batches
            rows.append((size, size * n_batches, dt))
        assert log.verify().ok
        log.close()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=200_000, help="events per batch size (batch=1 is capped at 2,000)")
    ap.add_argument("--synchronous", default="FULL", choices=["FULL", "NORMAL"])
    args = ap.parse_args()
    rows = run([1, 100, 10_000], args.events, args.synchronous)
    print(f"append benchmark: SQLite WAL, synchronous={args.synchronous}, hash chain + schema validation on")
    print(f"{'batch':>8} {'events':>9} {'seconds':>9} {'events/s':>10}")
    for size, n, dt in rows:
        print(f"{size:>8} {n:>9} {dt:>9.2f} {n / dt:>10,.0f}")


if __name__ == "__main__":
    main()
