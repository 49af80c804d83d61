"""The local state of one Kafka log handle: a SQLite cache of what it has consumed from the topics.

A ``KafkaLog`` handle derives the ledger from its sequencer and data topics. Instead of holding
every event in memory it keeps, in one SQLite file, a row per accepted event (its encoded record,
stream, version, timestamp and position), the refs index and the tailing position (next sequencer
offset, each partition's last accepted record and hash). Memory is bounded (a small cache of
decoded events) whatever the log's length, and a handle that reopens the same file only reads the
topics' tail since its last position: the snapshot + tail design.

The topics stay the only source of truth: the file is a cache that can be deleted at any time,
and ``KafkaLog`` rebuilds it from the topics when it is missing or no longer matches them.

One process at a time uses a given file (an exclusive ``flock``); a second handle on the same data
directory gets a private temporary file instead (it replays the topic, still in bounded memory).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import tempfile
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO

import orjson

from ledger.canonical import GENESIS_HASH
from ledger.events import Event
from ledger.log import refs_of

CACHE_EVENTS = 2048  # decoded events kept in memory per handle
MAX_PROBLEMS = 50  # problems remembered (the first ones; verify reports five)
FORMAT = 1  # bump when the schema changes: an old file is then rebuilt

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    offset INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE, stream TEXT NOT NULL,
    version INTEGER NOT NULL, ts INTEGER NOT NULL, part INTEGER NOT NULL, koff INTEGER NOT NULL,
    hash TEXT NOT NULL, value BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS events_stream ON events (stream, offset);
CREATE INDEX IF NOT EXISTS events_ts ON events (ts, offset);
CREATE TABLE IF NOT EXISTS refs (ref TEXT NOT NULL, offset INTEGER NOT NULL, PRIMARY KEY (ref, offset)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
"""


class LocalState:
    """One handle's consumed ledger on disk, with its tailing position in memory (bounded)."""

    def __init__(self, path: Path | None, topic: str, decode: Callable[[bytes], tuple[Event, bytes]]):
        self.topic = topic
        self._decode = decode
        self._lock_file: IO[bytes] | None = None
        self._temp: str | None = None
        if path is not None and self._try_lock(path):
            self.path = path
        else:
            fd, self._temp = tempfile.mkstemp(prefix=f"memledger-kafka-{topic[:40]}-", suffix=".sqlite")
            os.close(fd)
            self.path = Path(self._temp)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._cache: OrderedDict[int, Event] = OrderedDict()
        self._in_tx = False
        self.fetched = 0  # records this handle fetched from the broker (data and sequencer)
        self._reset_memory()
        self.restored = self._load()

    def _try_lock(self, path: Path) -> bool:
        path.parent.mkdir(parents=True, exist_ok=True)
        f = open(path.with_name(path.name + ".lock"), "ab")  # noqa: SIM115 - held until close()
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            return False
        self._lock_file = f
        return True

    def _reset_memory(self) -> None:
        self.head = -1
        self.head_hash = GENESIS_HASH
        self.last_ts = 0
        self.part_hash: dict[int, str] = {}
        self.part_last: dict[int, int] = {}  # partition -> Kafka offset of its last accepted record
        self.seq_pos = 0
        self.rejected = 0
        self.problems: list[str] = []
        self._cache.clear()
        self._saved = (-1, -1, -1)

    def _load(self) -> bool:
        rows = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        if not rows:
            return False
        try:
            m = orjson.loads(rows["state"])
            if m["format"] != FORMAT or m["topic"] != self.topic:
                raise ValueError("another format or topic")
            self.head, self.head_hash, self.last_ts = int(m["head"]), str(m["head_hash"]), int(m["last_ts"])
            self.part_hash = {int(k): str(v) for k, v in m["part_hash"].items()}
            self.part_last = {int(k): int(v) for k, v in m["part_last"].items()}
            self.seq_pos, self.rejected = int(m["seq_pos"]), int(m["rejected"])
            self.problems = [str(p) for p in m["problems"]]
            self._saved = self._mark()
        except (KeyError, TypeError, ValueError, orjson.JSONDecodeError):
            self.clear()
            return False
        return True

    def clear(self) -> None:
        """Forget everything (the cache no longer matches the topics: it is rebuilt from them)."""
        self.rollback()
        self._db.execute("BEGIN")
        for table in ("events", "refs", "meta"):
            self._db.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names
        self._db.execute("COMMIT")
        self._reset_memory()

    # -- writes (inside one transaction until commit()) ----------------------------------
    def _begin(self) -> None:
        if not self._in_tx:
            self._db.execute("BEGIN")
            self._in_tx = True

    def add(self, event: Event, value: bytes, part: int, koff: int) -> None:
        """Record one accepted event read from data record ``part``@``koff`` (``value`` its bytes)."""
        self._begin()
        self._db.execute(
            "INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?)",
            (event.offset, event.event_id, event.stream, event.version, event.ts_us, part, koff, event.hash, value),
        )
        refs = refs_of(event.payload)
        if refs:
            self._db.executemany("INSERT OR IGNORE INTO refs VALUES (?,?)", [(r, event.offset) for r in refs])
        self.head, self.head_hash, self.last_ts = event.offset, event.hash, event.ts_us
        self.part_last[part] = koff
        self._remember(event)

    def note_problem(self, problem: str) -> None:
        """Remember a problem seen while reading (only the first ``MAX_PROBLEMS``)."""
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(problem)

    def _mark(self) -> tuple[int, int, int]:
        return (self.seq_pos, self.rejected, len(self.problems))

    def commit(self) -> None:
        """Persist the rows added so far and the tailing position, atomically (nothing to do when
        nothing changed since the last commit: reads at the head write nothing)."""
        if not self._in_tx and self._mark() == self._saved:
            return
        self._begin()
        state = {
            "format": FORMAT,
            "topic": self.topic,
            "head": self.head,
            "head_hash": self.head_hash,
            "last_ts": self.last_ts,
            "part_hash": {str(k): v for k, v in self.part_hash.items()},
            "part_last": {str(k): v for k, v in self.part_last.items()},
            "seq_pos": self.seq_pos,
            "rejected": self.rejected,
            "problems": self.problems,
        }
        self._db.execute("INSERT OR REPLACE INTO meta VALUES ('state', ?)", (orjson.dumps(state),))
        self._db.execute("COMMIT")
        self._in_tx = False
        self._saved = self._mark()

    def rollback(self) -> None:
        if self._in_tx:
            self._db.execute("ROLLBACK")
            self._in_tx = False

    def close(self) -> None:
        """Persist, close the file and release it (a temporary file is deleted)."""
        try:
            if self._in_tx:
                self.commit()
        finally:
            self._db.close()
            if self._lock_file is not None:
                self._lock_file.close()
            if self._temp is not None:
                for suffix in ("", "-wal", "-shm"):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(self._temp + suffix)

    # -- reads -------------------------------------------------------------------------
    def _remember(self, event: Event) -> None:
        self._cache[event.offset] = event
        if len(self._cache) > CACHE_EVENTS:
            self._cache.popitem(last=False)

    def cached(self) -> int:
        """How many decoded events this handle holds in memory (bounded by ``CACHE_EVENTS``)."""
        return len(self._cache)

    def _events(self, sql: str, args: Iterable[object]) -> list[Event]:
        out = []
        for offset, value in self._db.execute(sql, tuple(args)):
            e = self._cache.get(offset)
            if e is None:
                e = self._decode(value)[0]
            out.append(e)
        return out

    def event(self, offset: int) -> Event | None:
        e = self._cache.get(offset)
        if e is not None:
            return e
        got = self._events("SELECT offset, value FROM events WHERE offset = ?", (offset,))
        return got[0] if got else None

    def range(self, start: int, stop: int) -> list[Event]:
        """Events ``start..stop`` inclusive (callers keep ranges short)."""
        return self._events(
            "SELECT offset, value FROM events WHERE offset BETWEEN ? AND ? ORDER BY offset", (start, stop)
        )

    def by_ids(self, ids: Iterable[str]) -> dict[str, Event]:
        out = {}
        for i in ids:
            got = self._events("SELECT offset, value FROM events WHERE event_id = ?", (i,))
            if got:
                out[i] = got[0]
        return out

    def has_id(self, event_id: str) -> bool:
        return self._db.execute("SELECT 1 FROM events WHERE event_id = ?", (event_id,)).fetchone() is not None

    def stream_page(self, stream: str, start_version: int, end: int, after: int, limit: int) -> list[Event]:
        return self._events(
            "SELECT offset, value FROM events WHERE stream = ? AND offset > ? AND offset <= ? AND version >= ?"
            " ORDER BY offset LIMIT ?",
            (stream, after, end, start_version, limit),
        )

    def refs_page(self, ref: str, end: int, after: int, limit: int) -> list[Event]:
        return self._events(
            "SELECT e.offset, e.value FROM refs r JOIN events e ON e.offset = r.offset"
            " WHERE r.ref = ? AND r.offset > ? AND r.offset <= ? ORDER BY r.offset LIMIT ?",
            (ref, after, end, limit),
        )

    def stream_version_at(self, stream: str, offset: int) -> int:
        row = self._db.execute(
            "SELECT version FROM events WHERE stream = ? AND offset <= ? ORDER BY offset DESC LIMIT 1", (stream, offset)
        ).fetchone()
        return int(row[0]) if row else 0

    def streams(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT DISTINCT stream FROM events ORDER BY stream")]

    def offset_at(self, ts_us: int) -> int:
        row = self._db.execute(
            "SELECT offset FROM events WHERE ts <= ? ORDER BY ts DESC, offset DESC LIMIT 1", (ts_us,)
        ).fetchone()
        return int(row[0]) if row else -1

    def position(self, offset: int) -> tuple[int, int] | None:
        row = self._db.execute("SELECT part, koff FROM events WHERE offset = ?", (offset,)).fetchone()
        return (int(row[0]), int(row[1])) if row else None

    def raw_rows(self, page: int = 2000) -> Iterator[tuple[Event, bytes]]:
        """Every event with its canonical payload bytes, in offset order, a page at a time."""
        after = -1
        while True:
            rows = self._db.execute(
                "SELECT offset, value FROM events WHERE offset > ? ORDER BY offset LIMIT ?", (after, page)
            ).fetchall()
            if not rows:
                return
            for offset, value in rows:
                yield self._decode(value)
                after = offset
