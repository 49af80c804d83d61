"""The keyword view's documents as in-memory columns: one entry per distinct text of a memory.

A document is a text that counts for BM25 while it is current: its cube, its length in terms
(``dl``) and the offset interval ``[t_from, t_to)`` in which it counted. The rows live in the
view's ``docs`` table; :class:`DocColumns` mirrors them in numpy arrays indexed by text id, so
document frequencies, corpus size and total length *as of any offset* are vector operations
over the postings of a term, with no SQL per posting.

The arrays follow the table incrementally: every row carries ``changed``, the offset of the
event that last wrote it, so catching up after new batches reads only the rows changed since
the checkpoint the arrays were synced to. A purge or reset (a new ``generation``) reloads them.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from projections.base import OPEN

DOCS_DDL = """
CREATE TABLE IF NOT EXISTS docs(
  text_id INTEGER PRIMARY KEY, cube TEXT NOT NULL, dl INTEGER NOT NULL,
  t_from INTEGER NOT NULL, t_to INTEGER NOT NULL, changed INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS docs_changed ON docs(changed);
"""


class Columns(NamedTuple):
    """One consistent set of arrays (index: text id). Unused ids never count (``t_from = OPEN``)."""

    cube: np.ndarray  # int32 cube code
    dl: np.ndarray  # float64 length in terms
    t_from: np.ndarray  # int64
    t_to: np.ndarray  # int64


def _empty(n: int) -> Columns:
    return Columns(
        np.full(n, -1, np.int32), np.zeros(n, np.float64), np.full(n, OPEN, np.int64), np.full(n, OPEN, np.int64)
    )


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The columns as synced to one (checkpoint, generation) stamp, with that stamp's caches.

    Rows change in place only at offsets after the checkpoint (a later text, a later close),
    so answers as of offsets up to the checkpoint read the same from these arrays however far
    a later sync has moved them; a purge or reset gets new arrays.
    """

    cols: Columns
    checkpoint: int
    generation: int
    corpus_cache: dict[tuple[int, tuple[int, ...] | None], tuple[int, int]] = field(default_factory=dict)


class DocColumns:
    """In-memory mirror of the ``docs`` table, synced to a (checkpoint, generation) stamp."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._codes: dict[str, int] = {}
        self.cols = _empty(0)
        self._snap: Snapshot | None = None

    def sync(self, c: sqlite3.Connection, checkpoint: int, generation: int) -> Snapshot:
        """Bring the arrays up to the view's state at ``checkpoint``."""
        with self._lock:
            snap = self._snap
            if snap is not None and (snap.checkpoint, snap.generation) == (checkpoint, generation):
                return snap
            since = -1
            if snap is not None and snap.generation == generation:
                since = snap.checkpoint
            else:
                self.cols = _empty(0)
            rows = c.execute("SELECT text_id, cube, dl, t_from, t_to FROM docs WHERE changed > ?", (since,)).fetchall()
            if rows:
                self._apply(rows)
            self._snap = Snapshot(self.cols, checkpoint, generation)
            return self._snap

    def _apply(self, rows: list[tuple[int, str, int, int, int]]) -> None:
        ids, cubes, dls, froms, tos = zip(*rows, strict=True)
        idx = np.fromiter(ids, np.int64, len(ids))
        need = int(idx.max()) + 1
        cols = self.cols
        if need > len(cols.cube):  # grow by copy: readers keep the arrays they already hold
            grown = _empty(max(need, int(len(cols.cube) * 1.5) + 1024))
            for old, new in zip(cols, grown, strict=True):
                new[: len(old)] = old
            cols = self.cols = grown
        codes = self._codes
        cols.cube[idx] = [codes.setdefault(x, len(codes)) for x in cubes]
        cols.dl[idx] = dls
        cols.t_from[idx] = froms
        cols.t_to[idx] = tos

    def codes(self, cubes: Sequence[str] | None) -> np.ndarray | None:
        """The codes of ``cubes`` (None: every cube); a cube never seen gets no code."""
        if cubes is None:
            return None
        with self._lock:
            return np.array(sorted({self._codes[x] for x in cubes if x in self._codes}), dtype=np.int32)

    @staticmethod
    def valid(cols: Columns, text_ids: np.ndarray, at: int, codes: np.ndarray | None) -> np.ndarray:
        """Mask of the documents among ``text_ids`` that counted at offset ``at`` in the wanted cubes."""
        inside = text_ids < len(cols.t_from)  # postings committed after the arrays were synced
        if not inside.all():
            text_ids = np.where(inside, text_ids, 0)
        mask = (cols.t_from[text_ids] <= at) & (cols.t_to[text_ids] > at) & inside
        if codes is not None:
            mask &= np.isin(cols.cube[text_ids], codes)
        return mask

    @staticmethod
    def corpus(snap: Snapshot, at: int, codes: np.ndarray | None) -> tuple[int, int]:
        """(documents, total length) that counted at ``at`` (at most the snapshot's checkpoint) in the
        wanted cubes; cached with the snapshot."""
        key = (at, None if codes is None else tuple(codes.tolist()))
        got = snap.corpus_cache.get(key)
        if got is None:
            cols = snap.cols
            mask = (cols.t_from <= at) & (cols.t_to > at)
            if codes is not None:
                mask &= np.isin(cols.cube, codes)
            got = (int(mask.sum()), int(cols.dl[mask].sum()))
            if len(snap.corpus_cache) < 10_000:
                snap.corpus_cache[key] = got
        return got
