"""Behavioural contract every ``Log`` backend must meet.

A backend's test module subclasses :class:`LogContract` and provides a ``log`` fixture that
yields a fresh, empty log. The embedded SQLite backend runs it in tests/test_log_sqlite.py;
distributed backends run the very same tests against real servers.
"""

from __future__ import annotations

import threading
import time

import pytest

from ledger.canonical import GENESIS_HASH
from ledger.errors import ConcurrencyConflict, IdempotencyConflict, SchemaViolation, UnknownEventType
from ledger.events import NewEvent


def added(stream: str, mid: str, text: str, actor: str = "alice", **kw) -> NewEvent:
    """A valid memory.added event."""
    return NewEvent(stream, "memory.added", {"memory_id": mid, "text": text, "metadata": {}, "tags": []}, actor, **kw)


class LogContract:
    """Tests over the ``log`` fixture (a fresh, empty Log)."""

    def test_empty_log(self, log):
        assert log.head() == -1
        assert log.head_hash() == GENESIS_HASH
        assert list(log.read()) == []
        assert log.stream_version("c1") == 0

    def test_append_assigns_offsets_versions_and_chain(self, log):
        out = log.append([added("c1", "m1", "a"), added("c2", "m2", "b"), added("c1", "m3", "c")])
        assert [e.offset for e in out] == [0, 1, 2]
        assert [(e.stream, e.version) for e in out] == [("c1", 1), ("c2", 1), ("c1", 2)]
        assert out[0].prev_hash == GENESIS_HASH
        assert out[1].prev_hash == out[0].hash and out[2].prev_hash == out[1].hash
        assert log.head() == 2 and log.head_hash() == out[2].hash
        assert [e.event_id for e in log.read()] == [e.event_id for e in out]
        assert [e.ts_us for e in out] == sorted(e.ts_us for e in out)

    def test_read_ranges_are_inclusive(self, log):
        log.append([added("c", f"m{i}", f"t{i}") for i in range(10)])
        assert [e.offset for e in log.read(3, 5)] == [3, 4, 5]
        assert [e.offset for e in log.read(8)] == [8, 9]
        assert list(log.read(10)) == []

    def test_read_stream_and_refs(self, log):
        log.append([added("c1", "m1", "a"), added("c2", "m2", "b")])
        log.append([NewEvent("c1", "memory.updated", {"memory_id": "m1", "text": "a2"}, "bob")])
        assert [e.offset for e in log.read_stream("c1")] == [0, 2]
        assert [e.offset for e in log.read_stream("c1", start_version=2)] == [2]
        assert [e.offset for e in log.read_stream("c1", end_offset=1)] == [0]
        assert [e.offset for e in log.read_refs("m1")] == [0, 2]
        assert [e.offset for e in log.read_refs("m1", end_offset=1)] == [0]
        assert list(log.read_refs("nope")) == []

    def test_idempotent_retry_returns_stored_events(self, log):
        batch = [added("c", "m1", "x", event_id="e-1"), added("c", "m2", "y", event_id="e-2")]
        first = log.append(batch)
        again = log.append([added("c", "m1", "x", event_id="e-1"), added("c", "m2", "y", event_id="e-2")])
        assert [e.offset for e in again] == [e.offset for e in first]
        assert log.head() == 1

    def test_reused_event_id_with_other_content_is_refused(self, log):
        log.append([added("c", "m1", "x", event_id="e-1")])
        with pytest.raises(IdempotencyConflict):
            log.append([added("c", "m1", "DIFFERENT", event_id="e-1")])
        with pytest.raises(IdempotencyConflict):
            log.append([added("c", "m1", "x", event_id="e-1"), added("c", "m9", "new", event_id="e-9")])
        assert log.head() == 0

    def test_expected_version_conflict_writes_nothing(self, log):
        log.append([added("c", "m1", "x")], {"c": 0})
        with pytest.raises(ConcurrencyConflict) as err:
            log.append([added("c", "m2", "y")], {"c": 0})
        assert err.value.expected == 0 and err.value.actual == 1
        assert "expected version 0" in str(err.value)
        log.append([added("c", "m2", "y")], {"c": 1})
        assert log.head() == 1

    def test_conflict_on_a_stream_outside_the_batch(self, log):
        log.append([added("a", "m1", "x")])
        with pytest.raises(ConcurrencyConflict):
            log.append([added("b", "m2", "y")], {"a": 0})
        assert log.head() == 0

    def test_schema_rejection_writes_nothing(self, log):
        log.append([added("c", "m1", "ok")])
        bad = [added("c", "m2", "fine"), NewEvent("c", "memory.added", {"memory_id": "m3"}, "alice")]
        with pytest.raises(SchemaViolation) as err:
            log.append(bad)
        assert "memory.added" in str(err.value) and err.value.index == 1
        with pytest.raises(UnknownEventType):
            log.append([NewEvent("c", "no.such_type", {}, "alice")])
        with pytest.raises(SchemaViolation):
            log.append([NewEvent("c", "memory.added", {"memory_id": "m", "text": "t", "extra": 1}, "alice")])
        with pytest.raises(SchemaViolation):
            log.append([NewEvent("", "memory.added", {"memory_id": "m", "text": "t"}, "alice")])
        assert log.head() == 0 and log.stream_version("c") == 1

    def test_old_schema_version_is_accepted_and_stored_as_is(self, log):
        out = log.append(
            [NewEvent("c", "memory.added", {"memory_id": "m1", "content": "legacy"}, "a", schema_version=1)]
        )
        stored = list(log.read())[0]
        assert stored.schema_version == 1 and stored.payload == {"memory_id": "m1", "content": "legacy"}
        assert out[0].hash == stored.hash

    def test_offset_at_time(self, log):
        first = log.append([added("c", "m1", "x")])[0]
        time.sleep(0.01)
        second = log.append([added("c", "m2", "y")])[0]
        assert log.offset_at(first.ts_us - 1) == -1
        assert log.offset_at(first.ts_us) == 0
        assert log.offset_at(second.ts_us - 1) == 0
        assert log.offset_at(second.ts_us + 10_000_000) == 1

    def test_get_by_id(self, log):
        log.append([added("c", "m1", "x", event_id="abc")])
        assert log.get_by_id("abc").offset == 0
        assert log.get_by_id("nope") is None

    def test_catch_up_subscription_sees_old_and_new_events(self, log):
        log.append([added("c", f"m{i}", "x") for i in range(3)])
        stop = threading.Event()
        seen: list[int] = []

        def consume():
            for ev in log.subscribe(1, poll_interval=0.01, stop=stop):
                seen.append(ev.offset)
                if len(seen) == 4:
                    stop.set()

        t = threading.Thread(target=consume)
        t.start()
        time.sleep(0.1)
        log.append([added("c", "m3", "x"), added("c", "m4", "y")])
        t.join(timeout=10)
        stop.set()
        assert seen == [1, 2, 3, 4]

    def test_concurrent_writers_never_fork_the_chain(self, log):
        errors: list[BaseException] = []

        def writer(n: int):
            try:
                for i in range(20):
                    log.append([added(f"c{n}", f"m{n}-{i}", "x"), added(f"c{n}", f"m{n}-{i}b", "y")])
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        events = list(log.read())
        assert [e.offset for e in events] == list(range(160))
        for a, b in zip(events, events[1:], strict=False):
            assert b.prev_hash == a.hash
        if hasattr(log, "verify"):
            assert log.verify().ok
