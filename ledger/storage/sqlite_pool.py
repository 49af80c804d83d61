"""One SQLite connection per thread for a database file, with the pragmas its owner needs."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from ledger.storage.file_modes import private_file

WAL_PRAGMAS = ("journal_mode=WAL", "busy_timeout=60000")


class ThreadConnections:
    """Hands each thread its own autocommit connection (callers open explicit transactions)."""

    def __init__(self, path: str | Path, pragmas: Sequence[str] = WAL_PRAGMAS):
        self.path = Path(path)
        self._pragmas = tuple(pragmas)
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def get(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            private_file(self.path)  # SQLite gives its -wal and -shm files the same mode
            conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None, check_same_thread=False)
            for pragma in self._pragmas:
                set_pragma(conn, pragma)
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    def close(self) -> None:
        """Close every thread's connection; later calls to ``get`` reopen."""
        with self._lock:
            for c in self._conns:
                try:
                    c.close()
                except sqlite3.Error:
                    pass
            self._conns.clear()
        self._local = threading.local()


@contextmanager
def dropping_without_zeroing(conn: sqlite3.Connection) -> Iterator[None]:
    """Turn ``secure_delete`` off while a view is reset (its tables dropped to be folded again).

    Zeroing every freed page of a dropped view costs as much as writing it (measured: 0.6 s of
    a 100k-memory vector rebuild). What a reset drops is still in the log and is folded again;
    erasure does not rely on it: a purge deletes with ``secure_delete`` on, and ``forget``
    rewrites (VACUUMs) every view file afterwards, free pages included.
    """
    conn.execute("PRAGMA secure_delete=OFF")
    try:
        yield
    finally:
        conn.execute("PRAGMA secure_delete=ON")


@contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` (the write lock, taken up front) ... ``COMMIT``; ``ROLLBACK`` on any
    exception, which propagates. ``conn`` must be in autocommit mode (``isolation_level=None``)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def set_pragma(conn: sqlite3.Connection, pragma: str, wait: float = 60.0) -> None:
    """``PRAGMA pragma``, retried while the file is locked: turning a new file to WAL needs an exclusive
    lock, and SQLite answers "database is locked" at once (no busy handler) when another process is
    creating or converting the same file, as two processes opening a fresh data directory do."""
    deadline = time.monotonic() + wait
    pause = 0.005
    while True:
        try:
            conn.execute(f"PRAGMA {pragma}")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.1)
