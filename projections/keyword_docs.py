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
    return Columns(np.full(n, -1, np.int32), np.zeros(n, np.float64), np.full(n, OPEN, np.int64),
                   np.full(n, OPEN, np.int64))


class DocColumns:
    """In-memory mirror of the ``docs`` table, synced to a (checkpoint, generation) stamp."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._codes: dict[str, int] = {}
        self.cols = _empty(0)
        self._synced: tuple[int, int] | None = None  # (checkpoint, generation)
        self._corpus: dict[tuple[int, tuple[int, ...] | None], tuple[int, int]] = {}

    def sync(self, c: sqlite3.Connection, checkpoint: int, generation: int) -> Columns:
        """Bring the arrays up to the view's state at ``checkpoint`` and return them."""
        with self._lock:
            if self._synced == (checkpoint, generation):
                return self.cols
            since = -1
            if self._synced is not None and self._synced[1] == generation:
                since = self._synced[0]
            else:
                self.cols = _empty(0)
            rows = c.execute("SELECT text_id, cube, dl, t_from, t_to FROM docs WHERE changed > ?", (since,)).fetchall()
            if rows:
                self._apply(rows)
            self._synced = (checkpoint, generation)
            self._corpus = {}
            return self.cols

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

    def corpus(self, cols: Columns, at: int, codes: np.ndarray | None) -> tuple[int, int]:
        """(documents, total length) that counted at ``at`` in the wanted cubes (cached per stamp)."""
        key = (at, None if codes is None else tuple(codes.tolist()))
        got = self._corpus.get(key)
        if got is None:
            mask = (cols.t_from <= at) & (cols.t_to > at)
            if codes is not None:
                mask &= np.isin(cols.cube, codes)
            got = (int(mask.sum()), int(cols.dl[mask].sum()))
            if len(self._corpus) > 10_000:
                self._corpus = {}
            self._corpus[key] = got
        return got
