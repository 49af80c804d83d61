"""Telling a damaged view file from a sound one, and throwing a damaged one away.

Views are disposable (the log is the only source of truth), so a view file that is not a
SQLite database, is truncated or corrupt, or has another layout is deleted and folded again
rather than failing every search. The checks here are cheap enough for every open:
:func:`file_problem` reads the 100-byte header and the file size; :func:`schema_problem`
compares the tables and columns with the view's DDL. A damage that only shows later (a page
corrupted in the middle of a file) surfaces as a SQLite error, which :func:`is_damage` tells
apart from a busy or locked database; :func:`deep_problem` then runs ``PRAGMA quick_check``.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path

MAGIC = b"SQLite format 3\x00"
SIDE_SUFFIXES = ("-wal", "-shm", "-journal")
_DAMAGE_WORDS = ("malformed", "not a database", "no such table", "no such column", "has no column", "corrupt")


def file_problem(path: str | Path) -> str | None:
    """Why the SQLite file at ``path`` is unusable, from its header and size (None: looks sound).

    A missing or empty file is sound (SQLite creates the database). A file that looks truncated
    is looked at again a few times: another process checkpointing its WAL writes the header
    (with the new page count) before the pages that extend the file.
    """
    for attempt in range(4):
        problem = _header_problem(Path(path))
        if problem is None or not problem.startswith("truncated") or attempt == 3:
            return problem
        time.sleep(0.02)
    return None


def _header_problem(p: Path) -> str | None:
    try:
        size = p.stat().st_size
        if size == 0:
            return None
        with open(p, "rb") as fh:
            header = fh.read(100)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"unreadable ({exc})"
    if len(header) < 100 or not header.startswith(MAGIC):
        return "not a SQLite database"
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    if page_size < 512 or page_size & (page_size - 1):
        return f"corrupt header (page size {page_size})"
    if size % page_size:
        return f"truncated ({size} bytes is not a whole number of {page_size}-byte pages)"
    pages = int.from_bytes(header[28:32], "big")
    if header[24:28] == header[92:96] and pages * page_size > size:  # the header's page count is valid
        return f"truncated ({size} bytes, its header counts {pages} pages of {page_size} bytes)"
    return None


def deep_problem(path: str | Path) -> str | None:
    """:func:`file_problem`, then ``PRAGMA quick_check`` through a read-only connection."""
    problem = file_problem(path)
    if problem is not None or not Path(path).exists():
        return problem
    try:
        conn = sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True, timeout=60.0)
    except sqlite3.Error as exc:
        return f"cannot be opened ({exc})"
    try:
        rows = [r[0] for r in conn.execute("PRAGMA quick_check(5)")]
    except sqlite3.DatabaseError as exc:
        return None if not is_damage(exc) else describe(exc)
    finally:
        conn.close()
    return None if rows == ["ok"] else "corrupt (" + "; ".join(str(r) for r in rows)[:300] + ")"


def schema_problem(path: str | Path, ddl: str) -> str | None:
    """Why the tables of the file at ``path`` do not match ``ddl`` (None: every table and column is there)."""
    if not Path(path).exists() or Path(path).stat().st_size == 0:
        return None
    want = _columns(sqlite3.connect(":memory:"), ddl)
    try:
        conn = sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True, timeout=60.0)
    except sqlite3.Error as exc:
        return f"cannot be opened ({exc})"
    try:
        have = _columns(conn, None)
    except sqlite3.DatabaseError as exc:
        return describe(exc) if is_damage(exc) else None
    finally:
        conn.close()
    if not have:
        return None  # a new, empty database
    for table, cols in want.items():
        if table in have and have[table] != cols:
            return f"another layout (table {table} has columns {', '.join(have[table])})"
    return None


def _columns(conn: sqlite3.Connection, ddl: str | None) -> dict[str, list[str]]:
    try:
        if ddl is not None:
            conn.executescript(ddl)
        tables = [
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        ]
        return {t: [r[1] for r in conn.execute(f'PRAGMA table_info("{t}")')] for t in tables}
    finally:
        if ddl is not None:
            conn.close()


def is_damage(exc: BaseException) -> bool:
    """Whether a SQLite error means a damaged or foreign file (not a busy, locked or read-only database)."""
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    if not isinstance(exc, sqlite3.OperationalError):
        return True  # "file is not a database", "database disk image is malformed", ...
    text = str(exc).lower()
    return any(w in text for w in _DAMAGE_WORDS)


def describe(exc: BaseException) -> str:
    """A short reason for a damage error."""
    return f"damaged ({exc})"


def discard(paths: Iterable[str | Path]) -> None:
    """Delete view files and their SQLite side files (``-wal``, ``-shm``, ``-journal``)."""
    for path in paths:
        p = Path(path)
        for f in (p, *(p.with_name(p.name + s) for s in SIDE_SUFFIXES)):
            with contextlib.suppress(FileNotFoundError):
                f.unlink()
