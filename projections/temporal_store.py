"""``TemporalSqliteView``: the shared machinery of the embedded keyword and graph views.

One SQLite file per view. Every memory version is one row of ``versions`` with the offset
interval ``[valid_from, valid_to)`` in which it was current; the version itself is computed by
``ledger.memory_state.apply_event`` (the one definition of memory state), so the view agrees
with ``Ledger.get`` by construction. Texts live in ``texts`` (one row per distinct text of a
memory; state changes reuse it), so subclasses index a text once, not once per version.

``apply_batch`` writes the rows and the checkpoint in one ``BEGIN IMMEDIATE`` transaction:
a crash leaves the batch applied with its checkpoint, or neither. ``subject.forgotten`` purges
every row of the subject's memories with ``secure_delete`` on and truncates the WAL, so the
text leaves the view's files.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from operator import attrgetter
from pathlib import Path
from typing import Any

import orjson

from ledger import events as ev
from ledger.events import Event
from ledger.memory_state import (
    CONTENT_EVENTS,
    MEMORY_EVENTS,
    SCOPE_KEYS,
    Erasure,
    MemoryState,
    Opener,
    apply_event,
    erasure_of,
)
from ledger.rules.filters import BUILTIN_FIELDS, Filter, fields_of, record_of, scope_pins
from ledger.storage.file_modes import private_dir
from ledger.storage.sqlite_pool import WAL_PRAGMAS, ThreadConnections, dropping_without_zeroing, immediate
from projections.base import OPEN, VersionRow

MAX_PIN_VALUES = 500  # scope values bound in one index lookup
_COLUMN_FIELDS = frozenset({"id", "cube", "state", "subject"})  # filter fields a version row has as columns

_BASE_DDL = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS versions(
  vid INTEGER PRIMARY KEY,
  memory_id TEXT NOT NULL,
  cube TEXT NOT NULL,
  state TEXT NOT NULL,
  valid_from INTEGER NOT NULL,
  valid_to INTEGER NOT NULL,
  exists_ INTEGER NOT NULL,
  text_id INTEGER,
  subject TEXT,
  meta TEXT NOT NULL,
  blob BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS versions_mem ON versions(memory_id, valid_to);
CREATE INDEX IF NOT EXISTS versions_text ON versions(text_id, valid_from, valid_to);
CREATE INDEX IF NOT EXISTS versions_subject ON versions(subject) WHERE subject IS NOT NULL;
CREATE TABLE IF NOT EXISTS version_scopes(
  vid INTEGER NOT NULL,
  key TEXT NOT NULL,
  value TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS version_scopes_value ON version_scopes(key, value, vid);
CREATE INDEX IF NOT EXISTS version_scopes_vid ON version_scopes(vid);
CREATE TABLE IF NOT EXISTS texts(
  text_id INTEGER PRIMARY KEY,
  memory_id TEXT NOT NULL,
  length INTEGER NOT NULL,
  text TEXT
);
"""

# every field of MemoryState but the text (which lives in ``texts``), in declaration order
_STATE_FIELDS = tuple(f.name for f in fields(MemoryState) if f.name != "text")
_state_values = attrgetter(*_STATE_FIELDS)


def state_blob(s: MemoryState) -> bytes:
    """A memory state without its text, as bytes (a JSON array in field order)."""
    return orjson.dumps(_state_values(s))


def state_from_blob(blob: bytes, text: str | None) -> MemoryState:
    """Inverse of :func:`state_blob`."""
    d = orjson.loads(blob)
    return MemoryState(d[0], d[1], text, *d[2:])


def visible_sql(alias: str = "v") -> str:
    """SQL condition: the version row was current at offset ``?`` (bind the offset twice)."""
    return f"{alias}.valid_from <= ? AND {alias}.valid_to > ?"


@dataclass(slots=True)
class Current:
    """The current version row of a memory, as cached during a batch."""

    vid: int
    state: MemoryState
    text_id: int | None
    text_len: int = 0


class TemporalSqliteView:
    """Base of the embedded views. Subclasses add tables and index new texts and events."""

    name = "temporal"
    layout = "temporal-3"  # stored in meta; a file of another layout is dropped and folded again
    rebuild_batch_size = 10_000  # events per transaction when folding the whole log (``projections.base.rebuild``)
    store_text = False  # keep the text itself in ``texts`` (the keyword view does, to show hits)

    def __init__(self, path: str | Path, opener: Opener | None = None):
        self.path = Path(path)
        private_dir(self.path.parent)
        self.opener = opener
        self._pool = ThreadConnections(
            self.path,
            (
                *WAL_PRAGMAS,
                "synchronous=NORMAL",
                "secure_delete=ON",
                "cache_size=-65536",
                "temp_store=MEMORY",
                "wal_autocheckpoint=16384",
            ),
        )
        self._generation = -1
        self.committed: int | None = None
        self.dropped_layout: str | None = None  # why an existing file was dropped at open (another layout)
        self._discard_buffers()
        self._create()

    # -- connections ---------------------------------------------------------------------
    def conn(self) -> sqlite3.Connection:
        """This thread's connection to the view file."""
        return self._pool.get()

    def close(self) -> None:
        """Close every connection of this view."""
        self._pool.close()

    def _create(self) -> None:
        c = self.conn()
        tables = [r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        c.executescript(_BASE_DDL)  # meta exists from here on
        found = c.execute("SELECT value FROM meta WHERE key = 'layout'").fetchone()
        if found is None or found[0] != self.layout:
            if found is not None or tables:  # not a new file: say what was dropped
                self.dropped_layout = (
                    f"of another layout ({found[0]!r}, expected {self.layout!r})"
                    if found
                    else "not a view file (no layout recorded)"
                )
            self.reset()  # a new file, or one written by another layout: views are disposable, fold again
        else:
            c.executescript(self._ddl())

    def _ddl(self) -> str:
        """Extra tables of the subclass."""
        return ""

    # -- Projection protocol -------------------------------------------------------------
    def checkpoint(self) -> int:
        row = self.conn().execute("SELECT value FROM meta WHERE key = 'checkpoint'").fetchone()
        return -1 if row is None else int(row[0])

    def checkpoint_hash(self) -> str | None:
        """Hash of the log event at the checkpoint when it was folded (None: nothing folded, or not recorded)."""
        row = self.conn().execute("SELECT value FROM meta WHERE key = 'checkpoint_hash'").fetchone()
        return None if row is None else str(row[0])

    def reset(self) -> None:
        c = self.conn()
        with dropping_without_zeroing(c):
            self._reset(c)
        self._after_purge()

    def _reset(self, c: sqlite3.Connection) -> None:
        with immediate(c):
            gen = c.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
            tables = [
                r[0]
                for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
            ]
            for t in tables:  # every table, also those of an older layout
                c.execute(f'DROP TABLE IF EXISTS "{t}"')
            for stmt in (_BASE_DDL + self._ddl()).split(";"):
                if stmt.strip():
                    c.execute(stmt)
            self._generation = int(gen[0] if gen else 0) + 1
            c.execute("INSERT INTO meta(key, value) VALUES ('generation', ?)", (self._generation,))
            c.execute("INSERT INTO meta(key, value) VALUES ('layout', ?)", (self.layout,))

    def apply_batch(self, events: Sequence[Event]) -> None:
        if not events:
            return
        c = self.conn()
        purged = False
        try:
            with immediate(c):
                done = self.checkpoint()
                gen = c.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
                if (gen[0] if gen else 0) != self._generation:  # another process purged or reset: drop id caches
                    self._invalidate_caches()
                    self._generation = gen[0] if gen else 0
                todo: list[Event] = []
                last = done
                for e in events:
                    if e.offset <= done:
                        continue
                    if e.offset <= last:
                        raise ValueError(f"events out of order: {e.offset} after {last}")
                    last = e.offset
                    todo.append(e)
                cache = self._prefetch(c, todo)
                self._start_buffers(c)
                for e in todo:
                    erasure = None if e.type in MEMORY_EVENTS else erasure_of(e)
                    if e.type in MEMORY_EVENTS:
                        self._apply_memory_event(c, e, cache)
                    elif erasure is not None:
                        self._flush(c)
                        self._purge(c, erasure, cache)
                        self._generation += 1
                        c.execute(
                            "INSERT OR REPLACE INTO meta(key, value) VALUES ('generation', ?)", (self._generation,)
                        )
                        self._start_buffers(c)
                        purged = True
                    else:
                        self._on_other_event(c, e)
                self._flush(c)
                if last > done:
                    c.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('checkpoint', ?)", (last,))
                    c.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('checkpoint_hash', ?)", (todo[-1].hash,))
        except BaseException:
            self._discard_buffers()
            raise
        self.committed = last  # the checkpoint this object wrote (others may write after it)
        if purged:
            self._after_purge()

    # -- buffered writes (one executemany per table and batch) ---------------------------
    def _start_buffers(self, c: sqlite3.Connection) -> None:
        self._next_vid = (c.execute("SELECT MAX(vid) FROM versions").fetchone()[0] or 0) + 1
        self._next_text = (c.execute("SELECT MAX(text_id) FROM texts").fetchone()[0] or 0) + 1
        self._buf_versions: dict[int, list[Any]] = {}
        self._buf_closes: list[tuple[int, int]] = []
        self._buf_texts: list[tuple[Any, ...]] = []
        self._buf_scopes: list[tuple[int, str, str]] = []

    def _discard_buffers(self) -> None:
        self._buf_versions, self._buf_closes, self._buf_texts = {}, [], []
        self._buf_scopes = []

    def _flush(self, c: sqlite3.Connection) -> None:
        """Write the buffered rows of the batch (called before a purge and at the end)."""
        if self._buf_texts:
            c.executemany("INSERT INTO texts(text_id, memory_id, length, text) VALUES (?,?,?,?)", self._buf_texts)
        if self._buf_versions:
            c.executemany(
                "INSERT INTO versions(vid, memory_id, cube, state, valid_from, valid_to, exists_, text_id, "
                "subject, meta, blob) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                list(self._buf_versions.values()),
            )
        if self._buf_closes:
            c.executemany("UPDATE versions SET valid_to = ? WHERE vid = ?", self._buf_closes)
        if self._buf_scopes:
            c.executemany("INSERT INTO version_scopes(vid, key, value) VALUES (?,?,?)", self._buf_scopes)
        self._flush_extra(c)
        self._discard_buffers()

    def _flush_extra(self, c: sqlite3.Connection) -> None:
        """Write the subclass's buffered rows."""

    def _invalidate_caches(self) -> None:
        """Forget cached row ids (terms, entities): the file was purged or reset elsewhere."""

    # -- folding -------------------------------------------------------------------------
    def _prefetch(self, c: sqlite3.Connection, events: Sequence[Event]) -> dict[str, Current | None]:
        """The current version of every memory the batch touches, in one query per 500 ids."""
        ids: set[str] = set()
        for e in events:
            if e.type in MEMORY_EVENTS:
                ids.add(e.payload["memory_id"])
                ids.update(e.payload.get("sources") or ())
        cache: dict[str, Current | None] = dict.fromkeys(ids)
        for chunk in _chunks(sorted(ids), 500):
            marks = ",".join("?" * len(chunk))
            for vid, mid, blob, text_id, text, length in c.execute(
                "SELECT v.vid, v.memory_id, v.blob, v.text_id, t.text, t.length FROM versions v LEFT JOIN texts t "
                f"ON t.text_id = v.text_id WHERE v.memory_id IN ({marks}) AND v.valid_to = ?",
                (*chunk, OPEN),
            ):
                cache[mid] = Current(vid, state_from_blob(blob, text), text_id, length or 0)
        return cache

    def _load_current(self, c: sqlite3.Connection, mid: str, cache: dict[str, Current | None]) -> Current | None:
        if mid in cache:
            return cache[mid]
        row = c.execute(
            "SELECT v.vid, v.blob, v.text_id, t.text, t.length FROM versions v LEFT JOIN texts t "
            "ON t.text_id = v.text_id WHERE v.memory_id = ? AND v.valid_to = ?",
            (mid, OPEN),
        ).fetchone()
        cur = None if row is None else Current(row[0], state_from_blob(row[1], row[3]), row[2], row[4] or 0)
        cache[mid] = cur
        return cur

    def _apply_memory_event(self, c: sqlite3.Connection, e: Event, cache: dict[str, Current | None]) -> None:
        p = e.payload
        ids = [p["memory_id"], *(p.get("sources") or [])] if e.type == ev.MEMORY_MERGED else [p["memory_id"]]
        states: dict[str, MemoryState] = {}
        for mid in ids:
            cur = self._load_current(c, mid, cache)
            if cur is not None:
                states[mid] = cur.state
        changed = apply_event(states, e, self.opener)
        for mid in dict.fromkeys(changed):
            new = states.get(mid)
            if new is None:
                continue
            prev = cache.get(mid)
            if prev is not None:
                row = self._buf_versions.get(prev.vid)
                if row is not None:
                    row[5] = e.offset
                else:
                    self._buf_closes.append((e.offset, prev.vid))
            content = e.type in CONTENT_EVENTS and mid == p["memory_id"] and p.get("exists", True)
            if content or prev is None:
                text_id, text_len = self._new_text(c, mid, new) if new.text is not None else (None, 0)
            else:
                text_id, text_len = prev.text_id, prev.text_len
            vid = self._next_vid
            self._next_vid += 1
            self._buf_versions[vid] = [
                vid,
                mid,
                new.cube,
                new.state,
                e.offset,
                OPEN,
                int(new.exists),
                text_id,
                new.subject,
                orjson.dumps(new.metadata).decode(),
                state_blob(new),
            ]
            self._buf_scopes += scope_rows(vid, new.metadata)
            cur = Current(vid, new, text_id, text_len)
            cache[mid] = cur
            self._on_version(c, cur, prev, e)

    def _new_text(self, c: sqlite3.Connection, mid: str, s: MemoryState) -> tuple[int, int]:
        text = s.text or ""
        length = self._text_length(text)
        text_id = self._next_text
        self._next_text += 1
        self._buf_texts.append((text_id, mid, length, text if self.store_text else None))
        self._index_text(c, text_id, s, text)
        return text_id, length

    # -- hooks ---------------------------------------------------------------------------
    def _text_length(self, text: str) -> int:
        return 0

    def _index_text(self, c: sqlite3.Connection, text_id: int, s: MemoryState, text: str) -> None:
        """Index a new text (called once per distinct text of a memory)."""

    def _on_version(self, c: sqlite3.Connection, cur: Current, prev: Current | None, e: Event) -> None:
        """A new version ``cur`` was buffered (``prev`` is the version it superseded, if any)."""

    def _on_other_event(self, c: sqlite3.Connection, e: Event) -> None:
        """A non-memory event (links, cubes, reads, ...)."""

    def _purge_texts(self, c: sqlite3.Connection, text_ids: list[int], memory_ids: list[str]) -> None:
        """Remove the subclass's rows derived from these texts and memories."""

    # -- right to be forgotten -----------------------------------------------------------
    def _purge(self, c: sqlite3.Connection, erasure: Erasure, cache: dict[str, Current | None]) -> None:
        """Delete every version and text of the erased memories: those of the erased subjects and
        those the erasure lists (derived memories sealed under an erased key)."""
        found: dict[str, None] = {}
        for subject in erasure.subjects:
            found.update(
                (r[0], None) for r in c.execute("SELECT DISTINCT memory_id FROM versions WHERE subject = ?", (subject,))
            )
        for chunk in _chunks(list(erasure.memory_ids), 500):
            marks = ",".join("?" * len(chunk))
            found.update(
                (r[0], None)
                for r in c.execute(f"SELECT DISTINCT memory_id FROM versions WHERE memory_id IN ({marks})", chunk)
            )
        mids = list(found)
        if not mids:
            return
        text_ids: list[int] = []
        for chunk in _chunks(mids, 500):
            marks = ",".join("?" * len(chunk))
            text_ids += [r[0] for r in c.execute(f"SELECT text_id FROM texts WHERE memory_id IN ({marks})", chunk)]
        self._purge_texts(c, text_ids, mids)
        for chunk in _chunks(mids, 500):
            marks = ",".join("?" * len(chunk))
            c.execute(
                f"DELETE FROM version_scopes WHERE vid IN (SELECT vid FROM versions WHERE memory_id IN ({marks}))",
                chunk,
            )
            c.execute(f"DELETE FROM versions WHERE memory_id IN ({marks})", chunk)
            c.execute(f"DELETE FROM texts WHERE memory_id IN ({marks})", chunk)
        for mid in mids:
            cache[mid] = None

    def _after_purge(self) -> None:
        """Push deleted pages out of the WAL so no copy of purged text survives on disk."""
        c = self.conn()
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # -- reads ---------------------------------------------------------------------------
    def memory_ids_present(self, memory_ids: Iterable[str]) -> list[str]:
        """Which of ``memory_ids`` still have a version or a text in this view (erasure residue)."""
        c = self.conn()
        found: set[str] = set()
        for chunk in _chunks(list(dict.fromkeys(memory_ids)), 500):
            marks = ",".join("?" * len(chunk))
            for table in ("versions", "texts"):
                found.update(
                    r[0]
                    for r in c.execute(f"SELECT DISTINCT memory_id FROM {table} WHERE memory_id IN ({marks})", chunk)
                )
        return sorted(found)

    def versions_at(self, memory_ids: Iterable[str], as_of: int | None = None) -> dict[str, VersionRow]:
        """The version of each memory current at ``as_of`` (None: head); absent ids are left out."""
        at = OPEN - 1 if as_of is None else as_of
        out: dict[str, VersionRow] = {}
        c = self.conn()
        ids = list(dict.fromkeys(memory_ids))
        for chunk in _chunks(ids, 500):
            marks = ",".join("?" * len(chunk))
            for r in c.execute(
                "SELECT v.vid, v.memory_id, v.cube, v.state, v.valid_from, v.valid_to, v.text_id, v.blob, t.text "
                f"FROM versions v LEFT JOIN texts t ON t.text_id = v.text_id WHERE v.memory_id IN ({marks}) "
                "AND v.valid_from <= ? AND v.valid_to > ?",
                (*chunk, at, at),
            ):
                m = state_from_blob(r[7], r[8])
                out[r[1]] = VersionRow(
                    r[1],
                    r[2],
                    r[3],
                    r[4],
                    r[5],
                    m.subject,
                    m.exists,
                    m.metadata,
                    m.tags,
                    memory=m,
                    vid=r[0],
                    text_id=r[6],
                )
        return out

    def matching(
        self,
        flt: Filter,
        as_of: int | None = None,
        cubes: Sequence[str] | None = None,
        states: Iterable[str] | None = None,
    ) -> dict[str, int | None]:
        """The memories (id -> text id) whose version current at ``as_of`` (None: head) exists, is
        in ``cubes`` and ``states`` (None: any) and matches ``flt``: the pre-filter of a filtered
        search. Scope pins of the filter (``ledger.rules.filters.scope_pins``) are answered by the
        scope index; every remaining candidate is checked against the whole filter."""
        at = OPEN - 1 if as_of is None else as_of
        # a filter on metadata, id, cube, state or subject reads the metadata column, not the whole state
        whole = any(f in BUILTIN_FIELDS and f not in _COLUMN_FIELDS for f in fields_of(flt.source))
        sql = (
            f"SELECT v.memory_id, v.text_id, v.cube, v.state, v.subject, {'v.blob' if whole else 'v.meta'} "
            "FROM versions v WHERE v.valid_from <= ? AND v.valid_to > ? AND v.exists_ = 1"
        )
        args: list[Any] = [at, at]
        if cubes is not None:
            sql += f" AND v.cube IN ({','.join('?' * len(cubes))})"
            args += list(cubes)
        if states is not None:
            wanted = list(states)
            sql += f" AND v.state IN ({','.join('?' * len(wanted))})"
            args += wanted
        for key, values in sorted(scope_pins(flt.source).items()):
            if not values:
                return {}
            vals = sorted(values)[:MAX_PIN_VALUES]
            if len(vals) < len(values):
                continue  # too many to bind: the filter itself decides
            sql += (
                " AND v.vid IN (SELECT s.vid FROM version_scopes s WHERE s.key = ? "
                f"AND s.value IN ({','.join('?' * len(vals))}))"
            )
            args += [key, *vals]
        out: dict[str, int | None] = {}
        for mid, text_id, cube, state, subject, data in self.conn().execute(sql, args):
            if whole:
                record = record_of(state_from_blob(data, None))
            else:
                record = {"id": mid, "cube": cube, "state": state, "subject": subject, "metadata": orjson.loads(data)}
            if flt.matches(record):
                out[mid] = text_id
        return out

    def matching_states(
        self, flt: Filter, as_of: int | None = None, cubes: Sequence[str] | None = None
    ) -> list[MemoryState]:
        """The whole state (text included, where the view stores it) of every memory ``matching``
        selects: a filtered listing answered by the view instead of a fold of the log."""
        return [r.full() for r in self.versions_at(self.matching(flt, as_of, cubes), as_of).values()]

    def memories_at(self, as_of: int | None = None, cubes: Sequence[str] | None = None) -> dict[str, MemoryState]:
        """Every memory (with ``exists``) current at ``as_of``: the view's answer to ``fold``."""
        at = OPEN - 1 if as_of is None else as_of
        sql = (
            "SELECT v.blob, t.text FROM versions v LEFT JOIN texts t ON t.text_id = v.text_id "
            "WHERE v.valid_from <= ? AND v.valid_to > ?"
        )
        args: list[Any] = [at, at]
        if cubes is not None:
            sql += f" AND v.cube IN ({','.join('?' * len(cubes))})"
            args += list(cubes)
        out = {}
        for blob, text in self.conn().execute(sql, args):
            s = state_from_blob(blob, text)
            out[s.memory_id] = s
        return out


def scope_rows(vid: int, metadata: dict[str, Any]) -> list[tuple[int, str, str]]:
    """The scope index rows of a version: one per string value (or list element) of each scope key."""
    out = []
    for key in SCOPE_KEYS:
        v = metadata.get(key)
        for x in v if isinstance(v, list) else [v]:
            if isinstance(x, str):
                out.append((vid, key, x))
    return out


def _chunks(items: list[Any], n: int) -> Iterable[list[Any]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]
