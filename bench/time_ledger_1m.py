"""Builds (or reuses) a large ledger for the time-machine benchmarks, with batched appends.

Shape: ``cubes`` cubes; per round of 4 events one memory is added, one updated twice and one read,
so a ledger of N events holds about N/4 memories with ~4 events each. Run as a script to build:

    python bench/time_ledger_1m.py --events 1000000 --data /tmp/memledger-bench-1m
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ledger import events as ev  # noqa: E402
from ledger.api import Ledger  # noqa: E402
from ledger.backends.sqlite_log import SqliteLog  # noqa: E402
from ledger.events import NewEvent  # noqa: E402

BATCH = 10_000


def build(data: Path, n_events: int, cubes: int = 100, seed: int = 7) -> Ledger:
    """Open ``data/log.sqlite``, appending until it holds at least ``n_events`` events.

    The build appends with ``synchronous=OFF``; the returned ledger is reopened with the
    production default (``FULL``: every commit fsynced), so measured writes pay the real cost.
    """
    _fill(data, n_events, cubes, seed)
    return Ledger(SqliteLog(data / "log.sqlite"))


def _fill(data: Path, n_events: int, cubes: int, seed: int) -> None:
    data.mkdir(parents=True, exist_ok=True)
    log = SqliteLog(data / "log.sqlite", synchronous="OFF")
    head = log.head()
    if head + 1 >= n_events:
        log.close()
        return
    if head >= 0:
        raise SystemExit(f"{data} holds a smaller ledger ({head + 1} events); delete it or pick another --data")
    rng = random.Random(seed)
    t0 = time.perf_counter()
    log.append(
        [
            NewEvent(f"cube{c}", ev.CUBE_CREATED, {"cube": f"cube{c}", "owner": f"user{c}"}, f"user{c}")
            for c in range(cubes)
        ]
    )
    written, m = cubes, 0
    while written < n_events:
        batch: list[NewEvent] = []
        while len(batch) < BATCH and written + len(batch) < n_events:
            c = m % cubes
            cube, mid = f"cube{c}", f"m{m:08d}"
            batch.append(
                NewEvent(
                    cube,
                    ev.MEMORY_ADDED,
                    {
                        "memory_id": mid,
                        "text": f"memory {m} about topic {rng.randrange(1000)}",
                        "metadata": {},
                        "tags": [],
                        "state": "generated",
                    },
                    f"user{c}",
                )
            )
            old = f"m{rng.randrange(m + 1):08d}"
            old_cube = f"cube{int(old[1:]) % cubes}"
            batch.append(
                NewEvent(
                    old_cube, ev.MEMORY_UPDATED, {"memory_id": old, "text": f"revised {m}"}, f"agent{rng.randrange(20)}"
                )
            )
            batch.append(
                NewEvent(
                    old_cube,
                    ev.MEMORY_READ,
                    {"memory_ids": [old], "operation": "get", "as_of": None},
                    f"reader{rng.randrange(50)}",
                )
            )
            old2 = f"m{rng.randrange(m + 1):08d}"
            batch.append(
                NewEvent(
                    f"cube{int(old2[1:]) % cubes}",
                    ev.MEMORY_UPDATED,
                    {"memory_id": old2, "text": f"second revision {m}"},
                    f"agent{rng.randrange(20)}",
                )
            )
            m += 1
        batch = batch[: n_events - written]
        log.append(batch)
        written += len(batch)
        if written % 100_000 < BATCH:
            rate = written / (time.perf_counter() - t0)
            print(f"  built {written:,} events ({rate:,.0f} ev/s)", file=sys.stderr)
    log.close()


def memory_count(ledger: Ledger) -> int:
    r = ledger.log._conn().execute("SELECT COUNT(*) FROM events WHERE type = 'memory.added'").fetchone()  # type: ignore[attr-defined]
    return int(r[0])


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--data", default="/tmp/memledger-bench-1m")
    a = ap.parse_args()
    t = time.perf_counter()
    led = build(Path(a.data), a.events)
    print(f"ledger at {a.data}: head {led.head():,} ({time.perf_counter() - t:.1f} s)")
