"""Reading a partitioned ledger as of a point: a ``PartitionVector`` (each partition's last offset).

A vector comes from ``PartitionedLog.vector_at(ts_us)`` (an as-of time), from ``heads()`` (now) or
from a global checkpoint (``ledger.partitions.global_checkpoint``: its partition sizes minus one).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from typing import NamedTuple

from ledger.errors import InvalidRequest
from ledger.events import Event
from ledger.partitions.base import PartitionedLog, PartitionVector


class PartitionEvent(NamedTuple):
    """An event with the partition that holds it (its offset counts within that partition)."""

    partition: int
    event: Event


def check_vector(plog: PartitionedLog, vector: PartitionVector) -> PartitionVector:
    """``vector`` as a tuple once it names one reached offset (or -1) per partition; ``InvalidRequest`` otherwise."""
    vec = tuple(vector)
    if len(vec) != plog.count:
        raise InvalidRequest(f"a partition vector has one offset per partition ({plog.count}), not {len(vec)}")
    heads = plog.heads()
    for k, (want, head) in enumerate(zip(vec, heads, strict=True)):
        if isinstance(want, bool) or not isinstance(want, int) or not -1 <= want <= head:
            raise InvalidRequest(f"partition {k}: offset {want!r} is not between -1 and its head {head}")
    return vec


def read_at(plog: PartitionedLog, vector: PartitionVector) -> Iterator[PartitionEvent]:
    """Every event at or below ``vector``, merged across partitions by (time, partition, offset): an
    order in which each event follows everything its writer had seen (hybrid-clock stamps)."""
    vec = check_vector(plog, vector)
    streams = [_tagged(plog, k, end) for k, end in enumerate(vec) if end >= 0]
    return heapq.merge(*streams, key=lambda pe: (pe.event.ts_us, pe.partition, pe.event.offset))


def _tagged(plog: PartitionedLog, k: int, end: int) -> Iterator[PartitionEvent]:
    for e in plog.partition(k).read(0, end):
        yield PartitionEvent(k, e)


def read_stream_at(plog: PartitionedLog, stream: str, vector: PartitionVector) -> Iterator[Event]:
    """The events of one stream (cube) at or below ``vector`` (read from the stream's one partition)."""
    vec = check_vector(plog, vector)
    k = plog.partition_of(stream)
    if vec[k] < 0:
        return iter(())
    return plog.partition(k).read_stream(stream, 1, vec[k])
