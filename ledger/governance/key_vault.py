"""Per-memory keys: random AES-256 keys by key id, in one SQLite database, destroyable one by one.

Every memory's payloads are sealed under a key of the memory's own (besides its subjects' keys), so
any single memory can be erased by destroying that key. A key is created for each memory, so
creation must be cheap: the vault hands out keys from a pool that it fills in one durable transaction
(``pool_size``: 2,048 keys, so one fsync per 2,048 memories; with 256 the fills cost a measurable share
of append throughput). A pooled key that is never used is harmless (it encrypts nothing); the pool is
per process.

Storage: ``<keys dir>/keys.sqlite`` (mode 0600), WAL mode with ``secure_delete`` on, so a destroyed
key's cell is zeroed in the database file; after a destruction the WAL is checkpointed and truncated
so no earlier page image holding the key survives in the -wal file either (``destroy`` reports when
another connection's open read kept it from truncating).

Other processes' destructions are seen at once: a ``generation`` counter is bumped by every
destruction and compared (``PRAGMA data_version`` first, which costs no I/O when nothing changed)
before a cached key is used.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from ledger.errors import LedgerError
from ledger.storage.file_modes import private_file
from ledger.storage.sqlite_pool import WAL_PRAGMAS, ThreadConnections, immediate

KEY_BYTES = 32
_DDL = """
CREATE TABLE IF NOT EXISTS keys(key_id TEXT PRIMARY KEY, key BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta(name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
"""


class MemoryKeyVault(Protocol):
    """Where per-memory keys live: this SQLite vault, or a shared one (``ledger.governance.pg_keys``)."""

    def new_key(self) -> tuple[str, bytes]: ...

    def install(self, keys: Iterable[tuple[str, bytes]]) -> int: ...

    def get(self, key_id: str) -> bytes | None: ...

    def exists(self, key_id: str) -> bool: ...

    def destroy(self, key_ids: Iterable[str]) -> tuple[list[str], str | None]: ...

    def close(self) -> None: ...


class KeyVaultError(LedgerError):
    """The key vault could not be read or written."""


class KeyVault:
    """Random keys by id: ``new_key`` (pooled), ``get``, ``destroy``."""

    def __init__(self, path: str | Path, pool_size: int = 2048):
        self.path = Path(path)
        private_file(self.path)
        self.pool_size = max(1, int(pool_size))
        self._pool = ThreadConnections(self.path, (*WAL_PRAGMAS, "synchronous=FULL", "secure_delete=ON"))
        self._lock = threading.Lock()
        self._spare: list[tuple[str, bytes]] = []
        self._cache: dict[str, bytes] = {}
        self._seen: tuple[int, int] = (-1, -1)  # (data_version, generation) the cache is valid for
        conn = self._pool.get()
        conn.executescript(_DDL)

    def close(self) -> None:
        self._pool.close()

    # -- keys ----------------------------------------------------------------------------
    def new_key(self) -> tuple[str, bytes]:
        """A fresh key that nothing has used yet, and its id."""
        with self._lock:
            if not self._spare:
                self._fill()
            return self._spare.pop()

    def _fill(self) -> None:
        fresh = [(os.urandom(16).hex(), os.urandom(KEY_BYTES)) for _ in range(self.pool_size)]
        conn = self._pool.get()
        with immediate(conn):
            conn.executemany("INSERT INTO keys(key_id, key) VALUES (?,?)", fresh)
        self._spare = fresh

    def install(self, keys: Iterable[tuple[str, bytes]]) -> int:
        """Store keys created elsewhere (a cube import); existing ids are kept. Returns how many were new."""
        rows = [(k, bytes(v)) for k, v in keys]
        conn = self._pool.get()
        with immediate(conn):
            before = conn.total_changes
            conn.executemany("INSERT OR IGNORE INTO keys(key_id, key) VALUES (?,?)", rows)
            return conn.total_changes - before

    def get(self, key_id: str) -> bytes | None:
        """The key, or None when it was destroyed (or never existed)."""
        conn = self._pool.get()
        with self._lock:
            self._revalidate(conn)
            hit = self._cache.get(key_id)
        if hit is not None:
            return hit
        row = conn.execute("SELECT key FROM keys WHERE key_id = ?", (key_id,)).fetchone()
        if row is None:
            return None
        key = bytes(row[0])
        with self._lock:
            self._cache[key_id] = key
        return key

    def _revalidate(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA data_version").fetchone()[0]
        if version == self._seen[0]:
            return
        row = conn.execute("SELECT value FROM meta WHERE name = 'generation'").fetchone()
        generation = 0 if row is None else int(row[0])
        if generation != self._seen[1]:
            self._cache.clear()  # something was destroyed since: look keys up again
        self._seen = (version, generation)

    def exists(self, key_id: str) -> bool:
        return self.get(key_id) is not None

    def destroy(self, key_ids: Iterable[str]) -> tuple[list[str], str | None]:
        """Irreversibly delete keys; return (the ids that existed, a problem or None)."""
        ids = sorted(set(key_ids))
        conn = self._pool.get()
        destroyed: list[str] = []
        with immediate(conn):
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                marks = ",".join("?" * len(chunk))
                destroyed += [r[0] for r in conn.execute(f"SELECT key_id FROM keys WHERE key_id IN ({marks})", chunk)]
                conn.execute(f"DELETE FROM keys WHERE key_id IN ({marks})", chunk)
            conn.execute(
                "INSERT INTO meta(name, value) VALUES ('generation', 1) "
                "ON CONFLICT(name) DO UPDATE SET value = value + 1"
            )
        with self._lock:
            for k in ids:
                self._cache.pop(k, None)
            self._spare = [s for s in self._spare if s[0] not in set(ids)]
        busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        problem = (
            None
            if not busy
            else (
                f"{self.path}: another connection kept the WAL from being truncated; "
                "destroyed keys may linger in the -wal file until its next checkpoint"
            )
        )
        return destroyed, problem
