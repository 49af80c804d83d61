"""Crash safety (kill -9 mid-batch) and several processes writing one data directory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ledger.backends.sqlite_log import SqliteLog

ROOT = Path(__file__).resolve().parents[1]

BIG_BATCH_WRITER = """
import sys
from ledger.backends.sqlite_log import SqliteLog
from ledger.events import NewEvent
log = SqliteLog(sys.argv[1])
n = int(sys.argv[2])
batch = [NewEvent("big", "memory.added", {"memory_id": f"b{i}", "text": "x" * 200}, "w") for i in range(n)]
print("appending", flush=True)
log.append(batch)
print("done", flush=True)
"""

WRITER = """
import sys
from ledger.backends.sqlite_log import SqliteLog
from ledger.events import NewEvent
log = SqliteLog(sys.argv[1])
who = sys.argv[2]
for i in range(int(sys.argv[3])):
    log.append([NewEvent(f"c-{who}", "memory.added", {"memory_id": f"{who}-{i}-{j}", "text": "t"}, who)
                for j in range(5)])
"""


def _spawn(code: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, env=env, text=True)


def test_kill_9_mid_batch_leaves_all_or_nothing(tmp_path):
    path = tmp_path / "log.sqlite"
    log = SqliteLog(path)
    log.append([NewEventFactory.one(i) for i in range(3)])
    log.close()
    outcomes = set()
    for delay in (0.3, 0.8, 1.5):
        before = SqliteLog(path)
        head_before = before.head()
        before.close()
        n = 100_000
        proc = _spawn(BIG_BATCH_WRITER, str(path), str(n))
        assert proc.stdout.readline().strip() == "appending"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        after = SqliteLog(path)
        added = after.head() - head_before
        assert added in (0, n), f"partial batch visible: {added} of {n} events"
        outcomes.add(added)
        result = after.verify()
        assert result.ok, result.problem
        # the ledger keeps working after the crash
        after.append([NewEventFactory.one(10_000 + after.head())])
        assert after.verify().ok
        after.close()
    assert 0 in outcomes, "no kill landed inside the batch's transaction"


def test_several_processes_share_one_log_without_forking_the_chain(tmp_path):
    path = tmp_path / "log.sqlite"
    SqliteLog(path).close()
    procs = [_spawn(WRITER, str(path), f"p{k}", "40") for k in range(3)]
    for p in procs:
        assert p.wait(timeout=120) == 0
    log = SqliteLog(path)
    assert log.head() == 3 * 40 * 5 - 1
    assert log.verify().ok
    for k in range(3):
        assert log.stream_version(f"c-p{k}") == 200
    log.close()


class NewEventFactory:
    @staticmethod
    def one(i: int):
        from ledger.events import NewEvent

        return NewEvent("small", "memory.added", {"memory_id": f"s{i}", "text": "small"}, "w")
