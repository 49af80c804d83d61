"""Branch benchmark on a large ledger: branch creation time, and get/history on a branch vs main.

    python bench/branch_bench.py --events 1000000 --data /tmp/memledger-bench-1m

Builds the ledger on first use (batched appends, about a minute for 1M events) and reuses it.
Prints a table of median / p95 / max in milliseconds. Targets: create <= 50 ms; branch reads
as fast as main reads.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from time_ledger_1m import build, memory_count  # noqa: E402

from ledger.timemachine.branches import Branches  # noqa: E402


def stats(samples: list[float]) -> tuple[float, float, float]:
    s = sorted(samples)
    return statistics.median(s), s[min(len(s) - 1, int(len(s) * 0.95))], s[-1]


def timed(fn, *args, **kw) -> float:
    t = time.perf_counter()
    fn(*args, **kw)
    return (time.perf_counter() - t) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--data", default="/tmp/memledger-bench-1m")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--branch-writes", type=int, default=1000)
    a = ap.parse_args()
    ledger = build(Path(a.data), a.events)
    head = ledger.head()
    n_mem = memory_count(ledger)
    rng = random.Random(1)
    store = Path(a.data) / "branches.sqlite"
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(f"{store}{suffix}"):
            os.remove(f"{store}{suffix}")
    branches = Branches(ledger, store)
    rows: list[tuple[str, tuple[float, float, float]]] = []

    create = [timed(branches.create, f"b{i}", rng.randrange(head + 1), "bench") for i in range(20)]
    rows.append(("branch create (random fork offset)", stats(create)))
    create_head = [timed(branches.create, f"h{i}", None, "bench") for i in range(10)]
    rows.append(("branch create (at head)", stats(create_head)))
    nested = [timed(branches.create, f"n{i}", None, "bench", from_branch="h0") for i in range(10)]
    rows.append(("nested branch create (--from)", stats(nested)))

    mid = head // 2
    branches.create("mid", mid, "bench")
    br = branches.ledger("mid")
    at_mid = branches.create("full", head, "bench")
    br_head = branches.ledger(at_mid.name)
    # the branch writes: updates to existing memories + new ones, so reads hit both sides
    changed = [f"m{rng.randrange(n_mem // 4):08d}" for _ in range(a.branch_writes // 2)]
    for mid_id in changed:
        try:
            br.update(mid_id, "changed on the branch", "bench")
        except Exception:  # noqa: BLE001 - archived or not yet born at the fork: skip
            pass
    for i in range(a.branch_writes // 2):
        br.add("cube0", f"branch memory {i}", "bench", memory_id=f"bm{i}")

    ids = [f"m{rng.randrange(n_mem // 4):08d}" for _ in range(a.queries)]  # born before the mid fork
    for label, led in (("main", ledger), ("branch at head", br_head), ("branch at middle (+writes)", br)):
        rows.append((f"get        {label}", stats([timed(led.get, m, record_read=False) for m in ids])))
        rows.append((f"history    {label}", stats([timed(led.history, m, record_read=False) for m in ids])))
    rows.append(
        (
            "get        branch-changed memories",
            stats([timed(br.get, m, record_read=False) for m in changed[: a.queries]]),
        )
    )
    rows.append(
        (
            "get        branch-only memories",
            stats([timed(br.get, f"bm{i}", record_read=False) for i in range(min(a.queries, 500))]),
        )
    )
    ov = [timed(branches.overlay, "mid") for _ in range(5)]
    rows.append((f"search overlay of branch ({a.branch_writes} own events)", stats(ov)))

    print(f"\nledger: {head + 1:,} events, {n_mem:,} memories; {a.queries} queries per row\n")
    print(f"| {'operation':<48} | {'median ms':>9} | {'p95 ms':>8} | {'max ms':>8} |")
    print(f"|{'-' * 50}|{'-' * 11}|{'-' * 10}|{'-' * 10}|")
    for label, (med, p95, mx) in rows:
        print(f"| {label:<48} | {med:>9.2f} | {p95:>8.2f} | {mx:>8.2f} |")
    branches.close()


if __name__ == "__main__":
    main()
