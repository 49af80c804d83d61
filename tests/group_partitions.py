"""Test helper: a ``CompositePartitionedLog`` made of N logs the tests name themselves (a PostgreSQL
schema or a SQLite file each), and ``[consumers.group] partitioned_log`` hooks that open them; a
data directory with ``[log] partitions = N`` needs no hook (``ledger.factory.open_partitioned_log``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ledger.backends.postgres_log import PostgresLog
from ledger.backends.sqlite_log import SqliteLog
from ledger.log import Log
from ledger.partitions.composite import CompositePartitionedLog


class ListPartitionedLog(CompositePartitionedLog):
    """N logs as one partitioned log (the real composite), keeping the logs for the tests to drop."""

    def __init__(self, logs: Sequence[Log]):
        super().__init__(logs)
        self.logs = list(logs)

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
