"""Kafka log: time and memory to open a handle as the log grows (issue 16 defect 9).

Run (broker from infra/up.sh):

    infra/up.sh && . infra/run/env.sh
    python -m bench.kafka_open_bench [--sizes 10000,100000]

For each size one writer fills a fresh topic (batches of 500 events over 8 cubes), keeping its
local state in a temporary directory. Each open then runs in a fresh interpreter and reports the
wall time until ``head()`` answers and the RSS the handle added (``/proc/self/statm`` before and
after, the interpreter with ``kafka`` imported being the floor):

* cold: no local state, so the handle replays both topics into a temporary SQLite cache (what
  every open cost before, and what a missing or mismatched cache still costs);
* warm: the writer's local state plus 10 events appended since, so only that tail is fetched.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from ledger.events import NewEvent

_OPEN = """
import json, os, sys, time
from ledger.backends.kafka_log import KafkaLog
page = os.sysconf("SC_PAGE_SIZE")
rss = lambda: int(open("/proc/self/statm").read().split()[1]) * page
before = rss()
t0 = time.perf_counter()
log = KafkaLog(sys.argv[1], topic=sys.argv[2], partitions=4, state_path=sys.argv[3] or None)
head = log.head()
dt = time.perf_counter() - t0
st = log.stats()
print(json.dumps({"s": dt, "rss": rss() - before, "head": head, "fetched": st["records_fetched"]}))
log.close()
"""


def _batch(n: int, start: int) -> list[NewEvent]:
    return [
        NewEvent(
            f"cube{i % 8}",
            "memory.added",
            {"memory_id": f"m{i}", "text": f"note {i} " + "x" * 80, "metadata": {}, "tags": []},
            "bench",
        )
        for i in range(start, start + n)
    ]


def _open(servers: str, topic: str, state: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _OPEN, servers, topic, state], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(servers: str, size: int) -> tuple[dict, dict, int]:
    """(cold open, warm open, state file bytes) on a fresh topic of ``size`` events."""
    from ledger.backends.kafka_log import KafkaLog

    topic = f"bench-open-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as d:
        state = str(Path(d) / "kafka.state.sqlite")
        log = KafkaLog(servers, topic=topic, partitions=4, state_path=state)
        try:
            for start in range(0, size, 500):
                log.append(_batch(min(500, size - start), start))
        finally:
            log.close()
        other = KafkaLog(servers, topic=topic, partitions=4)
        try:
            other.append(_batch(10, size))  # the tail a warm open reads
            cold = _open(servers, topic, "")
            warm = _open(servers, topic, state)
        finally:
            other.close()
            other.drop()
        return cold, warm, os.path.getsize(state)


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="10000,100000", help="comma-separated log lengths")
    args = ap.parse_args(argv)
    servers = os.environ.get("MEMLEDGER_TEST_KAFKA") or os.environ.get("MEMLEDGER_KAFKA")
    if not servers:
        print("skipped: MEMLEDGER_TEST_KAFKA not set (run infra/up.sh and source infra/run/env.sh)")
        return
    header = (
        f"{'events':>8} {'cold open s':>12} {'cold RSS MB':>12} {'cold fetched':>13} "
        f"{'warm open s':>12} {'warm RSS MB':>12} {'warm fetched':>13} {'state MB':>9}"
    )
    print(header)
    print("-" * len(header))
    for size in (int(s) for s in args.sizes.split(",")):
        t0 = time.perf_counter()
        cold, warm, state_bytes = measure(servers, size)
        mb = 1024 * 1024
        print(
            f"{size:>8,} {cold['s']:>12.2f} {cold['rss'] / mb:>12.1f} {cold['fetched']:>13,} "
            f"{warm['s']:>12.2f} {warm['rss'] / mb:>12.1f} {warm['fetched']:>13,} {state_bytes / mb:>9.1f}"
            f"   (run {time.perf_counter() - t0:.0f} s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
