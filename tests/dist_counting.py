"""A SQLite projection that records every application of every event, to catch double application.

Rows and checkpoint are written in one transaction (the Projection contract), so a process
killed mid-batch leaves neither. ``delay`` slows each batch down so tests can kill mid-run.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path


class CountingProjection:
    name = "counter"

    def __init__(self, path: str | Path, delay: float = 0.0):
        self.path = Path(path)
        self.delay = delay
        self.conn = sqlite3.connect(self.path, isolation_level=None, timeout=30, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.executescript(
            "CREATE TABLE IF NOT EXISTS applied(offset INTEGER NOT NULL, event_id TEXT NOT NULL);"
            "CREATE TABLE IF NOT EXISTS cp(id INTEGER PRIMARY KEY, offset INTEGER NOT NULL);"
        )

    def checkpoint(self) -> int:
        r = self.conn.execute("SELECT offset FROM cp WHERE id = 1").fetchone()
        return -1 if r is None else r[0]

    def apply_batch(self, events) -> None:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            r = self.conn.execute("SELECT offset FROM cp WHERE id = 1").fetchone()
            cp = -1 if r is None else r[0]
            todo = [e for e in events if e.offset > cp]
            if todo:
                assert todo[0].offset == cp + 1, f"gap: checkpoint {cp}, next event {todo[0].offset}"
                self.conn.executemany("INSERT INTO applied VALUES (?, ?)", [(e.offset, e.event_id) for e in todo])
                if self.delay:
                    time.sleep(self.delay)
                self.conn.execute("INSERT OR REPLACE INTO cp(id, offset) VALUES (1, ?)", (todo[-1].offset,))
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    def counts(self) -> dict[int, int]:
        return dict(self.conn.execute("SELECT offset, COUNT(*) FROM applied GROUP BY offset"))

    def reset(self) -> None:
        self.conn.executescript("DELETE FROM applied; DELETE FROM cp;")

    def close(self) -> None:
        self.conn.close()


def partition_path(data_dir: Path, partition: int | None) -> Path:
    """The counting view's file: one for a single log, one per partition for a consumer group."""
    return data_dir / ("counter.sqlite" if partition is None else f"counter.p{partition}.sqlite")


def build(config, ledger, partition: int | None = None) -> CountingProjection:
    """View factory for ``[consumers.views.counter] factory = "tests.dist_counting:build"``; with
    ``partition`` (a consumer group) the view of that partition, in a file of its own."""
    section = config.section("consumers").get("views", {}).get("counter", {})
    return CountingProjection(partition_path(config.data_dir, partition), delay=float(section.get("delay", 0.0)))
