"""Storage of counterfactual branches: one SQLite database (``branches.sqlite``) beside the log.

It holds the branch registry and every branch's *own* events (never a copy of the base log),
each branch with its own hash chain that continues from the hash of its fork point.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger.backends.sqlite_log import events_table_ddl
from ledger.storage.file_modes import private_dir
from ledger.storage.sqlite_pool import WAL_PRAGMAS, ThreadConnections

_DDL = (
    """
CREATE TABLE IF NOT EXISTS branches(
  name TEXT PRIMARY KEY,
  parent TEXT,
  fork_offset INTEGER NOT NULL,
  fork_hash TEXT NOT NULL,
  fork_ts_us INTEGER NOT NULL,
  created_us INTEGER NOT NULL,
  created_by TEXT NOT NULL,
  status TEXT NOT NULL DEFAULT 'active',
  event_id TEXT
);
"""
    + events_table_ddl("branch_events", scope="branch")
    + """
CREATE INDEX IF NOT EXISTS branch_events_ts ON branch_events(branch, ts_us);
CREATE TABLE IF NOT EXISTS branch_grants(
  branch TEXT NOT NULL, principal TEXT NOT NULL, role TEXT NOT NULL,
  PRIMARY KEY(branch, principal, role)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS branch_refs(
  branch TEXT NOT NULL, ref TEXT NOT NULL, offset INTEGER NOT NULL,
  PRIMARY KEY(branch, ref, offset)
) WITHOUT ROWID;
"""
)

ACTIVE, MERGED = "active", "merged"  # a dropped branch is deleted (its drop is on main's log)


@dataclass(frozen=True, slots=True)
class BranchInfo:
    """One row of the branch registry."""

    name: str
    parent: str | None  # None: forked from main
    fork_offset: int
    fork_hash: str
    fork_ts_us: int
    created_us: int
    created_by: str
    status: str
    event_id: str | None

    def to_dict(self) -> dict[str, Any]:
        from ledger.events import us_to_iso

        return {
            "name": self.name,
            "parent": self.parent or "main",
            "fork_offset": self.fork_offset,
            "fork_hash": self.fork_hash,
            "created_at": us_to_iso(self.created_us),
            "created_by": self.created_by,
            "status": self.status,
            "event_id": self.event_id,
        }


_INFO_COLS = "name, parent, fork_offset, fork_hash, fork_ts_us, created_us, created_by, status, event_id"


class BranchStore:
    """Connections to ``branches.sqlite`` (WAL, one connection per thread)."""

    def __init__(self, path: str | Path, synchronous: str = "FULL"):
        self.path = Path(path)
        private_dir(self.path.parent)
        self._synchronous = synchronous
        self._pool = ThreadConnections(self.path, (*WAL_PRAGMAS, f"synchronous={synchronous}"))
        with self.conn() as c:
            c.executescript(_DDL)

    def conn(self) -> sqlite3.Connection:
        """This thread's connection (autocommit; callers open explicit transactions)."""
        return self._pool.get()

    def close(self) -> None:
        self._pool.close()

    # -- registry ----------------------------------------------------------------------
    def info(self, name: str) -> BranchInfo | None:
        r = self.conn().execute(f"SELECT {_INFO_COLS} FROM branches WHERE name = ?", (name,)).fetchone()
        return BranchInfo(*r) if r else None

    def all(self) -> list[BranchInfo]:
        return [BranchInfo(*r) for r in self.conn().execute(f"SELECT {_INFO_COLS} FROM branches ORDER BY created_us")]

    def children(self, name: str) -> list[BranchInfo]:
        rows = self.conn().execute(f"SELECT {_INFO_COLS} FROM branches WHERE parent = ? ORDER BY created_us", (name,))
        return [BranchInfo(*r) for r in rows]

    def insert(self, conn: sqlite3.Connection, info: BranchInfo) -> None:
        conn.execute(
            f"INSERT INTO branches({_INFO_COLS}) VALUES (?,?,?,?,?,?,?,?,?)",
            (
                info.name,
                info.parent,
                info.fork_offset,
                info.fork_hash,
                info.fork_ts_us,
                info.created_us,
                info.created_by,
                info.status,
                info.event_id,
            ),
        )

    def set_status(self, conn: sqlite3.Connection, name: str, status: str) -> None:
        conn.execute("UPDATE branches SET status = ? WHERE name = ?", (status, name))

    def grants(self, name: str) -> dict[str, list[str]]:
        """Principal -> sorted roles granted on branch ``name`` (the creator's implicit ownership excluded)."""
        out: dict[str, list[str]] = {}
        for principal, role in self.conn().execute(
            "SELECT principal, role FROM branch_grants WHERE branch = ? ORDER BY principal, role", (name,)
        ):
            out.setdefault(principal, []).append(role)
        return out

    def descendants(self, name: str) -> list[BranchInfo]:
        """Every branch forked (directly or not) from ``name``, children before their own children."""
        out: list[BranchInfo] = []
        todo = [name]
        while todo:
            kids = self.children(todo.pop(0))
            out += kids
            todo += [k.name for k in kids]
        return out

    def event_count(self, name: str) -> int:
        return self.conn().execute("SELECT COUNT(*) FROM branch_events WHERE branch = ?", (name,)).fetchone()[0]
