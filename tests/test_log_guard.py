"""``LogGuard`` on an embedded log: what a data directory saw is checked against the log (issue 16 defect 4)."""

from __future__ import annotations

import orjson
import pytest

from ledger.backends.sqlite_log import SqliteLog
from ledger.log_guard import SEEN_NAME, LogGuard, LogReset, SeenPoint, check_point, view_ahead
from tests.log_contract import added


@pytest.fixture
def log(tmp_path):
    lg = SqliteLog(tmp_path / "log.sqlite")
    yield lg
    lg.close()


def test_a_guard_with_nothing_seen_accepts_any_log(tmp_path, log):
    guard = LogGuard(tmp_path)
    guard.check(log)
    guard.flush()  # nothing seen: nothing written
    assert not (tmp_path / SEEN_NAME).exists()


def test_seen_points_are_persisted_and_checked(tmp_path, log):
    out = log.append([added("c", f"m{i}", "x") for i in range(3)])
    guard = LogGuard(tmp_path, persist_every=0)
    guard.saw(out[-1].offset, out[-1].hash)
    assert orjson.loads((tmp_path / SEEN_NAME).read_bytes()) == {"offset": 2, "hash": out[-1].hash}
    guard.saw(1, out[1].hash)  # an older point never moves the watermark back
    assert orjson.loads((tmp_path / SEEN_NAME).read_bytes())["offset"] == 2
    LogGuard(tmp_path).check(log)  # a new process: the log still holds what was seen


def test_a_shorter_or_different_log_is_a_reset(tmp_path, log):
    (tmp_path / SEEN_NAME).write_bytes(orjson.dumps({"offset": 5, "hash": "ab" * 32}))
    with pytest.raises(LogReset, match="ends at offset -1 .* saw offset 5"):
        LogGuard(tmp_path).check(log)
    log.append([added("c", f"m{i}", "x") for i in range(7)])
    with pytest.raises(LogReset, match="was replaced"):
        LogGuard(tmp_path).before_append(log)


def test_the_newest_signed_checkpoint_is_a_seen_point(tmp_path, log):
    out = log.append([added("c", f"m{i}", "x") for i in range(2)])
    cps = tmp_path / "checkpoints.jsonl"
    cps.write_bytes(b"not json\n" + orjson.dumps({"seq": 1, "log_size": 2, "head_hash": out[-1].hash}) + b"\n\n")
    guard = LogGuard(tmp_path, cps)
    assert [p.source for p in guard.points()] == ["signed checkpoint #1"]
    guard.check(log)
    cps.write_bytes(orjson.dumps({"seq": 2, "log_size": 9, "head_hash": "x"}) + b"\n")
    with pytest.raises(LogReset, match="signed checkpoint #2 saw offset 8"):
        guard.check(log)
    cps.write_bytes(orjson.dumps({"seq": 3, "log_size": 0}) + b"\n")
    assert guard.points() == []


def test_an_unreadable_watermark_is_ignored_and_rechecks_are_throttled(tmp_path, log):
    (tmp_path / SEEN_NAME).write_bytes(b"{broken")
    guard = LogGuard(tmp_path, recheck_every=3600)
    assert guard.points() == []
    guard.before_append(log)
    (tmp_path / SEEN_NAME).write_bytes(orjson.dumps({"offset": 99, "hash": "h"}))
    guard.before_append(log)  # checked less than recheck_every ago: no new check yet
    with pytest.raises(LogReset):
        guard.check(log)


def test_points_and_views_ahead(log):
    out = log.append([added("c", "m", "x")])
    check_point(log, SeenPoint(0, out[0].hash, "me"))
    check_point(log, SeenPoint(0, "", "an offset-only point"))
    with pytest.raises(LogReset, match="view 'v' is at offset 4"):
        view_ahead(log, 4, "v")
    view_ahead(log, 0, "v")
