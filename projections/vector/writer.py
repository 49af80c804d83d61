"""Folding one batch of events into the vector view's rows and vectors.

``BatchWriter`` gives the events the semantics of ``ledger.memory_state.apply_event`` (one version row
per change, closed by the next), assigns each distinct text digest one vector slot, and purges erased
memories. It writes through the connection it is given, inside the view's transaction; the view
commits, and then publishes the new rows to its in-memory columns.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from ledger import events as ev
from ledger.events import Event
from ledger.memory_state import Erasure, content_subjects, erasure_of
from projections.base import OPEN

CHUNK = 500
Content = tuple["str | None", "dict[str, Any] | None", "bytes | None"]  # text, metadata, text digest


@dataclass(slots=True)
class Current:
    """The current version of one memory while a batch is being folded."""

    row_id: int
    memory_id: str
    cube: str
    state: str
    subject: str | None
    present: bool
    slot: int | None
    metadata: dict[str, Any]
    tags: list[str]


class BatchWriter:
    """Folds one batch into row writes, with the semantics of ``ledger.memory_state.apply_event``."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        contents: Mapping[int, Content],
        vecs: Mapping[bytes, np.ndarray],
        embed: Callable[[str, bytes], np.ndarray],
    ):
        self.conn = conn
        self.embed = embed  # (text, digest) -> vector, through the embedding cache
        self.contents = contents
        self.vecs = vecs
        self.cur: dict[str, Current | None] = {}
        self.pending: dict[int, list[Any]] = {}  # row id -> insert tuple (as a list, valid_to mutable)
        self.closed: dict[int, int] = {}  # row id already in the database -> valid_to (not yet written)
        self.closed_done: dict[int, int] = {}  # every close written by this batch
        self.new_vectors: dict[int, np.ndarray] = {}  # slot -> vector
        self.new_search_rows: list[tuple[int, int, int, int, str, str, str]] = []
        self.slots: dict[bytes, int] = {}
        self.pending_vectors: list[tuple[int, bytes, bytes]] = []
        self.last_offset = -1
        self.forgot = False
        self.purged_digests: list[bytes] = []
        self.next_id = (self.conn.execute("SELECT max(id) FROM versions").fetchone()[0] or 0) + 1
        self.next_slot = (self.conn.execute("SELECT max(slot) FROM vectors").fetchone()[0] or 0) + 1

    # -- state -----------------------------------------------------------------------------
    def prefetch(self, ids: Iterable[str]) -> None:
        """Load the current rows of these memories (one query per 500 ids)."""
        want = [m for m in dict.fromkeys(ids) if m not in self.cur]
        for m in want:
            self.cur[m] = None
        for i in range(0, len(want), CHUNK):
            chunk = want[i : i + CHUNK]
            q = (
                "SELECT id, memory_id, cube, state, subject, present, slot, metadata, tags FROM versions "
                f"WHERE valid_to = ? AND memory_id IN ({','.join('?' * len(chunk))})"
            )
            for r in self.conn.execute(q, [OPEN, *chunk]):
                self.cur[r[1]] = Current(
                    r[0], r[1], r[2], r[3], r[4], bool(r[5]), r[6], orjson.loads(r[7]), orjson.loads(r[8])
                )

    def _get(self, mid: str) -> Current | None:
        if mid not in self.cur:
            self.prefetch([mid])
        return self.cur[mid]

    def _slot(self, content: Content) -> int | None:
        text, _, d = content
        if d is None or not text:
            return None
        s = self.slots.get(d)
        if s is None:  # slots of every digest already in the view were loaded before the batch
            vec = self.vecs.get(d)
            if vec is None:  # its vector was deleted by a concurrent process since: embed (cached)
                vec = self.embed(text, d)
            s = self.next_slot
            self.next_slot += 1
            self.pending_vectors.append((s, d, np.ascontiguousarray(vec, dtype=np.float32).tobytes()))
            self.new_vectors[s] = vec
            self.slots[d] = s
        return s

    def _put(self, c: Current, offset: int) -> None:
        """Make ``c`` the current version of its memory from ``offset`` on (closing the previous one)."""
        old = self.cur.get(c.memory_id)
        if old is not None:
            if old.row_id in self.pending:
                self.pending[old.row_id][4] = offset
            else:
                self.closed[old.row_id] = offset
        c.row_id = self.next_id
        self.next_id += 1
        self.pending[c.row_id] = [
            c.row_id,
            c.memory_id,
            c.cube,
            offset,
            OPEN,
            c.state,
            c.subject,
            int(c.present),
            c.slot,
            orjson.dumps(c.metadata),
            orjson.dumps(c.tags),
        ]
        self.cur[c.memory_id] = c

    def _touch(self, old: Current, offset: int, **changes: Any) -> None:
        c = Current(0, old.memory_id, old.cube, old.state, old.subject, old.present, old.slot, old.metadata, old.tags)
        for k, v in changes.items():
            setattr(c, k, v)
        self._put(c, offset)

    # -- events ----------------------------------------------------------------------------
    def apply(self, e: Event) -> None:
        t, p = e.type, e.payload
        erasure = erasure_of(e)
        if erasure is not None:
            self._forget(erasure)
            return
        if t not in (
            ev.MEMORY_ADDED,
            ev.MEMORY_MERGED,
            ev.MEMORY_UPDATED,
            ev.MEMORY_RESTORED,
            ev.MEMORY_STATE_CHANGED,
            ev.MEMORY_TAGGED,
            ev.MEMORY_DELETED,
        ):
            return
        mid = p["memory_id"]
        if t in (ev.MEMORY_ADDED, ev.MEMORY_MERGED):
            content = self.contents[e.offset]
            meta = content[1]
            self._get(mid)
            subjects = content_subjects(p)
            subject = subjects[0] if subjects else None
            self._put(
                Current(
                    0,
                    mid,
                    e.stream,
                    p.get("state", "generated"),
                    subject,
                    True,
                    self._slot(content),
                    dict(meta or {}),
                    list(p.get("tags", [])),
                ),
                e.offset,
            )
            if t == ev.MEMORY_MERGED:
                self.prefetch(p["sources"])
                for src in p["sources"]:
                    s = self.cur.get(src)
                    if s is not None:
                        self._touch(s, e.offset, state="merged")
            return
        s = self._get(mid)
        if t == ev.MEMORY_RESTORED:
            self._restore(e, mid, s)
        elif s is None:
            return
        elif t == ev.MEMORY_UPDATED:
            content = self.contents[e.offset]
            meta = content[1]
            self._touch(s, e.offset, slot=self._slot(content), metadata=dict(meta) if meta is not None else s.metadata)
        elif t == ev.MEMORY_STATE_CHANGED:
            self._touch(s, e.offset, state=p["to"])
        elif t == ev.MEMORY_DELETED:
            self._touch(s, e.offset, present=False)
        elif t == ev.MEMORY_TAGGED:
            remove = set(p.get("remove", []))
            tags = [x for x in s.tags if x not in remove]
            tags += [x for x in p.get("add", []) if x not in tags]
            self._touch(s, e.offset, tags=tags)

    def _restore(self, e: Event, mid: str, s: Current | None) -> None:
        p = e.payload
        if not p.get("exists", True):
            if s is not None:
                self._touch(s, e.offset, present=False)
            return
        content = self.contents[e.offset]
        meta = content[1]
        if s is None:
            s = Current(0, mid, e.stream, "generated", None, True, None, {}, [])
        self._touch(
            s,
            e.offset,
            slot=self._slot(content),
            metadata=dict(meta or {}),
            tags=list(p.get("tags", s.tags)),
            state=p.get("state", s.state),
            present=True,
        )

    def _forget(self, erasure: Erasure) -> None:
        """Erasure: delete every version (and now-unused vector) of the erased subjects' memories and
        of the memories the erasure lists."""
        self.flush()
        mids: dict[str, None] = {}
        for subject in erasure.subjects:
            mids.update(
                (r[0], None)
                for r in self.conn.execute("SELECT DISTINCT memory_id FROM versions WHERE subject = ?", (subject,))
            )
        mids.update((m, None) for m in erasure.memory_ids)
        gone = set(mids)
        slots: list[int] = []
        for i in range(0, len(mids), CHUNK):
            chunk = list(mids)[i : i + CHUNK]
            marks = ",".join("?" * len(chunk))
            slots += [
                r[0]
                for r in self.conn.execute(
                    f"SELECT DISTINCT slot FROM versions WHERE memory_id IN ({marks}) AND slot IS NOT NULL", chunk
                )
            ]
            self.conn.execute(f"DELETE FROM versions WHERE memory_id IN ({marks})", chunk)
        for i in range(0, len(slots), CHUNK):
            slot_chunk = slots[i : i + CHUNK]
            marks = ",".join("?" * len(slot_chunk))
            orphans = self.conn.execute(
                f"SELECT slot, text_sha256 FROM vectors WHERE slot IN ({marks}) AND NOT EXISTS "
                "(SELECT 1 FROM versions v WHERE v.slot = vectors.slot)",
                slot_chunk,
            ).fetchall()
            if orphans:
                self.conn.execute(
                    f"DELETE FROM vectors WHERE slot IN ({','.join('?' * len(orphans))})", [o[0] for o in orphans]
                )
                self.purged_digests += [bytes(o[1]) for o in orphans]
                for o in orphans:
                    self.new_vectors.pop(o[0], None)
        self.slots = {d: s for d, s in self.slots.items() if d not in set(self.purged_digests)}
        for mid, c in list(self.cur.items()):
            if c is not None and mid in gone:
                self.cur[mid] = None
        self.forgot = True

    def flush(self) -> None:
        """Write pending inserts and closes (inside the caller's transaction)."""
        if self.pending_vectors:
            self.conn.executemany("INSERT INTO vectors(slot, text_sha256, vec) VALUES (?, ?, ?)", self.pending_vectors)
            self.pending_vectors = []
        if self.closed:
            self.conn.executemany(
                "UPDATE versions SET valid_to = ? WHERE id = ?", [(vt, rid) for rid, vt in self.closed.items()]
            )
        if self.pending:
            rows = list(self.pending.values())
            self.conn.executemany(
                "INSERT INTO versions(id, memory_id, cube, valid_from, valid_to, state, subject, present, slot, "
                "metadata, tags) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                rows,
            )
            self.new_search_rows += [
                (r[0], r[8], r[3], r[4], r[1], r[2], r[5]) for r in rows if r[7] and r[8] is not None
            ]
        self.closed_done.update(self.closed)
        self.pending = {}
        self.closed = {}
