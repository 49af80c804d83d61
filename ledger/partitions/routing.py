"""Which partition a stream (cube) lives in: one stable function shared by every backend."""

from __future__ import annotations

import zlib

SYSTEM_STREAM = "_system"


def crc_partition(stream: str, partitions: int) -> int:
    """CRC-32 of the UTF-8 name of ``stream`` modulo ``partitions``: the one hash every backend routes
    with (the Kafka log's data topic uses it as it is, ``_system`` included)."""
    return zlib.crc32(stream.encode()) % partitions


def partition_of(stream: str, partitions: int) -> int:
    """The partition of ``stream``: CRC-32 of its UTF-8 name modulo ``partitions``.

    The ``_system`` stream (principals, holds, governance) always lives in partition 0, so
    ledger-wide records have one home. The function never changes for a given ``partitions``:
    a ledger records its partition count and refuses to open with another one.
    """
    if partitions < 1:
        raise ValueError(f"a ledger has at least one partition, not {partitions}")
    if partitions == 1 or stream == SYSTEM_STREAM:
        return 0
    return crc_partition(stream, partitions)
