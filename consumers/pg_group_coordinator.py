"""``PostgresGroupCoordinator``: consumer-group membership and partition locks on PostgreSQL.

Membership is a row per member in ``<schema>.consumer_group_members`` keyed by (group, view,
member), with a heartbeat stamped by the server's clock and the member's backend (pid and start
time). A member is live while its heartbeat is younger than ``heartbeat_timeout`` seconds and,
with ``detect_closed_sessions``, while its backend still exists: a member killed with ``kill -9``
loses its connection at once, so the others see it gone at their next heartbeat instead of after
the timeout. A member whose heartbeat expired but whose session is still open (a frozen process)
has that session terminated (``fence_expired``), which also frees its partition locks.

Each partition's lock is a session advisory lock ``(group key, partition)`` held on the
member's one coordinator connection: the server frees every lock of a member whose connection
ends, and never grants one lock to two sessions.
"""

from __future__ import annotations

import re
import sys
import threading
import zlib
from typing import Any

from ledger.errors import InvalidRequest

_NAME = re.compile(r"^(?!pg_)[a-z_][a-z0-9_]{0,62}$")
_DDL = """
CREATE TABLE IF NOT EXISTS {s}.consumer_group_members(
  grp TEXT NOT NULL,
  view TEXT NOT NULL,
  member TEXT NOT NULL,
  pid INTEGER NOT NULL,
  backend_start TIMESTAMPTZ NOT NULL,
  joined TIMESTAMPTZ NOT NULL,
  heartbeat TIMESTAMPTZ NOT NULL,
  PRIMARY KEY(grp, view, member)
)
"""
_BEAT = """
INSERT INTO {s}.consumer_group_members AS m(grp, view, member, pid, backend_start, joined, heartbeat)
SELECT %s, %s, %s, a.pid, a.backend_start, clock_timestamp(), clock_timestamp()
FROM pg_stat_activity a WHERE a.pid = pg_backend_pid()
ON CONFLICT (grp, view, member) DO UPDATE
SET heartbeat = clock_timestamp(), pid = EXCLUDED.pid, backend_start = EXCLUDED.backend_start
"""
# Members whose heartbeat expired, or (when sessions are checked) whose backend is gone; with the
# backend's pid when that session is still open (a frozen member, to be fenced off).
_DEAD = """
SELECT m.member, a.pid, m.heartbeat < clock_timestamp() - make_interval(secs => %s) AS expired
FROM {s}.consumer_group_members m
LEFT JOIN pg_stat_activity a ON a.pid = m.pid AND a.backend_start = m.backend_start
WHERE m.grp = %s AND m.view = %s AND m.member <> %s
  AND (m.heartbeat < clock_timestamp() - make_interval(secs => %s) OR (%s AND a.pid IS NULL))
"""
_LIVE = "SELECT member FROM {s}.consumer_group_members WHERE grp = %s AND view = %s ORDER BY member"
# Two-key advisory locks show in pg_locks as classid = key1 (as an unsigned oid), objid = key2, objsubid = 2.
_HOLDERS = """
SELECT l.objid::bigint, coalesce(m.member, 'pid:' || l.pid) FROM pg_locks l
LEFT JOIN {s}.consumer_group_members m ON m.pid = l.pid AND m.grp = %s AND m.view = %s
WHERE l.locktype = 'advisory' AND l.objsubid = 2 AND l.granted AND l.classid::bigint = %s
"""
_DELETE = "DELETE FROM {s}.consumer_group_members WHERE grp = %s AND view = %s AND member = %s"


def group_key(schema: str, group: str, view: str) -> int:
    """The first half of every partition lock of (schema, group, view): a signed 32-bit integer."""
    return zlib.crc32(f"memledger-group:{schema}:{group}:{view}".encode()) - 2**31


class PostgresGroupCoordinator:
    """Membership rows with heartbeats and one advisory lock per partition, on one connection."""

    def __init__(
        self,
        dsn: str,
        schema: str,
        group: str,
        view: str,
        member: str,
        heartbeat_timeout: float = 3.0,
        detect_closed_sessions: bool = True,
        fence_expired: bool = True,
        connect_timeout: float = 5.0,
    ):
        if not _NAME.match(schema):
            raise InvalidRequest(f"PostgreSQL schema name {schema!r} must match {_NAME.pattern}")
        if heartbeat_timeout <= 0:
            raise InvalidRequest(f"heartbeat_timeout must be positive, not {heartbeat_timeout}")
        self.dsn = dsn
        self.schema = schema
        self.group = group
        self.view = view
        self.member = member
        self.heartbeat_timeout = heartbeat_timeout
        self.detect_closed_sessions = detect_closed_sessions
        self.fence_expired = fence_expired
        self.connect_timeout = connect_timeout
        self.key = group_key(schema, group, view)
        self.description = f"postgres consumer group {group!r} of view {view!r} ({schema}, lock key {self.key})"
        self._conn: Any = None
        self._held: set[int] = set()
        self._lock = threading.Lock()  # the heartbeat thread and the consuming loop share the connection
        self._created = False

    # -- connection ------------------------------------------------------------------------
    def _q(self, text: str) -> Any:
        from psycopg import sql

        return sql.SQL(text).format(s=sql.Identifier(self.schema))

    def _connection(self) -> Any:
        import psycopg

        if self._conn is None or self._conn.closed:
            self._held.clear()  # a new session holds no lock
            self._conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=max(1, int(self.connect_timeout)))
            if not self._created:
                self._create(self._conn)
        return self._conn

    def _create(self, conn: Any) -> None:
        from psycopg import sql

        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"memledger-ddl:{self.schema}",))
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)))
            conn.execute(self._q(_DDL))
        self._created = True

    def _drop(self) -> None:
        self._held.clear()
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001 - already broken
                pass
        self._conn = None

    # -- membership ------------------------------------------------------------------------
    def heartbeat(self) -> list[str] | None:
        """Stamp this member's row, retire dead members (fencing frozen ones), return the live members."""
        import psycopg

        with self._lock:
            try:
                conn = self._connection()
                conn.execute(self._q(_BEAT), (self.group, self.view, self.member))
                t = self.heartbeat_timeout
                dead = conn.execute(
                    self._q(_DEAD), (t, self.group, self.view, self.member, t, self.detect_closed_sessions)
                ).fetchall()
                for member, pid, expired in dead:
                    if pid is not None and expired and self.fence_expired:
                        self._fence(conn, member, pid)
                    conn.execute(self._q(_DELETE), (self.group, self.view, member))
                rows = conn.execute(self._q(_LIVE), (self.group, self.view)).fetchall()
            except psycopg.Error as exc:
                print(f"{self.description}: {' '.join(str(exc).split())}", file=sys.stderr)
                self._drop()
                return None
        return [r[0] for r in rows]

    def _fence(self, conn: Any, member: str, pid: int) -> None:
        """End the open session of a member whose heartbeat expired: its locks go with it."""
        import psycopg

        try:
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
            print(f"{self.description}: fenced off member {member!r} (heartbeat expired)", file=sys.stderr)
        except psycopg.errors.InsufficientPrivilege:
            print(f"{self.description}: cannot end the session of expired member {member!r}", file=sys.stderr)

    # -- partition locks -------------------------------------------------------------------
    def acquire(self, partition: int) -> bool:
        import psycopg

        with self._lock:
            if partition in self._held and self._conn is not None:
                return True
            try:
                conn = self._connection()
                got = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (self.key, partition)).fetchone()[0]
            except psycopg.Error:
                self._drop()
                return False
            if got:
                self._held.add(partition)
            return bool(got)

    def release(self, partition: int) -> None:
        import psycopg

        with self._lock:
            if partition not in self._held or self._conn is None:
                return
            try:
                self._conn.execute("SELECT pg_advisory_unlock(%s, %s)", (self.key, partition))
                self._held.discard(partition)
            except psycopg.Error:
                self._drop()  # the server frees a dead session's locks itself

    def held(self) -> frozenset[int]:
        with self._lock:
            return frozenset(self._held)

    def check(self) -> bool:
        import psycopg

        with self._lock:
            if self._conn is None or self._conn.closed:
                self._held.clear()
                return False
            try:
                self._conn.execute("SELECT 1")
            except psycopg.Error:
                self._drop()
                return False
            return True

    def lock_holders(self) -> dict[int, str]:
        """Partition -> the member whose session holds its lock now, over the whole group (for status
        and tests; ``pid:N`` for a session without a member row, absent when nobody holds it)."""
        with self._lock:
            conn = self._connection()
            rows = conn.execute(self._q(_HOLDERS), (self.group, self.view, self.key & 0xFFFFFFFF)).fetchall()
        return {int(k): m for k, m in rows}

    def leave(self) -> None:
        """Delete this member's row and close the session (which frees every partition lock)."""
        import psycopg

        with self._lock:
            try:
                if self._conn is not None and not self._conn.closed:
                    self._conn.execute(self._q(_DELETE), (self.group, self.view, self.member))
                    self._conn.execute("SELECT pg_advisory_unlock_all()")
            except psycopg.Error:
                pass  # a lost session holds nothing any more
            finally:
                self._drop()
