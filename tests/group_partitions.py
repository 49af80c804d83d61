"""Test helper: a ``PartitionedLog`` made of N independent logs (a PostgreSQL schema or a SQLite file each).

Only for the consumer-group tests and bench while the real partitioned backends are built
elsewhere; at merge the real composite replaces it (``[consumers.group] partitioned_log``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from ledger.backends.postgres_log import PostgresLog
from ledger.backends.sqlite_log import SqliteLog
from ledger.errors import InvalidRequest
from ledger.events import Event, NewEvent
from ledger.log import Log
from ledger.partitions.base import PartitionVector
from ledger.partitions.routing import partition_of


class ListPartitionedLog:
    """N logs as one partitioned log: streams routed by ``ledger.partitions.routing``."""

    def __init__(self, logs: Sequence[Log]):
        if not logs:
            raise InvalidRequest("a partitioned log needs at least one partition")
        self.logs = list(logs)

    @property
    def count(self) -> int:
        return len(self.logs)

    def partition(self, index: int) -> Log:
        return self.logs[index]

    def partition_of(self, stream: str) -> int:
        return partition_of(stream, self.count)

    def append(self, events: Sequence[NewEvent], expected_versions: Mapping[str, int] | None = None) -> list[Event]:
        targets = {self.partition_of(e.stream) for e in events}
        if len(targets) > 1:
            raise InvalidRequest(f"a batch spans partitions {sorted(targets)}")
        if not targets:
            return []
        return self.logs[targets.pop()].append(events, expected_versions)

    def heads(self) -> PartitionVector:
        return tuple(log.head() for log in self.logs)

    def close(self) -> None:
        for log in self.logs:
            log.close()

    def drop(self) -> None:
        """Drop every partition's schema (PostgreSQL partitions only)."""
        for log in self.logs:
            if isinstance(log, PostgresLog):
                log.drop()


def postgres_partitions(dsn: str, base: str, count: int) -> ListPartitionedLog:
    """``count`` PostgreSQL logs in schemas ``<base>_p0 .. <base>_p<count-1>``."""
    return ListPartitionedLog([PostgresLog(dsn, f"{base}_p{k}") for k in range(count)])


def from_config(config, ledger) -> ListPartitionedLog:
    """``[consumers.group] partitioned_log = "tests.group_partitions:from_config"``: ``partitions`` logs
    next to the ledger's PostgreSQL ``[log]`` schema."""
    log = config.section("log")
    count = int(config.section("consumers")["group"]["partitions"])
    return postgres_partitions(log["dsn"], log["schema"], count)


def sqlite_partitions(directory: Path, count: int) -> ListPartitionedLog:
    """``count`` SQLite logs ``<directory>/p0.sqlite ..`` (the embedded tier's partitions)."""
    directory.mkdir(parents=True, exist_ok=True)
    return ListPartitionedLog([SqliteLog(directory / f"p{k}.sqlite") for k in range(count)])


def sqlite_from_config(config, ledger) -> ListPartitionedLog:
    """``[consumers.group] partitioned_log = "tests.group_partitions:sqlite_from_config"``: ``partitions``
    SQLite logs in ``<data>/partitions/``."""
    count = int(config.section("consumers")["group"]["partitions"])
    return sqlite_partitions(config.data_dir / "partitions", count)
