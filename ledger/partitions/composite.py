"""A ``PartitionedLog`` over N backend logs, whatever their backend (SQLite files, PostgreSQL schemas).

Each partition stays a complete ``Log``: gap-free offsets from 0, its own hash chain and head,
``verify`` and ``subscribe``. This class only routes: a batch goes to the one partition its
streams live in (``ledger.partitions.routing``), and a batch whose streams (or expected versions)
fall in two partitions is refused before anything is written. One ``HybridClock`` stamps every
batch of the handle (``ledger.partitions.hlc``), so as-of-time cuts across partitions are causal.

``partition(k)`` is the partition's log for reading, verifying, subscribing and checkpointing;
appending through it skips the routing check, so writers use ``append`` here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ledger.errors import InvalidRequest
from ledger.events import Event, NewEvent
from ledger.log import Log
from ledger.partitions.base import PartitionVector
from ledger.partitions.clocked_log import ClockedLog
from ledger.partitions.hlc import HybridClock
from ledger.partitions.routing import partition_of


class CompositePartitionedLog:
    """N logs that together hold one ledger (a ``PartitionedLog``)."""

    def __init__(self, logs: Sequence[Log], clock: HybridClock | None = None):
        if not logs:
            raise InvalidRequest("a partitioned ledger needs at least one partition")
        self.clock = clock or HybridClock()
        self._parts = [ClockedLog(log, self.clock) for log in logs]

    @property
    def count(self) -> int:
        """Number of partitions."""
        return len(self._parts)

    def partition(self, index: int) -> Log:
        """The log of partition ``index``."""
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(self._parts):
            raise InvalidRequest(f"partition {index!r} does not exist (the ledger has {len(self._parts)})")
        return self._parts[index]

    def partitions(self) -> list[Log]:
        """Every partition's log, by index."""
        return list(self._parts)

    def partition_of(self, stream: str) -> int:
        """The partition ``stream`` lives in."""
        return partition_of(stream, len(self._parts))

    def route(self, events: Sequence[NewEvent], expected_versions: Mapping[str, int] | None = None) -> int:
        """The one partition a batch belongs to; ``InvalidRequest`` when its streams span two."""
        homes: dict[int, str] = {}
        streams = [getattr(ev, "stream", None) for ev in events] + list(expected_versions or ())
        for stream in streams:
            if isinstance(stream, str):  # malformed events are the partition's schema check to refuse
                homes.setdefault(self.partition_of(stream), stream)
        if len(homes) > 1:
            where = ", ".join(f"{s!r} in partition {p}" for p, s in sorted(homes.items()))
            raise InvalidRequest(f"a batch must stay within one partition, but its streams span several: {where}")
        return next(iter(homes), 0)

    def append(self, events: Sequence[NewEvent], expected_versions: Mapping[str, int] | None = None) -> list[Event]:
        """Append a batch to the partition of its streams (all or none; see ``Log.append``)."""
        if not events:
            return []
        return self._parts[self.route(events, expected_versions)].append(events, expected_versions)

    def heads(self) -> PartitionVector:
        """Every partition's head offset, by index."""
        return tuple(p.head() for p in self._parts)

    def vector_at(self, ts_us: int) -> PartitionVector:
        """The as-of-time cut: each partition's last offset stamped at or before ``ts_us`` (-1: none)."""
        return tuple(p.offset_at(ts_us) for p in self._parts)

    def close(self) -> None:
        """Close every partition."""
        for p in self._parts:
            p.close()
