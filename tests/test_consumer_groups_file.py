"""Consumer groups on one machine: ``flock`` membership and partition locks, SQLite partitions.

The file coordinator's own rules (one holder per partition lock, a dead member's file removed, a
frozen member not counted), members in threads converging exactly once per partition, member
processes (kill -9 of one mid-catch-up, the other finishing its partitions exactly once), and
``consume --group`` end to end and what it refuses.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from consumers.file_group_coordinator import FileGroupCoordinator
from consumers.group_member import GroupMember
from ledger.errors import InvalidRequest
from ledger.partitions.sqlite_partitions import open_sqlite_partitions
from tests.cli_helpers import ROOT, run
from tests.dist_counting import CountingProjection, partition_path
from tests.group_partitions import sqlite_partitions
from tests.group_scenarios import (
    PARTITIONS,
    ExclusiveViews,
    assert_exactly_once,
    assert_group_converged,
    checkpoints,
    member,
    stop_all,
    stop_group,
    wait_for,
    write,
)


def test_a_partition_lock_has_one_holder_and_leave_frees_it(tmp_path):
    a = FileGroupCoordinator(tmp_path, "g", "v", "a")
    b = FileGroupCoordinator(tmp_path, "g", "v", "b")
    try:
        assert a.heartbeat() == ["a"] and b.heartbeat() == ["a", "b"]
        assert a.acquire(3) and not b.acquire(3) and b.acquire(4)
        assert FileGroupCoordinator(tmp_path, "h", "v", "c").acquire(3)  # another group's lock
        assert a.lock_holders() == {3: "a", 4: "b"} == b.lock_holders()
        a.leave()
        assert b.heartbeat() == ["b"] and b.acquire(3) and b.held() == {3, 4}
    finally:
        a.leave()
        b.leave()


def test_names_that_are_not_file_names_are_refused(tmp_path):
    with pytest.raises(InvalidRequest):
        FileGroupCoordinator(tmp_path, "g", "v", "../a")
    with pytest.raises(InvalidRequest):
        FileGroupCoordinator(tmp_path, "g/h", "v", "a")


def test_a_dead_members_file_is_removed_and_a_frozen_member_is_not_live(tmp_path):
    script = (
        "import sys, time\n"
        "from consumers.file_group_coordinator import FileGroupCoordinator\n"
        f"c = FileGroupCoordinator({str(tmp_path)!r}, 'g', 'v', 'dead')\n"
        "c.heartbeat(); assert c.acquire(2)\n"
        "print('ready', flush=True); time.sleep(600)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE
    )
    a = FileGroupCoordinator(tmp_path, "g", "v", "a", heartbeat_timeout=60)
    frozen = FileGroupCoordinator(tmp_path, "g", "v", "frozen", heartbeat_timeout=60)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        assert frozen.heartbeat() == ["dead", "frozen"]
        assert a.heartbeat() == ["a", "dead", "frozen"] and not a.acquire(2)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert a.heartbeat() == ["a", "frozen"] and a.acquire(2)  # long before the 60 s timeout
        assert not (a.members_dir / "dead.member").exists()
        old = time.time() - 120
        os.utime(frozen.members_dir / "frozen.member", (old, old))  # as if it stopped beating 2 min ago
        assert a.heartbeat() == ["a"]
        assert (a.members_dir / "frozen.member").exists()  # still held: it is alive, only silent
        assert frozen.heartbeat() == ["a", "frozen"]  # and it rejoins when it beats again
    finally:
        if proc.poll() is None:
            proc.kill()
        a.leave()
        frozen.leave()


@pytest.mark.parametrize("members", [1, 2, 4])
def test_members_in_threads_converge_exactly_once_per_partition(tmp_path, members):
    plog = sqlite_partitions(tmp_path / "partitions", PARTITIONS)
    write(plog, 30)
    for k in range(PARTITIONS):
        CountingProjection(partition_path(tmp_path, k)).close()
    stop = threading.Event()
    views = ExclusiveViews(tmp_path)
    group = [
        GroupMember(
            sqlite_partitions(tmp_path / "partitions", PARTITIONS),
            views.factory(f"m{i}"),
            FileGroupCoordinator(tmp_path, "g", "counter", f"m{i}", heartbeat_timeout=30),
            "g",
            "counter",
            batch_size=7,
            poll_interval=0.05,
            heartbeat_interval=0.2,
        )
        for i in range(members)
    ]
    threads = [threading.Thread(target=m.run, args=(stop,)) for m in group]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: checkpoints(tmp_path) == list(plog.heads()), "the first catch-up")
        write(plog, 20, tag="b")
        wait_for(lambda: checkpoints(tmp_path) == list(plog.heads()), "the second catch-up")
        wait_for(lambda: all(len(m.consumers) == PARTITIONS // members for m in group), "an even split")
    finally:
        stop_group(stop, threads)
    assert_group_converged(group, plog, tmp_path, views)
    plog.close()


def _data(tmp_path: Path, delay: float) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    (data / "memledger.toml").write_text(
        f"[log]\npartitions = {PARTITIONS}\n\n"  # the data directory's own partitions: no hook needed
        f'[consumers.views.counter]\nfactory = "tests.dist_counting:build"\ndelay = {delay}\n\n'
        '[consumers.group]\ncoordinator = "file"\n'
    )
    for k in range(PARTITIONS):
        CountingProjection(partition_path(data, k)).close()
    return data


@pytest.mark.slow
def test_kill_9_of_a_member_process_its_partitions_are_finished_exactly_once(tmp_path):
    data = _data(tmp_path, delay=0.05)
    plog = open_sqlite_partitions(data, PARTITIONS)
    write(plog, 100)
    a, b = member(data, "a", "--heartbeat-timeout", "60"), member(data, "b", "--heartbeat-timeout", "60")
    try:
        wait_for(lambda: min(checkpoints(data)[:4]) >= 10 and min(checkpoints(data)[4:]) >= 0, "both", procs=(a, b))
        a.send_signal(signal.SIGKILL)
        a.wait(10)
        assert max(checkpoints(data)[:4]) < 99, "a finished before it was killed"
        wait_for(lambda: checkpoints(data) == list(plog.heads()), "b finishing a's partitions", procs=(b,))
    finally:
        (_, err_b), _ = stop_all(b, a)
    assert b.returncode == 0, err_b[-2000:]
    assert_exactly_once(plog, data)
    plog.close()


def test_consume_group_once_applies_every_partition_and_reports_per_partition_checkpoints(tmp_path, capsys):
    data = _data(tmp_path, delay=0.0)
    plog = open_sqlite_partitions(data, PARTITIONS)
    write(plog, 12)
    args = ["--data", str(data), "consume", "--view", "counter", "--group", "g", "--member", "solo"]
    code, out, err = run(capsys, *args, "--once", "--report-every", "0", "--batch-size", "5")
    assert code == 0, err
    last = json.loads(out.strip().splitlines()[-1])
    assert last["group"] == "g" and last["member"] == "solo" and last["members"] == 1
    assert last["held"] == list(range(PARTITIONS)) and last["lag_events"] == 0
    assert last["checkpoints"] == {str(k): h for k, h in enumerate(plog.heads())}
    assert_exactly_once(plog, data)
    assert not list((data / "consumers" / "groups" / "g" / "counter" / "members").glob("*.member"))  # it left
    code, out, err = run(capsys, "--data", str(data), "lag", "--view", "counter", "--group", "g", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["lag_events"] == 0 and [p["holder"] for p in report["partitions"]] == [None] * PARTITIONS
    write(plog, 3, tag="b")
    code, out, _ = run(capsys, "--data", str(data), "lag", "--view", "counter", "--group", "g", "--json")
    assert [p["lag_events"] for p in json.loads(out)["partitions"]] == [3] * PARTITIONS
    plog.close()


def test_consume_group_refuses_what_it_cannot_do_exactly(tmp_path, capsys):
    data = _data(tmp_path, delay=0.0)
    base = ["--data", str(data), "consume", "--group", "g"]
    code, _, err = run(capsys, *base, "--view", "counter", "--rebuild")
    assert code == 2 and "--rebuild" in err
    code, _, err = run(capsys, *base, "--view", "keyword", "--once")
    assert code == 2 and "one checkpoint for the whole log" in err
    code, _, err = run(capsys, *base, "--view", "counter", "--heartbeat-timeout", "0.5", "--heartbeat-interval", "1")
    assert code == 2 and "--heartbeat-timeout" in err
    # a ledger of one partition cannot be consumed by a group
    single = tmp_path / "single"
    single.mkdir()
    (single / "memledger.toml").write_text('[consumers.views.counter]\nfactory = "tests.dist_counting:build"\n')
    code, _, err = run(capsys, "--data", str(single), "consume", "--group", "g", "--view", "counter", "--once")
    assert code == 2 and "partitioned log" in err
    # nor one opened with another count than it was created with
    (data / "memledger.toml").write_text('[consumers.views.counter]\nfactory = "tests.dist_counting:build"\n')
    code, _, err = run(capsys, *base, "--view", "counter", "--once")
    assert code == 2 and "holds a ledger of 8 partitions, but 1 was configured" in err
