"""Simulate a memledger deployment on paper: app servers, a partitioned PostgreSQL ledger, view consumers.

A discrete-event simulation whose costs are the ones measured on this machine (``COSTS`` names the
bench behind each); it answers what ``docs/distributed.md`` asks of a 100M-event, 10-app-server
deployment: how many appends per second the ledger takes at a given partition count before
latency runs away, how far views lag, and what storage and rebuilds cost at 100M events.

Model:

* requests arrive at ``--app-servers`` servers (Poisson), each for a cube drawn from a Zipf
  popularity over ``--cubes`` cubes; every request appends (a write, or the ``memory.read`` an
  audited read records): the cube's partition is ``ledger.partitions.routing.partition_of``;
* a partition is one lock (its head row): an append holds it for ``hold_ms`` of work and then
  until its commit is flushed; commits of all partitions share one WAL flush (``commit_per_s``
  commits per second, the database-wide ceiling), so partitions help until that ceiling binds;
* each view has ``--members`` consumer-group members dividing the partitions; a member applies
  a partition's new events in batches of up to 500 at ``batch_ms + per_event_ms`` each.

Run: ``python -m bench.deployment_sim [--partitions 1,8,32] [--load 400,1500,3000] [--seconds 20]``.
The figures are a model, not a measurement: they carry the costs measured on 2 shared cores,
where PostgreSQL, the writers and the consumers compete for the same CPUs; on a real database
server (more cores, a fast WAL device) ``hold_ms`` and ``commit_per_s`` are the two numbers to
measure again (``bench/partition_bench.py``) and pass in.
"""

from __future__ import annotations

import argparse
import bisect
import heapq
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from ledger.partitions.routing import partition_of

COSTS = {
    # bench/partition_bench.py: 4 writers on 1 partition, single events: 492 ev/s -> the head row is
    # held ~2.0 ms per append, of which the commit flush is the share below
    "hold_ms": 1.6,
    # the A/B in docs/distributed.md: 8 processes committing to 8 tables, NOTIFY after commit
    "commit_per_s": 2300.0,
    # bench/group_bench.py: a view with a 20 ms round trip per batch of 500: 18,800 ev/s per member
    "batch_ms": 20.0,
    "per_event_ms": 0.013,
    # measured here: PostgreSQL events + refs tables with indexes, 100-character plaintext memories
    "bytes_per_event": 693.0,
    # bench/group_bench.py: catch-up of a SQLite counting view, one member (a local view)
    "rebuild_per_member_ev_s": 78_200.0,
    # the same with a remote view (20 ms per batch of 500, e.g. Elasticsearch bulk): one member
    "remote_rebuild_per_member_ev_s": 18_800.0,
}


@dataclass
class Result:
    """What one simulated configuration did."""

    partitions: int
    load: float
    appended: int
    p50_ms: float
    p99_ms: float
    lag_p99_ms: float
    hottest_share: float
    backlog: int
    stable: bool = field(default=True)


def zipf_cdf(n: int, s: float) -> list[float]:
    weights = [1.0 / (i + 1) ** s for i in range(n)]
    total = sum(weights)
    out, acc = [], 0.0
    for w in weights:
        acc += w / total
        out.append(acc)
    return out


def simulate(
    partitions: int,
    load: float,
    seconds: float,
    cubes: int,
    zipf: float,
    members: int,
    costs: dict[str, float],
    seed: int = 7,
) -> Result:
    """One run: ``load`` appends per second for ``seconds`` simulated seconds."""
    rng = random.Random(seed)
    cdf = zipf_cdf(cubes, zipf)
    part_of_cube = [partition_of(f"cube-{i}", partitions) for i in range(cubes)]
    hold = costs["hold_ms"] / 1000
    commit_gap = 1.0 / costs["commit_per_s"]
    queues: list[list[float]] = [[] for _ in range(partitions)]  # arrival times waiting per partition
    busy = [False] * partitions
    commit_free_at = 0.0
    latencies: list[float] = []
    committed: list[list[float]] = [[] for _ in range(partitions)]  # commit times per partition
    per_partition = [0] * partitions
    events: list[tuple[float, int, str, int, float]] = []  # (time, seq, kind, partition, arrival)
    seq = 0

    def push(t: float, kind: str, p: int, arrival: float) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(events, (t, seq, kind, p, arrival))

    t = 0.0
    while True:  # arrivals
        t += rng.expovariate(load)
        if t > seconds:
            break
        cube = bisect.bisect_left(cdf, rng.random())
        push(t, "arrive", part_of_cube[min(cube, cubes - 1)], t)

    def start(p: int, now: float) -> None:
        arrival = queues[p].pop(0)
        busy[p] = True
        push(now + hold, "worked", p, arrival)

    while events:
        now, _, kind, p, arrival = heapq.heappop(events)
        if now > seconds:  # what has not committed by the end is the backlog
            break
        if kind == "arrive":
            queues[p].append(arrival)
            if not busy[p]:
                start(p, now)
        elif kind == "worked":  # the lock is still held while the commit waits for the shared flush
            commit_free_at = max(commit_free_at, now) + commit_gap
            push(commit_free_at, "committed", p, arrival)
        else:
            latencies.append(now - arrival)
            committed[p].append(now)
            per_partition[p] += 1
            busy[p] = False
            if queues[p]:
                start(p, now)
    backlog = sum(len(q) for q in queues) + sum(busy) + sum(1 for e in events if e[2] == "arrive")
    latencies.sort()
    lag = _view_lag(committed, members, costs)
    n = len(latencies)
    return Result(
        partitions,
        load,
        n,
        1000 * latencies[n // 2] if n else 0.0,
        1000 * latencies[min(n - 1, int(n * 0.99))] if n else 0.0,
        lag,
        max(per_partition) / max(1, sum(per_partition)),
        backlog,
        stable=backlog < max(10, load * 0.01),
    )


def _view_lag(committed: Sequence[list[float]], members: int, costs: dict[str, float]) -> float:
    """p99 of commit-to-applied time for one view whose ``members`` divide the partitions (range)."""
    batch, per_event = costs["batch_ms"] / 1000, costs["per_event_ms"] / 1000
    owner = [p * members // len(committed) for p in range(len(committed))]
    lags: list[float] = []
    for m in range(members):
        mine = sorted((t, p) for p in range(len(committed)) if owner[p] == m for t in committed[p])
        free, i = 0.0, 0
        while i < len(mine):
            start = max(free, mine[i][0])
            j = i
            while j < len(mine) and mine[j][0] <= start and j - i < 500:
                j += 1
            done = start + batch + per_event * (j - i)
            lags.extend(done - mine[k][0] for k in range(i, j))
            free, i = done, j
    lags.sort()
    return 1000 * lags[min(len(lags) - 1, int(len(lags) * 0.99))] if lags else 0.0


def paper_figures(events: float, members: int, costs: dict[str, float]) -> list[str]:
    """Storage and rebuild arithmetic for ``events`` events."""
    gb = events * costs["bytes_per_event"] / 1e9
    local_h = events / (members * costs["rebuild_per_member_ev_s"]) / 3600
    remote_h = events / (members * costs["remote_rebuild_per_member_ev_s"]) / 3600
    return [
        f"log storage at {events:,.0f} events: {gb:,.0f} GB (events + refs + indexes, before WAL and replicas)",
        f"rebuilding a view from the log with {members} members: local {local_h:.1f} h, remote {remote_h:.1f} h",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.deployment_sim", description=__doc__.splitlines()[0])
    ap.add_argument("--partitions", default="1,8,32")
    ap.add_argument("--load", default="400,1500,3000", help="appends per second offered (comma list)")
    ap.add_argument("--seconds", type=float, default=20.0, help="simulated seconds per cell")
    ap.add_argument("--app-servers", type=int, default=10)
    ap.add_argument("--cubes", type=int, default=100_000)
    ap.add_argument("--zipf", type=float, default=1.1, help="cube popularity skew")
    ap.add_argument("--members", type=int, default=4, help="consumer-group members per view")
    ap.add_argument("--threads", type=int, default=8, help="request threads per app server")
    ap.add_argument("--events", type=float, default=100e6, help="ledger size for the storage figures")
    for name, value in COSTS.items():
        ap.add_argument("--" + name.replace("_", "-"), type=float, default=value)
    args = ap.parse_args(argv)
    try:
        parts = [int(x) for x in args.partitions.split(",")]
        loads = [float(x) for x in args.load.split(",")]
    except ValueError:
        print("error: --partitions and --load are comma-separated numbers", file=sys.stderr)
        return 2
    if any(p < 1 for p in parts) or any(x <= 0 for x in loads) or args.seconds <= 0 or args.members < 1:
        print("error: partitions, members, load and seconds must be positive", file=sys.stderr)
        return 2
    costs = {name: getattr(args, name) for name in COSTS}
    print(f"deployment model: {args.app_servers} app servers, {args.cubes:,} cubes (Zipf {args.zipf}),")
    print(f"  costs {', '.join(f'{k}={v:g}' for k, v in costs.items())}")
    print(
        f"{'partitions':>10} {'offered/s':>10} {'done/s':>8} {'p50 ms':>8} {'p99 ms':>9} {'lag p99 ms':>11} "
        f"{'hottest':>8} {'backlog':>8}"
    )
    for p in parts:
        for load in loads:
            r = simulate(p, load, args.seconds, args.cubes, args.zipf, min(args.members, p), costs)
            flag = "" if r.stable else "  (saturated)"
            print(
                f"{p:>10} {load:>10,.0f} {r.appended / args.seconds:>8,.0f} {r.p50_ms:>8.1f} {r.p99_ms:>9.1f} "
                f"{r.lag_p99_ms:>11.1f} {r.hottest_share:>8.1%} {r.backlog:>8,}{flag}"
            )
    for line in paper_figures(args.events, args.members, costs):
        print(line)
    for p in parts:  # a PostgresLog handle keeps a connection per partition per thread
        conns = args.app_servers * args.threads * p
        print(
            f"PostgreSQL connections at {p} partitions: {conns:,} ({args.app_servers} servers x {args.threads} threads)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
