"""PostgreSQL partitioned ledger: N partitions in one database, one schema per partition.

N=1 is today's single log in schema ``<schema>`` (default ``memledger``), layout unchanged. N>1
keeps partition k in schema ``<schema>_p<k>`` (each a complete ``PostgresLog``: its own ``events``,
``refs`` and ``head`` row), and schema ``<schema>`` holds only the ledger-wide table
``partitions`` (one row: the count, written once, on creation). Appends lock only their
partition's head row, so writers to different partitions never wait for each other; the
per-stream version lookup stays one index probe per stream.

Opening with another count than the stored one is refused (``PartitionCountMismatch``), and so is
opening N>1 over a single-partition ledger (a ``<schema>.head`` table) or N=1 over a partitioned one.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from ledger.backends.postgres_log import NAME, PostgresLog
from ledger.errors import BackendUnavailable, InvalidRequest
from ledger.partitions.composite import CompositePartitionedLog
from ledger.partitions.settings import MAX_PARTITIONS, PartitionCountMismatch, check_count
from ledger.schema_registry import SchemaRegistry

# a partition schema adds "_p<k>" (up to 4 digits' worth) to the ledger's name within PostgreSQL's 63
MAX_BASE_NAME = 63 - len(f"_p{MAX_PARTITIONS - 1}")
_META_DDL = (
    "CREATE TABLE IF NOT EXISTS {s}.partitions(id INTEGER PRIMARY KEY CHECK (id = 1), partitions INTEGER NOT NULL)"
)


def partition_schema(schema: str, index: int) -> str:
    """The schema of partition ``index`` of a ledger of more than one partition."""
    return f"{schema}_p{index}"


def _regclass(conn: psycopg.Connection, name: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
    return bool(row and row[0])


def _stored_count(conn: psycopg.Connection, schema: str) -> int | None:
    """The count recorded in ``<schema>.partitions`` (None: not a partitioned ledger)."""
    if not _regclass(conn, f"{schema}.partitions"):
        return None
    row = conn.execute(sql.SQL("SELECT partitions FROM {}.partitions WHERE id = 1").format(sql.Identifier(schema)))
    got = row.fetchone()
    return int(got[0]) if got else None


def _settle_count(conn: psycopg.Connection, schema: str, count: int) -> None:
    """Check ``count`` against the stored ledger, recording it when the ledger is new (N>1)."""
    s = sql.Identifier(schema)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"memledger-partitions:{schema}",))
        stored = _stored_count(conn, schema)
        if count == 1:
            if stored is not None:
                raise PartitionCountMismatch(f"PostgreSQL schema {schema!r}", stored, 1)
            return
        if stored is None:
            if _regclass(conn, f"{schema}.head"):
                raise PartitionCountMismatch(f"PostgreSQL schema {schema!r}", 1, count)
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(s))
            conn.execute(sql.SQL(_META_DDL).format(s=s))
            conn.execute(sql.SQL("INSERT INTO {}.partitions(id, partitions) VALUES (1, %s)").format(s), (count,))
        elif stored != count:
            raise PartitionCountMismatch(f"PostgreSQL schema {schema!r}", stored, count)


def check_layout(dsn: str, schema: str, count: int, connect_timeout: float = 10.0) -> None:
    """Refuse (``PartitionCountMismatch``) a stored ledger of another partition count; record the count
    of a new ledger of more than one partition."""
    if not NAME.match(schema):
        raise InvalidRequest(f"PostgreSQL schema name {schema!r} must match {NAME.pattern}")
    try:
        conn = psycopg.connect(dsn, autocommit=True, connect_timeout=max(1, int(connect_timeout)))
    except psycopg.OperationalError as exc:
        raise BackendUnavailable(f"PostgreSQL is unavailable: {' '.join(str(exc).split())}") from None
    with conn:
        _settle_count(conn, schema, count)


def open_postgres_partitions(
    dsn: str,
    count: int = 1,
    schema: str = "memledger",
    registry: SchemaRegistry | None = None,
    connect_timeout: float = 10.0,
) -> CompositePartitionedLog:
    """The partitioned ledger named ``schema`` in the database at ``dsn`` (created when absent)."""
    count = check_count(count)
    if count > 1 and len(schema) > MAX_BASE_NAME:
        raise InvalidRequest(f"a partitioned ledger's schema name has at most {MAX_BASE_NAME} characters: {schema!r}")
    check_layout(dsn, schema, count, connect_timeout)
    names = [schema] if count == 1 else [partition_schema(schema, k) for k in range(count)]
    logs: list[PostgresLog] = []
    try:
        for name in names:
            logs.append(PostgresLog(dsn, name, registry, connect_timeout))
    except BaseException:
        for log in logs:
            log.close()
        raise
    return CompositePartitionedLog(logs)


def drop_postgres_partitions(dsn: str, schema: str) -> None:
    """Delete a ledger's schema and every partition schema of it (tests and tear-down only)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT nspname FROM pg_namespace WHERE nspname = %s OR nspname ~ %s",
                (schema, f"^{schema}_p[0-9]+$"),
            )
        ]
        for name in names:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))
