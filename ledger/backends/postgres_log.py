"""PostgreSQL log backend: the durable shared event store for teams that don't run Kafka.

Layout: one PostgreSQL schema per ledger (``[log] schema``, default ``memledger``) holding
``events`` (one row per event, the canonical payload bytes stored verbatim in ``bytea`` so
the hash chain can be recomputed byte for byte), ``refs`` (memory/subject id -> offset) and
``head`` (a single row: last offset, last hash, last timestamp).

Ordering and optimistic concurrency are done by the database. Every append is one
transaction that first locks the single ``head`` row (``SELECT ... FOR UPDATE``). Appenders
therefore serialise on that row: each one reads the head only after the previous appender
committed, checks stream versions and event ids against committed data, chains its batch
after the head, inserts it and moves the head in the same transaction. Because offsets are
handed out only while the lock is held and the lock is released by the commit, offset N+1
can never commit before offset N: readers at READ COMMITTED never see a gap, and a failed
or killed appender leaves nothing (the whole transaction rolls back).
``UNIQUE(stream, version)`` and ``UNIQUE(event_id)`` back the checks up inside the database.

Subscriptions wait on ``LISTEN``/``NOTIFY`` (sent right after each append commits) with polling as a
fallback, so consumers see new events within milliseconds without hammering the server.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import orjson
import psycopg
from psycopg import sql

from ledger.backends.postgres_lease import PostgresAdvisoryLease
from ledger.canonical import GENESIS_HASH
from ledger.chain import PreparedEvent, VerifyResult, check_expected, prepare, resolve_retry, seal
from ledger.config import Config
from ledger.errors import BackendUnavailable, InternalError, InvalidRequest, present
from ledger.events import Event, NewEvent
from ledger.governance.ref_index_check import verify_chain_and_refs
from ledger.log import LogBase, poll_subscribe, refs_of
from ledger.schema_registry import SchemaRegistry, default_registry

NAME = re.compile(r"^(?!pg_)[a-z_][a-z0-9_]{0,62}$")  # a schema name memledger accepts
_COLS = (
    "offset_, stream, version, event_id, type, schema_version, ts_us, actor, causation_id, "
    "correlation_id, payload, prev_hash, hash"
)
T = TypeVar("T")
_PAGE = 2000
# Version lookup of append (run while the head row is locked): one index probe per stream. A
# ``MAX(version) ... GROUP BY stream`` over ``stream = ANY(...)`` reads every index entry of each
# cube instead, so appends slowed down as cubes grew (issue 16, defect 1).
STREAM_VERSIONS_SQL = (
    "SELECT s.stream, (SELECT e.version FROM {s}.events e WHERE e.stream = s.stream "
    "ORDER BY e.version DESC LIMIT 1) FROM unnest(%s::text[]) AS s(stream)"
)

_DDL = """
CREATE TABLE IF NOT EXISTS {s}.events(
  offset_ BIGINT PRIMARY KEY,
  event_id TEXT NOT NULL UNIQUE,
  stream TEXT NOT NULL,
  version BIGINT NOT NULL,
  type TEXT NOT NULL,
  schema_version INTEGER NOT NULL,
  ts_us BIGINT NOT NULL,
  actor TEXT NOT NULL,
  causation_id TEXT,
  correlation_id TEXT,
  payload BYTEA NOT NULL,
  prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL,
  UNIQUE(stream, version)
);
CREATE INDEX IF NOT EXISTS events_ts ON {s}.events(ts_us);
CREATE TABLE IF NOT EXISTS {s}.refs(ref TEXT NOT NULL, offset_ BIGINT NOT NULL, PRIMARY KEY(ref, offset_));
CREATE TABLE IF NOT EXISTS {s}.head(
  id INTEGER PRIMARY KEY CHECK (id = 1),
  head BIGINT NOT NULL,
  hash TEXT NOT NULL,
  ts_us BIGINT NOT NULL
);
"""
_INIT_HEAD = "INSERT INTO {s}.head(id, head, hash, ts_us) VALUES (1, -1, %s, 0) ON CONFLICT (id) DO NOTHING"


def _row_to_event(r: tuple) -> Event:
    return Event(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], orjson.loads(r[10]), r[11], r[12])


class PostgresLog(LogBase):
    """A ``Log`` in one PostgreSQL schema, shared safely by any number of processes and hosts."""

    def __init__(
        self, dsn: str, schema: str = "memledger", registry: SchemaRegistry | None = None, connect_timeout: float = 10.0
    ):
        if not NAME.match(schema):
            raise InvalidRequest(f"PostgreSQL schema name {schema!r} must match {NAME.pattern}")
        self.dsn = dsn
        self.schema = schema
        self.registry = registry or default_registry()
        self._timeout = connect_timeout
        self._s = sql.Identifier(schema)
        self._channel = f"memledger_{schema}"
        self._local = threading.local()
        self._conns: list[psycopg.Connection] = []
        self._conns_lock = threading.Lock()
        self._run(self._create)

    def _create(self, conn: psycopg.Connection) -> None:
        with conn.transaction():
            # Two processes creating the same ledger at once must not race on the DDL.
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"memledger-ddl:{self.schema}",))
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(self._s))
            conn.execute(sql.SQL(_DDL).format(s=self._s))
            conn.execute(sql.SQL(_INIT_HEAD).format(s=self._s), (GENESIS_HASH,))

    # -- connections -------------------------------------------------------------------
    def _connect(self) -> psycopg.Connection:
        try:
            return psycopg.connect(self.dsn, autocommit=True, connect_timeout=max(1, int(self._timeout)))
        except psycopg.OperationalError as exc:
            raise BackendUnavailable(
                f"PostgreSQL ({_redact(self.dsn)}) is unavailable: {' '.join(str(exc).split())}"
            ) from None

    def _run(self, work: Callable[[psycopg.Connection], T]) -> T:
        """``work(conn)`` on this thread's connection. A lost connection (a server restart or shutdown, a
        network failure) is dropped and the work retried on a new one until ``connect_timeout`` has
        passed, then ``BackendUnavailable``. Every caller's work is safe to repeat: reads, and appends,
        whose event ids make a repeated batch return the stored events instead of appending twice."""
        deadline = time.monotonic() + self._timeout
        delay = 0.05
        while True:
            conn = None
            try:
                conn = self._conn()
                return work(conn)
            except (psycopg.OperationalError, BackendUnavailable) as exc:
                if conn is not None:
                    self._discard(conn)
                if time.monotonic() + delay > deadline:
                    if isinstance(exc, BackendUnavailable):
                        raise
                    raise BackendUnavailable(
                        f"PostgreSQL ({_redact(self.dsn)}) is unavailable: {' '.join(str(exc).split())}"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    def _one(self, q: sql.Composed, args: Sequence[Any] = ()) -> tuple[Any, ...]:
        """The one row a query that always answers returns (aggregates, the head row)."""
        row = self._run(lambda c: c.execute(q, args).fetchone())
        if row is None:
            raise InternalError(f"PostgreSQL returned no row for {q!r:.120}")
        return tuple(row)

    def _all(self, q: sql.Composed, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Every row of a query."""
        return self._run(lambda c: c.execute(q, args).fetchall())

    def _discard(self, conn: psycopg.Connection) -> None:
        try:
            conn.close()
        except psycopg.Error:
            pass
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None

    def _conn(self) -> psycopg.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = self._connect()
            self._local.conn = conn
            with self._conns_lock:
                self._conns.append(conn)
        return conn

    def close(self) -> None:
        if self.reset_guard is not None:
            self.reset_guard.flush()
        with self._conns_lock:
            for c in self._conns:
                try:
                    c.close()
                except psycopg.Error:
                    pass
            self._conns.clear()
        self._local = threading.local()

    def drop(self) -> None:
        """Delete this ledger's schema and every event in it (tests and tear-down only)."""
        self._conn().execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(self._s))

    def _q(self, text: str) -> sql.Composed:
        return sql.SQL(text).format(s=self._s)

    def q(self, text: str) -> sql.Composed:
        """``text`` with ``{s}`` bound to this ledger's schema (for tables kept next to the events)."""
        return self._q(text)

    def run(self, work: Callable[[psycopg.Connection], T]) -> T:
        """``work(conn)`` on this thread's connection, retried over reconnects like the log's own calls
        (``work`` must be safe to repeat)."""
        return self._run(work)

    # -- writes ------------------------------------------------------------------------
    def append(self, events: Sequence[NewEvent], expected_versions: Mapping[str, int] | None = None) -> list[Event]:
        if not events:
            return []
        prepared = prepare(self.registry, events)
        if self.reset_guard is not None:
            self.reset_guard.before_append(self)  # a reset or replaced log takes no writes
        out = self._run(lambda conn: self._append(conn, prepared, expected_versions))
        if self.reset_guard is not None:
            self.reset_guard.saw(out[-1].offset, out[-1].hash)
        return out

    def _append(
        self, conn: psycopg.Connection, prepared: list[PreparedEvent], expected_versions: Mapping[str, int] | None
    ) -> list[Event]:
        with conn.transaction():
            head, head_hash, last_ts = present(
                conn.execute(self._q("SELECT head, hash, ts_us FROM {s}.head WHERE id = 1 FOR UPDATE")).fetchone(),
                "the ledger's head row",
            )
            existing = self._existing(conn, [p.new.event_id for p in prepared])
            retry = resolve_retry(prepared, existing)
            if retry is not None:
                return retry
            streams = sorted({p.new.stream for p in prepared} | set(expected_versions or ()))
            versions = self._stream_versions(conn, streams)
            check_expected(expected_versions, versions)
            sealed = seal(prepared, head, head_hash, last_ts, versions, self.clock)
            with conn.cursor() as cur:
                with cur.copy(self._q(f"COPY {{s}}.events({_COLS}) FROM STDIN")) as copy:
                    for e, pb in sealed:
                        copy.write_row(
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
                        )
                refs = [(ref, e.offset) for e, _ in sealed for ref in refs_of(e.payload)]
                if refs:
                    with cur.copy(self._q("COPY {s}.refs(ref, offset_) FROM STDIN")) as copy:
                        for row in refs:
                            copy.write_row(row)
            last = sealed[-1][0]
            conn.execute(
                self._q("UPDATE {s}.head SET head = %s, hash = %s, ts_us = %s WHERE id = 1"),
                (last.offset, last.hash, last.ts_us),
            )
        # Notified after the commit, in a transaction of its own: PostgreSQL serialises every
        # transaction that notifies on one database-wide lock held until its commit is flushed, so a
        # NOTIFY inside the append made writers of different partitions (schemas) wait for each other.
        # A notification-only transaction writes no WAL and waits for no flush. A subscriber that misses
        # it (this process died in between) still polls.
        conn.execute("SELECT pg_notify(%s, %s)", (self._channel, str(last.offset)))
        return [e for e, _ in sealed]

    def _stream_versions(self, conn: psycopg.Connection, streams: list[str]) -> dict[str, int]:
        """Current version of each stream: one backward step on the ``(stream, version)`` index per
        stream (``ORDER BY version DESC LIMIT 1``), so the cost does not grow with a cube's size."""
        rows = conn.execute(self._q(STREAM_VERSIONS_SQL), (streams,)).fetchall()
        return {stream: int(v or 0) for stream, v in rows}

    def _existing(self, conn: psycopg.Connection, ids: list[str]) -> dict[str, Event]:
        rows = conn.execute(self._q(f"SELECT {_COLS} FROM {{s}}.events WHERE event_id = ANY(%s)"), (ids,))
        return {r[3]: _row_to_event(r) for r in rows}

    # -- reads -------------------------------------------------------------------------
    def _pages(self, where: str, args: tuple, order: str = "offset_") -> Iterator[tuple]:
        """Keyset pagination: short autocommit queries, no long-lived transaction or cursor."""
        after = -1
        q = self._q(f"SELECT {_COLS} FROM {{s}}.events WHERE {where} AND {order} > %s ORDER BY {order} LIMIT {_PAGE}")
        key = 2 if order == "version" else 0
        while True:
            rows = self._all(q, (*args, after))
            yield from rows
            if len(rows) < _PAGE:
                return
            after = rows[-1][key]

    def read(self, start: int = 0, end: int | None = None) -> Iterator[Event]:
        stop = end if end is not None else 2**62
        return (_row_to_event(r) for r in self._pages("offset_ >= %s AND offset_ <= %s", (start, stop)))

    def read_stream(self, stream: str, start_version: int = 1, end_offset: int | None = None) -> Iterator[Event]:
        stop = end_offset if end_offset is not None else 2**62
        where = "stream = %s AND version >= %s AND offset_ <= %s"
        return (_row_to_event(r) for r in self._pages(where, (stream, start_version, stop), "version"))

    def read_refs(self, ref: str, end_offset: int | None = None) -> Iterator[Event]:
        stop = end_offset if end_offset is not None else 2**62
        return (
            _row_to_event(r)
            for r in self._pages(
                "offset_ IN (SELECT offset_ FROM {s}.refs WHERE ref = %s AND offset_ <= %s)", (ref, stop)
            )
        )

    def stream_version_at(self, stream: str, offset: int) -> int:
        """Version of ``stream`` counting only events at or below ``offset`` (branch fork points)."""
        q = self._q("SELECT MAX(version) FROM {s}.events WHERE stream = %s AND offset_ <= %s")
        r = self._one(q, (stream, offset))
        return int(r[0] or 0)

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
        where: list[str] = ["offset_ >= %s", "offset_ <= %s"]
        args: list[object] = [start, 2**62 if end is None else end]
        if actor is not None:
            where.append("actor = %s")
            args.append(actor)
        if types:
            where.append("type = ANY(%s)")
            args.append(list(types))
        if stream is not None:
            where.append("stream = %s")
            args.append(stream)
        rows = self._pages(" AND ".join(where), tuple(args))
        if limit is not None:
            rows = (r for _, r in zip(range(max(0, int(limit))), rows, strict=False))
        return (_row_to_event(r) for r in rows)

    def get_by_id(self, event_id: str) -> Event | None:
        q = self._q(f"SELECT {_COLS} FROM {{s}}.events WHERE event_id = %s")
        r = self._run(lambda c: c.execute(q, (event_id,)).fetchone())
        return _row_to_event(r) if r else None

    def hashes(self, start: int = 0, end: int | None = None) -> Iterator[str]:
        """Hex hashes of events ``start..end`` in offset order (for Merkle trees; no payload decoding)."""
        stop = end if end is not None else 2**62
        q = self._q(
            f"SELECT offset_, hash FROM {{s}}.events WHERE offset_ >= %s AND offset_ <= %s "
            f"ORDER BY offset_ LIMIT {_PAGE * 10}"
        )
        nxt = start
        while nxt <= stop:
            rows = self._all(q, (nxt, stop))
            for _, h in rows:
                yield h
            if len(rows) < _PAGE * 10:
                return
            nxt = rows[-1][0] + 1

    def head(self) -> int:
        q = self._q("SELECT head FROM {s}.head WHERE id = 1")
        return int(self._one(q)[0])

    def head_hash(self) -> str:
        q = self._q("SELECT hash FROM {s}.head WHERE id = 1")
        return str(self._one(q)[0])

    def stream_version(self, stream: str) -> int:
        q = self._q("SELECT MAX(version) FROM {s}.events WHERE stream = %s")
        return int(self._one(q, (stream,))[0] or 0)

    def streams(self) -> list[str]:
        """Every stream (cube) that has events."""
        q = self._q("SELECT DISTINCT stream FROM {s}.events ORDER BY stream")
        return [r[0] for r in self._all(q)]

    def offset_at(self, ts_us: int) -> int:
        q = self._q("SELECT MAX(offset_) FROM {s}.events WHERE ts_us <= %s")
        r = self._one(q, (ts_us,))
        return -1 if r[0] is None else int(r[0])

    def subscribe(self, start: int = 0, poll_interval: float = 0.2, stop: object = None) -> Iterator[Event]:
        listening: list[psycopg.Connection] = []

        def wait() -> None:  # wake on the next NOTIFY, or after poll_interval at the latest
            try:
                if not listening:
                    conn = self._connect()
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
                    listening.append(conn)
                for _ in listening[0].notifies(timeout=poll_interval, stop_after=1):
                    pass
            except (psycopg.OperationalError, BackendUnavailable):
                for conn in listening:  # the server went away: poll until it is back, then listen again
                    self._discard(conn)
                listening.clear()
                time.sleep(poll_interval)

        try:
            yield from poll_subscribe(self.read, start, wait, stop)
        finally:
            for conn in listening:
                conn.close()

    # -- verification ------------------------------------------------------------------
    def lease(self, view: str, data_dir: str | Path) -> PostgresAdvisoryLease:
        """A session advisory lock on this ledger's database: consumers on any machine share it."""
        return PostgresAdvisoryLease(self.dsn, self.schema, view, connect_timeout=self._timeout)

    def verify(self) -> VerifyResult:
        """Recompute the whole hash chain from the stored rows, and check the head row agrees."""

        def rows() -> Iterator[tuple]:
            return (
                (r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], bytes(r[10]), r[11], r[12])
                for r in self._pages("TRUE", ())
            )

        def stored() -> Iterator[tuple]:  # keyset pages in primary-key order
            after: tuple = ("", -1)
            q = self._q(
                f"SELECT ref, offset_ FROM {{s}}.refs WHERE (ref, offset_) > (%s, %s) "
                f"ORDER BY ref, offset_ LIMIT {_PAGE}"
            )
            while True:
                page = self._all(q, after)
                yield from page
                if len(page) < _PAGE:
                    return
                after = page[-1]

        def stored_by_offset() -> list[tuple]:  # only on the failure path
            q = self._q("SELECT offset_, ref FROM {s}.refs ORDER BY offset_, ref")
            return self._all(q)

        result = verify_chain_and_refs(rows, stored, stored_by_offset)
        if result.ok:
            q = self._q("SELECT head, hash FROM {s}.head WHERE id = 1")
            head, head_hash = self._one(q)
            if head != result.head or head_hash != result.head_hash:
                return VerifyResult(
                    False,
                    result.checked,
                    result.head,
                    result.head_hash,
                    result.head + 1,
                    f"head row says offset {head} but the events end at {result.head}",
                )
        return result


def _redact(dsn: str) -> str:
    return re.sub(r"(://[^:/@]+:)[^@]+@", r"\1***@", re.sub(r"password=\S+", "password=***", dsn))


def connection_settings(config: Config) -> tuple[str, str, float]:
    """``(dsn, schema, connect_timeout)`` of ``[log]``: ``dsn`` (or ``$MEMLEDGER_PG_DSN``), ``schema``
    (default ``memledger``) and ``connect_timeout`` (seconds, default 10), validated."""
    import os

    section = config.section("log")
    dsn = os.environ.get("MEMLEDGER_PG_DSN") or section.get("dsn")
    if not dsn:
        raise InvalidRequest(
            '[log] backend = "postgres" needs dsn = "postgresql://user@host:port/db" (or $MEMLEDGER_PG_DSN)'
        )
    timeout = section.get("connect_timeout", 10)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise InvalidRequest(f"[log] connect_timeout must be a positive number of seconds, not {timeout!r}")
    return str(dsn), str(section.get("schema", "memledger")), float(timeout)


def from_config(config: Config) -> PostgresLog:
    """Factory used by ``ledger.factory``: ``[log] dsn`` (or ``$MEMLEDGER_PG_DSN``) and ``schema``."""
    dsn, schema, timeout = connection_settings(config)
    return PostgresLog(dsn, schema=schema, connect_timeout=timeout)
