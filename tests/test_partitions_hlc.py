"""Hybrid logical clock stamps: strictly increasing per partition, above everything the handle has
seen, the wall clock when it is ahead; and the cut property: if a handle wrote or read e1 before it
wrote e2 (any partitions), the as-of-time cut at e2's stamp contains e1."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.backends.sqlite_log import SqliteLog
from ledger.events import Event
from ledger.partitions.composite import CompositePartitionedLog
from ledger.partitions.hlc import HybridClock
from tests.log_contract import added

N = 4


class FakeWall:
    """A wall clock the test sets (it may stand still or go back, as a badly synchronised host's)."""

    def __init__(self, now: int = 1_000_000):
        self.now = now

    def __call__(self) -> int:
        return self.now


def _open(root: Path, wall: FakeWall) -> CompositePartitionedLog:
    logs = [SqliteLog(root / f"p{k}.sqlite", synchronous="OFF") for k in range(N)]
    return CompositePartitionedLog(logs, HybridClock(wall))


def _stream_in(plog: CompositePartitionedLog, k: int) -> str:
    return next(s for s in (f"c{i}" for i in range(1000)) if plog.partition_of(s) == k)


def test_the_stamp_is_the_wall_clock_when_that_is_ahead():
    wall = FakeWall(5_000)
    clock = HybridClock(wall)
    assert clock.stamp(100) == 5_000
    wall.now = 9_000
    assert clock.stamp(5_000) == 9_000


def test_the_stamp_passes_a_partition_or_a_seen_time_that_is_ahead_of_the_wall():
    clock = HybridClock(FakeWall(5_000))
    assert clock.stamp(7_000) == 7_001  # the partition's last batch is ahead of this host
    assert clock.stamp(0) == 7_002  # ... and the handle remembers it in every partition
    clock.observe(10_000)
    assert clock.stamp(0) == 10_001
    clock.observe(3)  # older times change nothing
    assert clock.seen == 10_001


def test_a_handle_that_read_an_event_stamps_later_even_with_its_clock_behind(tmp_path):
    fast, slow = FakeWall(9_000_000), FakeWall(1_000_000)
    a, b = _open(tmp_path, fast), _open(tmp_path, slow)
    e1 = a.append([added(_stream_in(a, 1), "m1", "x")])[0]
    list(b.partition(1).read())  # b sees e1 ...
    e2 = b.append([added(_stream_in(b, 3), "m2", "y")])[0]  # ... then writes elsewhere
    assert e2.ts_us > e1.ts_us
    assert e1.offset <= b.vector_at(e2.ts_us)[1]
    a.close()
    b.close()


def test_events_of_one_batch_share_their_stamp(tmp_path):
    plog = _open(tmp_path, FakeWall())
    out = plog.append([added("c", f"m{i}", "x") for i in range(5)])
    assert len({e.ts_us for e in out}) == 1
    plog.close()


op = st.one_of(
    st.tuples(st.just("write"), st.integers(0, N - 1), st.integers(1, 3)),
    st.tuples(st.just("read"), st.integers(0, N - 1), st.just(0)),
    st.tuples(st.just("wall"), st.integers(-2_000, 2_000), st.just(0)),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(op, min_size=1, max_size=30), other=st.lists(st.integers(0, N - 1), max_size=6))
def test_the_cut_at_an_event_holds_everything_its_writer_had_seen(ops, other):
    with tempfile.TemporaryDirectory() as d:
        wall = FakeWall()
        plog = _open(Path(d), wall)
        # another handle, whose clock runs far ahead, wrote some events first
        ahead = _open(Path(d), FakeWall(wall.now + 50_000))
        for k in other:
            ahead.append([added(_stream_in(ahead, k), "o", "x")])
        ahead.close()
        seen: list[tuple[int, Event]] = []
        last_ts = {k: [e.ts_us for e in plog.partition(k).inner.read()][-1:] for k in range(N)}
        for kind, k, n in ops:
            if kind == "wall":
                wall.now += k
            elif kind == "read":
                seen.extend((k, e) for e in plog.partition(k).read())
            else:
                out = plog.append([added(_stream_in(plog, k), f"m{i}", "x") for i in range(n)])
                ts = out[0].ts_us
                assert all(t < ts for t in last_ts[k])  # strictly later than the partition's last batch
                last_ts[k] = [ts]
                cut = plog.vector_at(ts)
                for p, e in seen:
                    assert e.offset <= cut[p], (p, e.offset, cut)
                assert all(e.offset <= cut[k] for e in out)
                seen.extend((k, e) for e in out)
        plog.close()
