"""Embedded log backend: one SQLite database in WAL mode inside the data directory.

Durability: ``journal_mode=WAL`` with ``synchronous=FULL`` (each committed batch is fsynced).
Every append runs in one ``BEGIN IMMEDIATE`` transaction, which holds SQLite's single write
lock while the head is read and the batch is chained, so concurrent writers (threads or
processes) serialise and can never fork the chain; a crash leaves the whole batch or none.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import orjson

from ledger.canonical import GENESIS_HASH
from ledger.chain import VerifyResult, check_expected, prepare, resolve_retry, seal
from ledger.config import Config
from ledger.events import Event, NewEvent
from ledger.governance.ref_index_check import verify_chain_and_refs
from ledger.log import LogBase, poll_subscribe, refs_of
from ledger.schema_registry import SchemaRegistry, default_registry
from ledger.storage.file_modes import private_dir
from ledger.storage.sqlite_pool import WAL_PRAGMAS, ThreadConnections, immediate

# the stored envelope: every column the chain hash covers, plus the hash itself
ENVELOPE_COLUMNS = (
    ("event_id", "TEXT NOT NULL"),
    ("stream", "TEXT NOT NULL"),
    ("version", "INTEGER NOT NULL"),
    ("type", "TEXT NOT NULL"),
    ("schema_version", "INTEGER NOT NULL"),
    ("ts_us", "INTEGER NOT NULL"),
    ("actor", "TEXT NOT NULL"),
    ("causation_id", "TEXT"),
    ("correlation_id", "TEXT"),
    ("payload", "BLOB NOT NULL"),
    ("prev_hash", "TEXT NOT NULL"),
    ("hash", "TEXT NOT NULL"),
)


def events_table_ddl(table: str, scope: str | None = None) -> str:
    """``CREATE TABLE`` of a hash-chained events table (the log's, or the branches' with a leading
    ``scope`` key column naming the branch): offsets, event ids and stream versions unique per scope."""
    cols = ",\n  ".join(f"{name} {kind}" for name, kind in ENVELOPE_COLUMNS)
    if scope is None:
        return (
            f"CREATE TABLE IF NOT EXISTS {table}(\n  offset INTEGER PRIMARY KEY,\n  {cols},\n"
            "  UNIQUE(event_id),\n  UNIQUE(stream, version)\n);\n"
        )
    return (
        f"CREATE TABLE IF NOT EXISTS {table}(\n  {scope} TEXT NOT NULL,\n  offset INTEGER NOT NULL,\n  {cols},\n"
        f"  PRIMARY KEY({scope}, offset),\n  UNIQUE({scope}, event_id),\n  UNIQUE({scope}, stream, version)\n"
        ") WITHOUT ROWID;\n"
    )


_DDL = (
    events_table_ddl("events")
    + """
CREATE TABLE IF NOT EXISTS refs(ref TEXT NOT NULL, offset INTEGER NOT NULL, PRIMARY KEY(ref, offset))
  WITHOUT ROWID;
"""
)

_COLS = (
    "offset, stream, version, event_id, type, schema_version, ts_us, actor, causation_id, "
    "correlation_id, payload, prev_hash, hash"
)


def _row_to_event(r: tuple) -> Event:
    return Event(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], orjson.loads(r[10]), r[11], r[12])


class SqliteLog(LogBase):
    """The embedded default ``Log``: durable, atomic batches, multi-process safe."""

    def __init__(self, path: str | Path, registry: SchemaRegistry | None = None, synchronous: str = "FULL"):
        self.path = Path(path)
        private_dir(self.path.parent)
        self.registry = registry or default_registry()
        self._synchronous = synchronous
        pragmas = (*WAL_PRAGMAS, f"synchronous={synchronous}", "cache_size=-65536", "wal_autocheckpoint=20000")
        self._pool = ThreadConnections(self.path, pragmas)
        conn = self._conn()
        with conn:
            conn.executescript(_DDL)

    # -- connections -------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        return self._pool.get()

    def close(self) -> None:
        self._pool.close()

    # -- writes ------------------------------------------------------------------------
    def append(self, events: Sequence[NewEvent], expected_versions: Mapping[str, int] | None = None) -> list[Event]:
        if not events:
            return []
        prepared = prepare(self.registry, events)
        conn = self._conn()
        with immediate(conn):
            existing = self._existing(conn, [p.new.event_id for p in prepared])
            retry = resolve_retry(prepared, existing)
            if retry is not None:
                return retry
            streams = {p.new.stream for p in prepared} | set(expected_versions or ())
            versions = {s: self._stream_version(conn, s) for s in streams}
            check_expected(expected_versions, versions)
            row = conn.execute("SELECT offset, hash, ts_us FROM events ORDER BY offset DESC LIMIT 1").fetchone()
            head, head_hash, last_ts = row if row else (-1, GENESIS_HASH, 0)
            sealed = seal(prepared, head, head_hash, last_ts, versions, self.clock)
            conn.executemany(
                f"INSERT INTO events({_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [
                    (
                        e.offset,
                        e.stream,
                        e.version,
                        e.event_id,
                        e.type,
                        e.schema_version,
                        e.ts_us,
                        e.actor,
                        e.causation_id,
                        e.correlation_id,
                        pb,
                        e.prev_hash,
                        e.hash,
                    )
                    for e, pb in sealed
                ],
            )
            conn.executemany(
                "INSERT OR IGNORE INTO refs(ref, offset) VALUES (?,?)",
                [(ref, e.offset) for e, _ in sealed for ref in refs_of(e.payload)],
            )
        return [e for e, _ in sealed]

    @staticmethod
    def _existing(conn: sqlite3.Connection, ids: list[str]) -> dict[str, Event]:
        found: dict[str, Event] = {}
        for i in range(0, len(ids), 900):
            chunk = ids[i : i + 900]
            q = f"SELECT {_COLS} FROM events WHERE event_id IN ({','.join('?' * len(chunk))})"
            for r in conn.execute(q, chunk):
                found[r[3]] = _row_to_event(r)
        return found

    @staticmethod
    def _stream_version(conn: sqlite3.Connection, stream: str) -> int:
        row = conn.execute("SELECT MAX(version) FROM events WHERE stream = ?", (stream,)).fetchone()
        return row[0] or 0

    # -- reads -------------------------------------------------------------------------
    def _iter(self, sql: str, args: tuple, batch: int = 2000) -> Iterator[Event]:
        cur = self._conn().execute(sql, args)
        while True:
            rows = cur.fetchmany(batch)
            if not rows:
                return
            for r in rows:
                yield _row_to_event(r)

    def read(self, start: int = 0, end: int | None = None) -> Iterator[Event]:
        if end is None:
            return self._iter(f"SELECT {_COLS} FROM events WHERE offset >= ? ORDER BY offset", (start,))
        return self._iter(f"SELECT {_COLS} FROM events WHERE offset >= ? AND offset <= ? ORDER BY offset", (start, end))

    def read_stream(self, stream: str, start_version: int = 1, end_offset: int | None = None) -> Iterator[Event]:
        end = end_offset if end_offset is not None else 2**62
        return self._iter(
            f"SELECT {_COLS} FROM events WHERE stream = ? AND version >= ? AND offset <= ? ORDER BY version",
            (stream, start_version, end),
        )

    def read_refs(self, ref: str, end_offset: int | None = None) -> Iterator[Event]:
        end = end_offset if end_offset is not None else 2**62
        return self._iter(
            f"SELECT {_COLS} FROM events WHERE offset IN (SELECT offset FROM refs WHERE ref = ? AND offset <= ?) "
            "ORDER BY offset",
            (ref, end),
        )

    def stream_version_at(self, stream: str, offset: int) -> int:
        """Version of ``stream`` counting only events at or below ``offset`` (for branch fork points)."""
        r = (
            self._conn()
            .execute("SELECT MAX(version) FROM events WHERE stream = ? AND offset <= ?", (stream, offset))
            .fetchone()
        )
        return r[0] or 0

    def read_filtered(
        self,
        start: int = 0,
        end: int | None = None,
        actor: str | None = None,
        types: Sequence[str] | None = None,
        stream: str | None = None,
        limit: int | None = None,
    ) -> Iterator[Event]:
        """Events in ``start..end`` filtered by actor, types and stream in SQL (audit queries)."""
        where: list[str] = ["offset >= ?", "offset <= ?"]
        args: list[object] = [start, 2**62 if end is None else end]
        if actor is not None:
            where.append("actor = ?")
            args.append(actor)
        if types:
            where.append(f"type IN ({','.join('?' * len(types))})")
            args.extend(types)
        if stream is not None:
            where.append("stream = ?")
            args.append(stream)
        tail = "" if limit is None else f" LIMIT {int(limit)}"
        return self._iter(
            f"SELECT {_COLS} FROM events WHERE {' AND '.join(where)} ORDER BY offset{tail}",
            tuple(args),
            batch=min(2000, limit or 2000),
        )

    def get_by_id(self, event_id: str) -> Event | None:
        r = self._conn().execute(f"SELECT {_COLS} FROM events WHERE event_id = ?", (event_id,)).fetchone()
        return _row_to_event(r) if r else None

    def hashes(self, start: int = 0, end: int | None = None) -> Iterator[str]:
        """Hex hashes of events ``start..end`` in offset order (for Merkle trees; no payload decoding)."""
        stop = end if end is not None else 2**62
        cur = self._conn().execute(
            "SELECT hash FROM events WHERE offset >= ? AND offset <= ? ORDER BY offset", (start, stop)
        )
        for (h,) in _flatten(cur):
            yield h

    def head(self) -> int:
        r = self._conn().execute("SELECT MAX(offset) FROM events").fetchone()
        return -1 if r[0] is None else r[0]

    def head_hash(self) -> str:
        r = self._conn().execute("SELECT hash FROM events ORDER BY offset DESC LIMIT 1").fetchone()
        return r[0] if r else GENESIS_HASH

    def stream_version(self, stream: str) -> int:
        return self._stream_version(self._conn(), stream)

    def storage_path(self) -> Path:
        """The SQLite file of the log."""
        return self.path

    def streams(self) -> list[str]:
        """Every stream (cube) that has events."""
        return [r[0] for r in self._conn().execute("SELECT DISTINCT stream FROM events ORDER BY stream")]

    def offset_at(self, ts_us: int) -> int:
        # Timestamps never decrease along offsets (``seal`` enforces it), so a binary search over
        # the primary key finds the answer in ~log2(head) point reads without a time index,
        # which would cost every append one more B-tree insert.
        conn = self._conn()
        lo, hi = 0, self.head()
        found = -1
        while lo <= hi:
            mid = (lo + hi) // 2
            r = conn.execute("SELECT ts_us FROM events WHERE offset = ?", (mid,)).fetchone()
            if r is None:  # only while rows are missing (a damaged log): fall back to a scan
                r = conn.execute("SELECT MAX(offset) FROM events WHERE ts_us <= ?", (ts_us,)).fetchone()
                return -1 if r[0] is None else r[0]
            if r[0] <= ts_us:
                found, lo = mid, mid + 1
            else:
                hi = mid - 1
        return found

    def subscribe(self, start: int = 0, poll_interval: float = 0.2, stop: object = None) -> Iterator[Event]:
        return poll_subscribe(self.read, start, lambda: time.sleep(poll_interval), stop)

    # -- verification ------------------------------------------------------------------
    def verify(self) -> VerifyResult:
        """Recompute the whole hash chain from the stored rows, check the ref index against the
        events, and let SQLite check its own indexes (event ids, stream versions) against the table."""
        conn = self._conn()
        try:
            result = verify_chain_and_refs(
                lambda: _flatten(conn.execute(f"SELECT {_COLS} FROM events ORDER BY offset")),
                lambda: _flatten(conn.execute("SELECT ref, offset FROM refs")),
                lambda: _flatten(conn.execute("SELECT offset, ref FROM refs ORDER BY offset, ref")),
            )
            if not result.ok:
                return result
            problems = [r[0] for r in conn.execute("PRAGMA integrity_check(20)").fetchall()]
        except sqlite3.DatabaseError as exc:
            return VerifyResult(False, 0, -1, GENESIS_HASH, None, f"the log database {self.path} is damaged: {exc}")
        if problems != ["ok"]:
            return VerifyResult(
                False,
                result.checked,
                result.head,
                result.head_hash,
                None,
                "the database's own indexes disagree with its tables (damaged or edited): " + "; ".join(problems[:5]),
            )
        return result


def _flatten(cur: sqlite3.Cursor) -> Iterator[tuple]:
    while True:
        rows = cur.fetchmany(5000)
        if not rows:
            return
        yield from rows


def from_config(config: Config) -> SqliteLog:
    """Factory used by ``ledger.factory``: ``<data_dir>/log.sqlite``."""
    section = config.section("log")
    return SqliteLog(config.data_dir / "log.sqlite", synchronous=str(section.get("synchronous", "FULL")))
