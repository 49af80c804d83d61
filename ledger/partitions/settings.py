"""The partition count of a ledger: ``[log] partitions = N`` in ``memledger.toml`` (default 1)."""

from __future__ import annotations

from ledger.config import Config
from ledger.errors import InvalidRequest

MAX_PARTITIONS = 256


class PartitionCountMismatch(InvalidRequest):
    """The stored ledger has another partition count than the one asked for (routing would change)."""

    def __init__(self, where: str, stored: int, wanted: int):
        super().__init__(
            f"{where} holds a ledger of {stored} partition{'s' if stored != 1 else ''}, but {wanted} "
            f"{'were' if wanted != 1 else 'was'} configured ([log] partitions); a ledger keeps the count it was "
            "created with (streams are routed by it)"
        )
        self.stored = stored
        self.wanted = wanted


def check_count(count: object) -> int:
    """``count`` once it is a valid partition count (an int from 1 to ``MAX_PARTITIONS``)."""
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_PARTITIONS:
        raise InvalidRequest(f"[log] partitions must be a whole number from 1 to {MAX_PARTITIONS}, not {count!r}")
    return count


def partition_count(config: Config) -> int:
    """The configured ledger partition count (``[log] partitions``, default 1), validated.

    On Kafka, ``[log] partitions`` has always been the data topic's partition count, so a Kafka
    ledger's count is ``[log] ledger_partitions`` (default 1: one sequencer topic orders every
    event; see ``ledger.partitions.kafka_partitions``)."""
    key = "ledger_partitions" if config.log_backend == "kafka" else "partitions"
    count = config.section("log").get(key, 1)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_PARTITIONS:
        raise InvalidRequest(f"[log] {key} must be a whole number from 1 to {MAX_PARTITIONS}, not {count!r}")
    return count
