"""``PostgresAdvisoryLease``: a session-level ``pg_try_advisory_lock`` per (ledger schema, view).

The server releases the lock when the holder's connection ends (a crash included), so a standby
takes over. A lease only decides who works: exactly-once does not depend on it, since every
projection applies a batch and its checkpoint atomically.
"""

from __future__ import annotations

import zlib
from typing import Any


class PostgresAdvisoryLease:
    """A PostgreSQL session advisory lock per (ledger schema, view)."""

    def __init__(self, dsn: str, schema: str, view: str, connect_timeout: float = 5.0):
        self.dsn = dsn
        self.key = zlib.crc32(f"memledger-view:{schema}:{view}".encode()) - 2**31
        self.description = f"postgres advisory lock {self.key} ({schema}/{view})"
        self.connect_timeout = connect_timeout
        self._conn: Any = None
        self._held = False

    def _connection(self) -> Any:
        import psycopg

        if self._conn is None or self._conn.closed:
            self._held = False  # a new session holds no lock
            self._conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=max(1, int(self.connect_timeout)))
        return self._conn

    def poll(self) -> bool:
        """Hold the lock (taking it when free); False while another session holds it or the server is
        unreachable. A lost connection means a lost lock: the next poll reconnects and tries again."""
        import psycopg

        try:
            conn = self._connection()
            if not self._held:
                self._held = bool(conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()[0])
            else:
                conn.execute("SELECT 1")  # notices a dead connection (lease lost)
        except psycopg.Error:
            self._drop()
            return False
        return self._held

    def _drop(self) -> None:
        self._held = False
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001 - already broken
                pass
        self._conn = None

    def release(self) -> None:
        import psycopg

        try:
            if self._held and self._conn is not None and not self._conn.closed:
                self._conn.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
        except psycopg.Error:
            pass  # the server releases a dead session's lock itself
        finally:
            self._drop()
