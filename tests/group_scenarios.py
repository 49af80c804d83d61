"""Shared scenario helpers of the consumer-group tests: write events into every partition, read each
partition's counting view, and check it equals a fresh fold of that partition."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ledger.partitions.routing import partition_of
from tests.cli_helpers import cli_process
from tests.dist_counting import CountingProjection, partition_path
from tests.group_partitions import ListPartitionedLog
from tests.log_contract import added

PARTITIONS = 8


def cubes_per_partition(count: int = PARTITIONS, per: int = 2) -> dict[int, list[str]]:
    """``per`` cube names routed to each partition."""
    out: dict[int, list[str]] = {k: [] for k in range(count)}
    i = 0
    while any(len(v) < per for v in out.values()):
        name = f"cube{i}"
        k = partition_of(name, count)
        if len(out[k]) < per:
            out[k].append(name)
        i += 1
    return out


def write(plog: ListPartitionedLog, per_partition: int, tag: str = "a") -> None:
    """``per_partition`` events into every partition, in batches of 10 per cube."""
    for k, cubes in cubes_per_partition(plog.count).items():
        for start in range(0, per_partition, 10):
            cube = cubes[(start // 10) % len(cubes)]
            n = min(10, per_partition - start)
            plog.append([added(cube, f"{tag}-{k}-{start + j}", f"text {start + j}") for j in range(n)])


def assert_exactly_once(plog: ListPartitionedLog, data: Path) -> None:
    """Each partition's view holds each event of its partition once, and nothing else."""
    for k in range(plog.count):
        view = CountingProjection(partition_path(data, k))
        try:
            rows = sorted(view.conn.execute("SELECT offset, event_id FROM applied"))
            expected = [(e.offset, e.event_id) for e in plog.partition(k).read()]
            assert rows == expected, f"partition {k}: view differs from a fresh fold of its events"
            assert view.checkpoint() == plog.partition(k).head()
        finally:
            view.close()


def checkpoints(data: Path, count: int = PARTITIONS) -> list[int]:
    out = []
    for k in range(count):
        view = CountingProjection(partition_path(data, k))
        out.append(view.checkpoint())
        view.close()
    return out


def wait_for(condition: Callable[[], bool], what: str, seconds: float = 90, procs: tuple = ()) -> None:
    """Poll ``condition`` until it holds (a generous deadline, not a timing claim)."""
    deadline = time.monotonic() + seconds
    while not condition():
        for p in procs:
            if p.poll() is not None:
                raise AssertionError(f"a member exited ({p.returncode}) while waiting for {what}: {p.stderr.read()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def member(data: Path, name: str, *extra: str) -> subprocess.Popen:
    """A `consume --view counter --group g --member NAME` process on data directory ``data``."""
    args = ["consume", "--view", "counter", "--group", "g", "--member", name, "--batch-size", "5"]
    args += ["--poll-interval", "0.05", "--report-every", "0.5", "--heartbeat-interval", "0.2", *extra]
    return cli_process(data, *args)


def stop_all(*procs: subprocess.Popen) -> list[tuple[str, str]]:
    """SIGTERM every process still running; (stdout, stderr) of each."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    return [p.communicate(timeout=60) for p in procs]


class ExclusiveViews:
    """Opens partitions' counting views for in-process members and records every time a member opened a
    partition's view while another member still had it open (two members applying one partition)."""

    def __init__(self, data: Path):
        self.data = data
        self.lock = threading.Lock()
        self.open: dict[int, str] = {}
        self.violations: list[tuple[int, str, str]] = []
        self.opened = 0

    def factory(self, member_name: str) -> Callable[[int], CountingProjection]:
        def make(k: int) -> CountingProjection:
            with self.lock:
                if k in self.open:
                    self.violations.append((k, self.open[k], member_name))
                self.open[k] = member_name
                self.opened += 1
            return _TrackedView(partition_path(self.data, k), self, k)

        return make


class _TrackedView(CountingProjection):
    def __init__(self, path: Path, owner: ExclusiveViews, partition: int):
        super().__init__(path)
        self._owner, self._partition = owner, partition

    def close(self) -> None:
        with self._owner.lock:
            self._owner.open.pop(self._partition, None)
        super().close()


def stop_group(stop: threading.Event, threads: list[threading.Thread]) -> None:
    """Stop in-process group members and wait for their threads."""
    stop.set()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)


def assert_group_converged(group: list, plog: ListPartitionedLog, data: Path, views) -> None:
    """After a run: every event applied once, by one member at a time; the members' logs closed."""
    assert sum(m.applied for m in group) == sum(h + 1 for h in plog.heads())
    assert_exactly_once(plog, data)
    assert views.opened >= PARTITIONS and views.violations == []  # never two members on one partition
    for m in group:
        m.partitions.close()
