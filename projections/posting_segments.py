"""Packed posting lists of the keyword view: one row per (term, segment), arrays in blobs.

Each flush of a batch writes, for every term its new texts use, one row ``(term_id, seg,
text_ids, tfs)``: the batch's postings of that term as little-endian int32 arrays, sorted by
text id. ``seg`` is the first text id of the flush, and text ids only grow, so a term's segments
in ``seg`` order concatenate to one posting list sorted by text id. This is how search engines
store postings; against one SQLite row per (term, text) it writes ~10x fewer rows, and a term's
list is read with one range scan.

Postings carry no validity interval: whether a text counted at an offset is a property of the
text (``projections.keyword_docs``), so closing a text never rewrites a posting. Segments are
immutable except when a purge filters out erased texts, or :func:`compact` merges the many small
segments that single-event batches leave behind (same postings, fewer rows).

:class:`PostingLists` caches whole lists per term for queries and extends them with the
segments committed since, so a steady write stream does not make queries start cold.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import OrderedDict
from typing import Any

import numpy as np

from ledger.errors import present

POSTINGS_DDL = """
CREATE TABLE IF NOT EXISTS postings(
  term_id INTEGER NOT NULL, seg INTEGER NOT NULL, text_ids BLOB NOT NULL, tfs BLOB NOT NULL,
  PRIMARY KEY(term_id, seg)
) WITHOUT ROWID;
"""

_I4 = np.dtype("<i4")
_MAX_TEXT_ID = 2**31 - 1


def segment_rows(term_ids: np.ndarray, text_ids: np.ndarray, seg: int) -> list[tuple[int, int, bytes, bytes]]:
    """Segment rows of one flush from parallel arrays with one entry per term occurrence."""
    if not len(term_ids):
        return []
    if int(text_ids.max()) > _MAX_TEXT_ID:
        raise OverflowError("keyword view: text ids beyond 2**31 (rebuild the view)")
    keys, tf = np.unique((term_ids.astype(np.int64) << 32) | text_ids.astype(np.int64), return_counts=True)
    terms = keys >> 32
    texts = (keys & 0xFFFFFFFF).astype(_I4)
    tf = tf.astype(_I4)
    starts = np.concatenate(([0], np.flatnonzero(np.diff(terms)) + 1))
    bounds = (4 * starts).tolist() + [4 * len(terms)]  # byte offsets: slicing bytes beats splitting arrays
    text_bytes, tf_bytes = texts.tobytes(), tf.tobytes()
    return [
        (term, seg, text_bytes[a:b], tf_bytes[a:b])
        for term, a, b in zip(terms[starts].tolist(), bounds, bounds[1:], strict=False)
    ]


def insert_segments(c: sqlite3.Connection, rows: list[tuple[int, int, bytes, bytes]]) -> None:
    """Write segment rows (inside the caller's transaction)."""
    c.executemany("INSERT INTO postings(term_id, seg, text_ids, tfs) VALUES (?,?,?,?)", rows)


def decode(rows: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """(text ids as intp, term frequencies as float64) of ``(…, text_ids, tfs)`` rows in seg order."""
    if not rows:
        return np.zeros(0, np.intp), np.zeros(0, np.float64)
    ids = np.concatenate([np.frombuffer(r[-2], _I4) for r in rows]).astype(np.intp)
    tfs = np.concatenate([np.frombuffer(r[-1], _I4) for r in rows]).astype(np.float64)
    return ids, tfs


def read_term(c: sqlite3.Connection, term_id: int, after_seg: int = -1) -> list[tuple[int, bytes, bytes]]:
    """The segments of a term after ``after_seg``, in seg order."""
    return c.execute(
        "SELECT seg, text_ids, tfs FROM postings WHERE term_id = ? AND seg > ? ORDER BY seg", (term_id, after_seg)
    ).fetchall()


def rewrite_term(c: sqlite3.Connection, term_id: int, ids: np.ndarray, tfs: np.ndarray) -> None:
    """Replace every segment of a term by one holding ``ids``/``tfs`` (none when empty)."""
    c.execute("DELETE FROM postings WHERE term_id = ?", (term_id,))
    if len(ids):
        c.execute(
            "INSERT INTO postings(term_id, seg, text_ids, tfs) VALUES (?,?,?,?)",
            (term_id, int(ids[0]), ids.astype(_I4).tobytes(), tfs.astype(_I4).tobytes()),
        )


def compact(c: sqlite3.Connection, max_segments: int) -> int:
    """Merge the segments of every term that has more than ``max_segments``; returns how many terms."""
    many = [
        r[0] for r in c.execute("SELECT term_id FROM postings GROUP BY term_id HAVING COUNT(*) > ?", (max_segments,))
    ]
    for term_id in many:
        ids, tfs = decode(read_term(c, term_id))
        rewrite_term(c, term_id, ids, tfs)
    return len(many)


class PostingLists:
    """Whole posting lists of recently queried terms, kept in step with the view.

    Entries are valid for one layout stamp (purge generation and compaction epoch); within it,
    a list read at an older checkpoint is extended with the segments written since (segments are
    append-only between layout changes). Callers read inside one read transaction, so the stamp
    and the segments they see agree. At most ``max_postings`` are kept (least recently used lists
    go first).
    """

    def __init__(self, max_postings: int = 8_000_000):
        self.max_postings = max_postings
        self._lock = threading.Lock()
        self._lists: OrderedDict[int, tuple[np.ndarray, np.ndarray, int, int]] = OrderedDict()
        self._layout: tuple[int, int] | None = None
        self._size = 0

    def get(
        self, c: sqlite3.Connection, term_id: int, checkpoint: int, layout: tuple[int, int]
    ) -> tuple[np.ndarray, np.ndarray]:
        """(text ids, term frequencies) of ``term_id`` as of the view's ``checkpoint``."""
        with self._lock:
            if self._layout is None or layout > self._layout:  # (generation, epoch) only grow
                self._lists.clear()
                self._layout, self._size = layout, 0
            elif layout < self._layout:  # a reader of an older state: read it whole, uncached
                return decode(read_term(c, term_id))
            got = self._lists.get(term_id)
            if got is not None:
                self._lists.move_to_end(term_id)
                if got[3] == checkpoint:
                    return got[0], got[1]
        ids, tfs, last_seg = (got[0], got[1], got[2]) if got is not None else (None, None, -1)
        rows = read_term(c, term_id, last_seg)
        if rows:
            new_ids, new_tfs = decode(rows)
            ids = new_ids if ids is None else np.concatenate((ids, new_ids))
            tfs = new_tfs if tfs is None else np.concatenate((tfs, new_tfs))
            last_seg = rows[-1][0]
        elif ids is None:
            ids, tfs = decode([])
        tfs = present(tfs, "the term frequencies of a posting list")
        with self._lock:
            if layout == self._layout:
                old = self._lists.pop(term_id, None)
                self._size += len(ids) - (len(old[0]) if old is not None else 0)
                self._lists[term_id] = (ids, tfs, last_seg, checkpoint)
                while self._size > self.max_postings and len(self._lists) > 1:
                    _, dropped = self._lists.popitem(last=False)
                    self._size -= len(dropped[0])
        return ids, tfs
