"""Embedded partitioned ledger: one SQLite file per partition in the data directory.

N=1 is today's single log, ``<data>/log.sqlite``, unchanged. N>1 keeps partition k in
``<data>/log.p<k>.sqlite``; each file records its index and the partition count in a one-row table
``ledger_partition`` (written once, on creation), so a file cannot be opened under another count or
index. A data directory whose events live under another count is refused (``PartitionCountMismatch``).
Every file has its own SQLite write lock, so writers to different partitions never wait for each other.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from ledger.backends.sqlite_log import SqliteLog
from ledger.partitions.composite import CompositePartitionedLog
from ledger.partitions.settings import PartitionCountMismatch, check_count
from ledger.schema_registry import SchemaRegistry

SINGLE_NAME = "log.sqlite"
_FILE = re.compile(r"^log\.p(\d+)\.sqlite$")
_META_DDL = (
    "CREATE TABLE IF NOT EXISTS ledger_partition("
    "id INTEGER PRIMARY KEY CHECK (id = 1), partition INTEGER NOT NULL, partitions INTEGER NOT NULL)"
)


def partition_path(data_dir: str | Path, index: int) -> Path:
    """The file of partition ``index`` of a ledger of more than one partition."""
    return Path(data_dir) / f"log.p{index}.sqlite"


def stored_partition_files(data_dir: str | Path) -> dict[int, Path]:
    """The partition files present in ``data_dir``, by index."""
    d = Path(data_dir)
    if not d.is_dir():
        return {}
    found = {}
    for p in d.iterdir():
        m = _FILE.match(p.name)
        if m:
            found[int(m.group(1))] = p
    return found


def _query(path: Path, sql: str) -> tuple | None:
    """The first row of a read-only query on an existing file (None when its table is missing)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=60.0)
    try:
        return conn.execute(sql).fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return None
        raise
    finally:
        conn.close()


def _recorded(path: Path) -> tuple[int, int] | None:
    row = _query(path, "SELECT partition, partitions FROM ledger_partition WHERE id = 1")
    return (int(row[0]), int(row[1])) if row else None


def _record(path: Path, index: int, count: int) -> tuple[int, int]:
    """Record (index, count) in a partition file unless it holds a record already; return the record."""
    conn = sqlite3.connect(path, timeout=60.0, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(_META_DDL)
        conn.execute(
            "INSERT OR IGNORE INTO ledger_partition(id, partition, partitions) VALUES (1, ?, ?)", (index, count)
        )
        row = conn.execute("SELECT partition, partitions FROM ledger_partition WHERE id = 1").fetchone()
        conn.execute("COMMIT")
    finally:
        conn.close()
    return int(row[0]), int(row[1])


def check_layout(data_dir: str | Path, count: int) -> None:
    """Refuse (``PartitionCountMismatch``) a data directory whose stored ledger has another partition count."""
    data_dir = Path(data_dir)
    found = stored_partition_files(data_dir)
    if count == 1:
        if found:
            rec = _recorded(found[min(found)])
            raise PartitionCountMismatch(str(data_dir), rec[1] if rec else len(found), 1)
        return
    single = data_dir / SINGLE_NAME
    if single.exists() and _query(single, "SELECT 1 FROM events LIMIT 1") is not None:
        raise PartitionCountMismatch(f"{data_dir} ({SINGLE_NAME})", 1, count)
    for index, path in sorted(found.items()):
        rec = _recorded(path)
        if rec is not None and rec != (index, count):
            raise PartitionCountMismatch(f"{path}", rec[1], count)
        if index >= count:
            raise PartitionCountMismatch(str(data_dir), index + 1, count)


def open_sqlite_partitions(
    data_dir: str | Path, count: int = 1, synchronous: str = "FULL", registry: SchemaRegistry | None = None
) -> CompositePartitionedLog:
    """The partitioned ledger of ``data_dir`` with ``count`` partitions (created when absent)."""
    count = check_count(count)
    d = Path(data_dir)
    check_layout(d, count)
    if count == 1:
        return CompositePartitionedLog([SqliteLog(d / SINGLE_NAME, registry, synchronous)])
    logs: list[SqliteLog] = []
    try:
        for k in range(count):
            log = SqliteLog(partition_path(d, k), registry, synchronous)
            logs.append(log)
            rec = _record(log.path, k, count)
            if rec != (k, count):  # another process created this file under another count meanwhile
                raise PartitionCountMismatch(str(log.path), rec[1], count)
    except BaseException:
        for log in logs:
            log.close()
        raise
    return CompositePartitionedLog(logs)
