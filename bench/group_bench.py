"""Consumer groups on PostgreSQL: catch-up rate, lag under a steady writer and takeover after kill -9.

Run (servers from infra/up.sh):

    infra/up.sh && . infra/run/env.sh
    python -m bench.group_bench [--members 1,2,4] [--partitions 8] [--events-per-partition 2500]
                                [--rate 400] [--steady-seconds 8]

For each group size M, M member processes (``memledger consume --view counter --group G``, batch
500, poll 20 ms, heartbeats every 0.5 s) run the counting view of ``tests/dist_counting.py``: one
SQLite file per partition, rows and checkpoint in one transaction, so each batch costs a real
commit. The partitioned log is ``tests/group_partitions.py`` (one PostgreSQL schema per partition)
until the real partitioned backends replace it.

- catch-up: the members start on a pre-written log (``--events-per-partition`` in each partition)
  with fresh views; rate = events / (time all checkpoints reach the heads - time of the first
  applied batch); ``start`` is the time from spawning the processes to the first applied batch.
- lag: a writer appends batches of 10 round-robin over the partitions at ``--rate`` events/s;
  lag of a batch = time from its append returning to its partition's checkpoint reaching it
  (checkpoints sampled every 10 ms).
- frozen (M >= 2, writer still running): ``SIGSTOP`` of the last member; time until the others
  hold the lock of every partition it held (its heartbeat expires after 3 s, a survivor ends its
  session, which frees its locks). A partition whose view transaction the frozen member left open
  (here: a SQLite write lock) advances only once it runs again or dies; then ``SIGCONT``, and the
  bench waits until it has its share back.
- takeover: ``kill -9`` of the first member; time until every partition it held advances again
  (its closed session is noticed at a survivor's next heartbeat; its locks were freed at once).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from consumers.assignment import assign_partitions
from consumers.pg_group_coordinator import PostgresGroupCoordinator
from ledger.events import NewEvent
from ledger.partitions.routing import partition_of
from tests.dist_counting import CountingProjection, partition_path
from tests.group_partitions import ListPartitionedLog, postgres_partitions

ROOT = Path(__file__).resolve().parent.parent
VIEW = "counter"


def _cubes(count: int) -> list[str]:
    """One cube name per partition, in partition order."""
    out: dict[int, str] = {}
    i = 0
    while len(out) < count:
        name = f"cube{i}"
        out.setdefault(partition_of(name, count), name)
        i += 1
    return [out[k] for k in range(count)]


def _batch(cube: str, start: int, n: int) -> list[NewEvent]:
    return [
        NewEvent(
            cube,
            "memory.added",
            {"memory_id": f"{cube}-m{start + i}", "text": f"memory {start + i}", "metadata": {}, "tags": []},
            "bench",
        )
        for i in range(n)
    ]


def prewrite(plog: ListPartitionedLog, per_partition: int) -> None:
    for cube in _cubes(plog.count):
        for start in range(0, per_partition, 50):
            plog.append(_batch(cube, start, min(50, per_partition - start)))


class Views:
    """The checkpoints of every partition's view in one data directory (connections kept open)."""

    def __init__(self, data: Path, count: int):
        self.views = [CountingProjection(partition_path(data, k)) for k in range(count)]

    def checkpoints(self) -> list[int]:
        return [v.checkpoint() for v in self.views]

    def close(self) -> None:
        for v in self.views:
            v.close()


def spawn(data: Path, name: str, group: str, log_dir: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("MEMLEDGER_PG_DSN", None)
    args = ["consume", "--view", VIEW, "--group", group, "--member", name, "--batch-size", "500"]
    args += ["--poll-interval", "0.02", "--report-every", "60", "--heartbeat-interval", "0.5"]
    err = (log_dir / f"{name}.err").open("w")
    return subprocess.Popen(
        [sys.executable, "-m", "ledger", "--data", str(data), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=err,
    )


class Writer(threading.Thread):
    """Appends batches of 10 round-robin over the partitions at a steady rate; records when each landed."""

    def __init__(self, plog: ListPartitionedLog, rate: float):
        super().__init__(daemon=True)
        self.plog, self.rate = plog, rate
        self.cubes = _cubes(plog.count)
        self.stop = threading.Event()
        self.landed: list[tuple[int, int, float]] = []  # (partition, last offset, time it was acknowledged)
        self.lock = threading.Lock()

    def run(self) -> None:
        i, t0 = 0, time.monotonic()
        while not self.stop.is_set():
            k = i % self.plog.count
            events = self.plog.append(_batch(self.cubes[k], 10**6 + i * 10, 10))
            with self.lock:
                self.landed.append((k, events[-1].offset, time.monotonic()))
            i += 1
            delay = t0 + i * 10 / self.rate - time.monotonic()
            if delay > 0:
                self.stop.wait(delay)


def wait_until(cond, seconds: float, procs: list[subprocess.Popen]) -> float:
    deadline = time.monotonic() + seconds
    while not cond():
        if any(p.poll() is not None for p in procs):
            raise RuntimeError("a member process exited; see its .err file")
        if time.monotonic() > deadline:
            raise RuntimeError("timed out")
        time.sleep(0.01)
    return time.monotonic()


def run_group(dsn: str, schema: str, plog: ListPartitionedLog, members: int, args: argparse.Namespace, tmp: Path):
    data = tmp / f"m{members}"
    data.mkdir()
    (data / "memledger.toml").write_text(
        f'[log]\nbackend = "postgres"\ndsn = "{dsn}"\nschema = "{schema}"\n\n'
        f'[consumers.views.counter]\nfactory = "tests.dist_counting:build"\ndelay = {args.view_delay}\n\n'
        f'[consumers.group]\npartitioned_log = "tests.group_partitions:from_config"\npartitions = {plog.count}\n'
    )
    views = Views(data, plog.count)
    group = f"bench{members}"
    names = [f"m{i}" for i in range(members)]
    heads = list(plog.heads())
    events = sum(h + 1 for h in heads)
    t_spawn = time.monotonic()
    procs = [spawn(data, n, group, tmp) for n in names]
    out: dict[str, float | str] = {"members": members}
    writer: Writer | None = None
    try:
        t_first = wait_until(lambda: max(views.checkpoints()) >= 0, 120, procs)
        t_done = wait_until(lambda: all(c >= h for c, h in zip(views.checkpoints(), heads, strict=True)), 600, procs)
        out["start s"] = t_first - t_spawn
        out["catch-up ev/s"] = events / max(t_done - t_first, 1e-9)
        # wait for the final assignment (every member holds its share) before the steady phase
        probe = PostgresGroupCoordinator(dsn, schema, group, VIEW, "bench-probe")
        want = {k: m for m, ks in assign_partitions(names, plog.count).items() for k in ks}
        wait_until(lambda: probe.lock_holders() == want, 60, procs)
        writer = Writer(plog, args.rate)
        lags: list[float] = []
        writer.start()

        def sample(seconds: float) -> None:
            end = time.monotonic() + seconds
            seen = 0
            while time.monotonic() < end:
                cps = views.checkpoints()
                now = time.monotonic()
                with writer.lock:
                    pending = writer.landed[seen:]
                done = 0
                for k, offset, t in pending:
                    if cps[k] < offset:
                        break  # keep order: later batches are measured once the earlier ones are
                    lags.append(now - t)
                    done += 1
                seen += done
                time.sleep(0.01)

        sample(args.steady_seconds)
        out["lag p50 ms"] = statistics.median(lags) * 1000 if lags else float("nan")
        out["lag p99 ms"] = statistics.quantiles(lags, n=100)[98] * 1000 if len(lags) >= 2 else float("nan")
        if members >= 2:
            out["frozen s"] = fenced(procs, names, probe, plog.count)
            procs[-1].send_signal(signal.SIGCONT)
            wait_until(lambda: probe.lock_holders() == want, 60, procs)  # it rejoined and got its share back
            out["takeover s"] = takeover(procs, names, 0, signal.SIGKILL, views, plog.count)
        else:
            out["frozen s"] = out["takeover s"] = "n/a"
        probe.leave()
    finally:
        if writer is not None:
            writer.stop.set()
            writer.join()
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(60)
        views.close()
    return out


def fenced(procs: list[subprocess.Popen], names: list[str], probe: PostgresGroupCoordinator, count: int) -> float:
    """SIGSTOP the last member; seconds until the others hold the locks of every partition it held."""
    victim = assign_partitions(names, count)[names[-1]]
    procs[-1].send_signal(signal.SIGSTOP)
    t = time.monotonic()

    def moved() -> bool:
        holders = probe.lock_holders()
        return all(holders.get(k, names[-1]) != names[-1] for k in victim)

    return wait_until(moved, 120, procs[:-1]) - t


def takeover(procs: list[subprocess.Popen], names: list[str], i: int, sig: int, views: Views, count: int) -> float:
    """Send ``sig`` to member ``i``; seconds until every partition it held advances again."""
    victim = assign_partitions(names, count)[names[i]]
    at = views.checkpoints()
    procs[i].send_signal(sig)
    t = time.monotonic()
    rest = [p for j, p in enumerate(procs) if j != i % len(procs)]
    return wait_until(lambda: all(views.checkpoints()[k] > at[k] for k in victim), 120, rest) - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--members", default="1,2,4")
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--events-per-partition", type=int, default=2500)
    ap.add_argument("--rate", type=float, default=400.0, help="steady writer, events/s")
    ap.add_argument("--steady-seconds", type=float, default=8.0)
    ap.add_argument(
        "--view-delay", type=float, default=0.0, help="seconds each view batch waits inside its transaction"
    )
    args = ap.parse_args()
    dsn = os.environ.get("MEMLEDGER_TEST_PG_DSN")
    if not dsn:
        sys.exit("MEMLEDGER_TEST_PG_DSN is not set: run infra/up.sh and source infra/run/env.sh")
    schema = f"group_bench_{uuid.uuid4().hex[:8]}"
    plog = postgres_partitions(dsn, schema, args.partitions)
    rows = []
    try:
        t = time.monotonic()
        prewrite(plog, args.events_per_partition)
        print(f"pre-wrote {sum(h + 1 for h in plog.heads()):,} events in {time.monotonic() - t:.1f} s", flush=True)
        with tempfile.TemporaryDirectory(prefix="group-bench-") as tmp:
            for m in [int(x) for x in args.members.split(",")]:
                rows.append(run_group(dsn, schema, plog, m, args, Path(tmp)))
                print(f"  {m} member(s) done", flush=True)
    finally:
        plog.drop()
        probe = PostgresGroupCoordinator(dsn, schema, "cleanup", VIEW, "cleanup")
        probe._connection().execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        probe.leave()
        plog.close()
    cols = ["members", "start s", "catch-up ev/s", "lag p50 ms", "lag p99 ms", "frozen s", "takeover s"]
    print(
        f"\nconsumer group on {args.partitions} PostgreSQL partitions, counting view (SQLite per partition); "
        f"writer {args.rate:g} ev/s, view delay {args.view_delay * 1000:g} ms per batch"
    )
    print(" | ".join(f"{c:>13}" for c in cols))
    for r in rows:
        print(" | ".join(f"{r[c]:>13,.2f}" if isinstance(r[c], float) else f"{r[c]!s:>13}" for c in cols))


if __name__ == "__main__":
    main()
