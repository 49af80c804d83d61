"""Partitioned PostgreSQL or Kafka ledger: append rate by partitions x writer processes, and as it grows.

Run (servers from infra/up.sh):

    infra/up.sh && . infra/run/env.sh
    python -m bench.partition_bench                       # matrix (4 s a cell) + growth to 100k events
    python -m bench.partition_bench --events 1000000      # growth run to 1M events
    python -m bench.partition_bench --partitions 1,8 --writers 1,16 --seconds 10 --no-growth
    python -m bench.partition_bench --backend kafka --partitions 1,2,4 --writers 1,2,4 --no-growth

On Kafka a ledger of N partitions is a topic pair (data + sequencer) per partition
(``ledger.partitions.kafka_partitions``); the cell of 1 partition is today's single Kafka ledger.

Matrix: for every partition count (default 1, 2, 4, 8), writer count (1, 4, 16 processes; the GIL
makes threads meaningless) and batch size (1 and 50 events), a fresh ledger in schema
``part_bench_*``; each writer process opens its own handle and appends for ``--seconds`` to the
``--cubes`` cubes (64) in turn, a batch going to one cube (so to one partition). The rate is every
writer's events over the measured time; the ratio compares with 1 writer on 1 partition at the
same batch size. Afterwards every partition's offsets are checked to be gap-free.

Growth: one ledger of ``--growth-partitions`` partitions (8) filled in batches of 1,000 to 10k
events, then to ``--events`` events, in the same cubes; at both sizes ``--growth-writers``
processes (4) append single events for ``--seconds``. The issue's target: the rate at 1M events
within 20 % of the rate at 10k.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time
import uuid
from collections.abc import Sequence
from typing import Any

from ledger.events import NewEvent
from ledger.partitions.composite import CompositePartitionedLog


def _open(backend: str, where: str, partitions: int, name: str) -> CompositePartitionedLog:
    """The ledger ``name`` (a PostgreSQL schema or a Kafka topic) of ``partitions`` partitions at ``where``."""
    if backend == "kafka":
        from ledger.partitions.kafka_partitions import open_kafka_partitions

        return open_kafka_partitions(where, partitions, name)
    from ledger.partitions.postgres_partitions import open_postgres_partitions

    return open_postgres_partitions(where, partitions, name)


def _drop(backend: str, where: str, name: str) -> None:
    if backend == "kafka":
        from ledger.partitions.kafka_partitions import drop_kafka_partitions

        drop_kafka_partitions(where, name)
        return
    from ledger.partitions.postgres_partitions import drop_postgres_partitions

    drop_postgres_partitions(where, name)


def _events(cube: int, n: int, writer: int, seq: int) -> list[NewEvent]:
    return [
        NewEvent(
            f"cube-{cube}",
            "memory.added",
            {
                "memory_id": f"w{writer}-{seq}-{i}",
                "text": f"memory {seq} {i} about tea and travel",
                "metadata": {"source": "bench"},
                "tags": ["bench"],
            },
            "bench",
        )
        for i in range(n)
    ]


def _writer(
    target: tuple[str, str],
    schema: str,
    partitions: int,
    batch: int,
    cubes: int,
    writer: int,
    writers: int,
    seconds: float,
    go: Any,
    own: bool = False,
) -> tuple[int, float]:
    plog = _open(*target, partitions, schema)
    mine = list(range(cubes))
    if own:  # only the cubes of partition writer % partitions: writers of different partitions never meet
        mine = [c for c in mine if plog.partition_of(f"cube-{c}") == writer % partitions] or mine
    plog.append(_events(mine[writer % len(mine)], 1, writer, -1))  # connect and warm up before the clock starts
    go.wait()
    appended, seq = 0, 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        plog.append(_events(mine[(writer + seq * writers) % len(mine)], batch, writer, seq))
        appended += batch
        seq += 1
    elapsed = time.perf_counter() - start
    plog.close()
    return appended, elapsed


def _run_writers(
    target: tuple[str, str],
    schema: str,
    partitions: int,
    writers: int,
    batch: int,
    cubes: int,
    seconds: float,
    own: bool = False,
) -> float:
    """Events/s of ``writers`` processes appending batches of ``batch`` for ``seconds``."""
    ctx = mp.get_context("fork")
    with ctx.Manager() as manager:
        go = manager.Event()
        with ctx.Pool(writers) as pool:
            args = [(target, schema, partitions, batch, cubes, w, writers, seconds, go, own) for w in range(writers)]
            pending = pool.starmap_async(_writer, args)
            time.sleep(0.5 + 0.1 * writers)  # let every process open its handle and warm up
            go.set()
            results = pending.get(timeout=seconds * 10 + 120)
    return sum(n for n, _ in results) / max(t for _, t in results)


def _gap_free(target: tuple[str, str], schema: str, partitions: int) -> tuple[bool, int]:
    """Whether every partition's offsets are gap-free, and (Kafka) how many commits lost the race
    for a sequencer (every reader sees them; PostgreSQL has none: 0)."""
    plog = _open(*target, partitions, schema)
    try:
        rejected = 0
        for k in range(partitions):
            part = plog.partition(k)
            if sum(1 for _ in part.hashes()) != part.head() + 1:
                return False, rejected
            stats = getattr(getattr(part, "inner", part), "stats", None)
            rejected += int(stats()["rejected_commits"]) if stats is not None else 0
        return True, rejected
    finally:
        plog.close()


def matrix(
    target: tuple[str, str],
    parts: list[int],
    writers: list[int],
    batches: list[int],
    cubes: int,
    seconds: float,
    own: bool = False,
) -> None:
    rates: dict[tuple[int, int, int], float] = {}
    lost: dict[tuple[int, int, int], int] = {}
    for p in parts:
        for w in writers:
            for b in batches:
                schema = f"part_bench_{uuid.uuid4().hex[:8]}"
                _open(*target, p, schema).close()
                try:
                    rates[p, w, b] = _run_writers(target, schema, p, w, b, cubes, seconds, own)
                    whole, lost[p, w, b] = _gap_free(target, schema, p)
                    if not whole:
                        raise SystemExit(f"offsets are not gap-free after {p} partitions x {w} writers")
                finally:
                    _drop(*target, schema)
                print(
                    f"  {p} partitions x {w} writers, batch {b}: {rates[p, w, b]:,.0f} ev/s, "
                    f"{lost[p, w, b]} commits lost a sequencer race",
                    flush=True,
                )
    head = "| partitions | writers | " + " | ".join(f"b={b} ev/s | b={b} vs 1x1 | b={b} lost" for b in batches)
    print()
    print(head + " |")
    print("|" + "---:|" * (2 + 3 * len(batches)))
    for p in parts:
        for w in writers:
            cells = []
            for b in batches:
                base = rates.get((1, 1, b)) or rates[parts[0], writers[0], b]
                cells.append(f"{rates[p, w, b]:,.0f} | {rates[p, w, b] / base:.2f}x | {lost[p, w, b]}")
            print(f"| {p} | {w} | " + " | ".join(cells) + " |")


def _fill(plog: Any, to: int, cubes: int, have: int) -> int:
    seq = 0
    while have < to:
        n = min(1000, to - have)
        plog.append(_events(seq % cubes, n, 999, seq + have))
        have += n
        seq += 1
    return have


def growth(target: tuple[str, str], partitions: int, writers: int, cubes: int, events: int, seconds: float) -> None:
    schema = f"part_bench_{uuid.uuid4().hex[:8]}"
    plog = _open(*target, partitions, schema)
    try:
        rows = []
        for size in sorted({10_000, max(events, 10_000)}):
            t0 = time.perf_counter()
            _fill(plog, size, cubes, sum(h + 1 for h in plog.heads()))
            fill = time.perf_counter() - t0
            rate = _run_writers(target, schema, partitions, writers, 1, cubes, seconds)
            rows.append((size, rate, fill))
            print(f"  at {size:,} events: {rate:,.0f} ev/s (filled in {fill:.0f} s)", flush=True)
        print()
        print(f"| events in ledger ({partitions} partitions, {cubes} cubes) | {writers} writers b=1 ev/s | vs 10k |")
        print("|---:|---:|---:|")
        for size, rate, _ in rows:
            print(f"| {size:,} | {rate:,.0f} | {rate / rows[0][1]:.2f}x |")
    finally:
        plog.close()
        _drop(*target, schema)


def _server_cpu(name: bytes) -> float:
    """CPU seconds used so far by the local processes whose command line names ``name`` (the
    server from infra/: PostgreSQL's backends and WAL writer, or the broker)."""
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if name not in f.read():
                    continue
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            continue
    return total / os.sysconf("SC_CLK_TCK")


def ceiling(target: tuple[str, str], cubes: int, events: int = 1500) -> None:
    """One writer's wall time and CPU (client + local server) per single-event append, and the speed-up
    over it that this machine's cores allow at most: cores x wall / CPU (every writer costs the same
    CPU per append; once the cores are busy, more writers add nothing)."""
    import resource

    schema = f"part_bench_{uuid.uuid4().hex[:8]}"
    plog = _open(*target, 1, schema)
    server = b"tansu" if target[0] == "kafka" else b"postgres"
    try:
        plog.append(_events(0, 1, 0, -1))
        r0, s0, t0 = resource.getrusage(resource.RUSAGE_SELF), _server_cpu(server), time.perf_counter()
        for i in range(events):
            plog.append(_events(i % cubes, 1, 0, i))
        wall = time.perf_counter() - t0
        r1, s1 = resource.getrusage(resource.RUSAGE_SELF), _server_cpu(server)
    finally:
        plog.close()
        _drop(*target, schema)
    client = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    cpu = client + (s1 - s0)
    cores = os.cpu_count() or 1
    print()
    print("| one writer, 1 partition, b=1 | ms per append |")
    print("|---|---:|")
    print(f"| wall | {1000 * wall / events:.2f} |")
    print(f"| client CPU | {1000 * client / events:.2f} |")
    print(f"| server CPU (local) | {1000 * (s1 - s0) / events:.2f} |")
    print(f"\nceiling here: {cores} cores x wall / CPU = {cores * wall / cpu:.2f}x one writer")


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--backend", choices=["postgres", "kafka"], default="postgres")
    ap.add_argument("--dsn", default=os.environ.get("MEMLEDGER_TEST_PG_DSN") or os.environ.get("MEMLEDGER_PG_DSN"))
    ap.add_argument("--servers", default=os.environ.get("MEMLEDGER_TEST_KAFKA") or os.environ.get("MEMLEDGER_KAFKA"))
    ap.add_argument("--partitions", type=_ints, default=[1, 2, 4, 8])
    ap.add_argument("--writers", type=_ints, default=[1, 4, 16])
    ap.add_argument("--batches", type=_ints, default=[1, 50])
    ap.add_argument("--cubes", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=4.0, help="measured time of each cell")
    ap.add_argument("--events", type=int, default=100_000, help="ledger size at the end of the growth run")
    ap.add_argument("--growth-partitions", type=int, default=8)
    ap.add_argument("--growth-writers", type=int, default=4)
    ap.add_argument(
        "--own-partition", action="store_true", help="writer w appends only to cubes of partition w %% N (default: all)"
    )
    ap.add_argument("--no-matrix", action="store_true")
    ap.add_argument("--no-ceiling", action="store_true", help="skip the CPU-per-append ceiling")
    ap.add_argument("--no-growth", action="store_true")
    args = ap.parse_args(argv)
    where = args.servers if args.backend == "kafka" else args.dsn
    if not where:
        raise SystemExit(
            "source infra/run/env.sh (MEMLEDGER_TEST_PG_DSN, MEMLEDGER_TEST_KAFKA) or pass --dsn / --servers"
        )
    target = (args.backend, where)
    name = "Kafka" if args.backend == "kafka" else "PostgreSQL"
    print(f"{name} partitioned ledger, {os.cpu_count()} CPUs, {args.seconds:g} s a cell")
    if not args.no_ceiling:
        ceiling(target, args.cubes)
    if not args.no_matrix:
        matrix(target, args.partitions, args.writers, args.batches, args.cubes, args.seconds, args.own_partition)
    if not args.no_growth:
        print()
        growth(target, args.growth_partitions, args.growth_writers, args.cubes, args.events, args.seconds)


if __name__ == "__main__":
    main()
