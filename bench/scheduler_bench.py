"""Time of one scheduler decision pass over a log prefix (the pure ``decide`` function).

    python bench/scheduler_bench.py [--memories 10000] [--reads 40000] [--cubes 20]

Builds a log of random 12-word memories spread over cubes plus random live reads, then times
``plan_at`` (fold of the whole prefix, usage, near-duplicate search, promotion ranking).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--memories", type=int, default=10_000)
    ap.add_argument("--reads", type=int, default=40_000)
    ap.add_argument("--cubes", type=int, default=20)
    args = ap.parse_args()

    from ledger import events as ev
    from ledger.api import Ledger
    from ledger.backends.sqlite_log import SqliteLog
    from ledger.events import NewEvent
    from ledger.memos.scheduler import plan_at
    from ledger.memos.scheduler_policy import SchedulerPolicy

    rnd = random.Random(0)
    words = [f"w{i}" for i in range(3000)]
    with tempfile.TemporaryDirectory() as tmp:
        ledger = Ledger(SqliteLog(Path(tmp) / "log.sqlite", synchronous="OFF"))
        ids: list[tuple[str, str]] = []
        for i in range(args.memories):
            cube = f"c{i % args.cubes}"
            ids.append((cube, ledger.add(cube, " ".join(rnd.choice(words) for _ in range(12)), "u").id))
        batch = []
        for _ in range(args.reads):
            cube, mid = rnd.choice(ids)
            batch.append(NewEvent(cube, ev.MEMORY_READ, {"memory_ids": [mid], "operation": "get", "as_of": None}, "r"))
            if len(batch) == 5000:
                ledger.append(batch)
                batch = []
        if batch:
            ledger.append(batch)
        n = ledger.head() + 1
        times = []
        for _ in range(3):
            t = time.perf_counter()
            plan = plan_at(ledger, SchedulerPolicy(stable_for_s=0))
            times.append(time.perf_counter() - t)
        ledger.log.close()
    print("| events | memories | cubes | decisions | decide (best of 3) |")
    print("|---:|---:|---:|---:|---:|")
    print(f"| {n} | {args.memories} | {args.cubes} | {len(plan.decisions)} | {min(times):.2f} s |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
