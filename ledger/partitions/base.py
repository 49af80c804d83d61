"""The ``PartitionedLog`` port: N partitions, each a full ``Log`` (see ``ledger.log``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

from ledger.events import Event, NewEvent
from ledger.log import Log

# A point of a partitioned ledger: the offset each partition had reached (-1: empty), by index.
PartitionVector = tuple[int, ...]


@runtime_checkable
class PartitionedLog(Protocol):
    """N logs that together hold one ledger; a stream (cube) lives in exactly one partition.

    Each partition is a complete ``Log`` (gap-free offsets from 0, its own hash chain, its own
    head), so every single-log tool (verify, subscribe, views, checkpoints) works per partition,
    and writers to different partitions never wait for each other.
    """

    @property
    def count(self) -> int:
        """Number of partitions (fixed when the ledger is created)."""
        ...

    def partition(self, index: int) -> Log:
        """The log of partition ``index`` (0 <= index < count)."""
        ...

    def partition_of(self, stream: str) -> int:
        """The partition ``stream`` lives in (``ledger.partitions.routing.partition_of``)."""
        ...

    def append(self, events: Sequence[NewEvent], expected_versions: Mapping[str, int] | None = None) -> list[Event]:
        """Append a batch to the one partition its streams live in (a batch spanning two
        partitions is refused with ``InvalidRequest`` and writes nothing)."""
        ...

    def heads(self) -> PartitionVector:
        """Every partition's head offset, by index."""
        ...

    def vector_at(self, ts_us: int) -> PartitionVector:
        """The as-of-time cut: each partition's ``offset_at(ts_us)``, by index (see ``ledger.partitions.hlc``)."""
        ...

    def close(self) -> None:
        """Close every partition."""
        ...
