"""The embedded keyword view: temporal BM25 over an inverted index kept in SQLite.

Why not FTS5's ``bm25()`` (or tantivy, or bm25s)? All three score with corpus statistics of the
whole index, i.e. including versions written *after* the offset asked about, so an as-of query
would rank differently from the same query on a view folded only up to that offset. Here every
statistic BM25 needs is itself temporal: document count and total length per cube are kept as
cumulative rows keyed by offset, and document frequencies are counted over the versions current
at the offset. An as-of query therefore equals a fresh fold, at about the cost of a head query.
(SQLite here is 3.40, so FTS5's ``secure-delete`` and contentless-delete, which erasure needs,
are not available either.)
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger.errors import InvalidRequest
from ledger.events import Event
from ledger.memory_state import MemoryState, Opener
from projections.base import OPEN, Hit
from projections.temporal_store import Current, TemporalSqliteView, _chunks
from projections.text_analysis import term_frequencies, terms

K1 = 0.9  # tuned for short memories (LoCoMo dev; see docs/projections.md)
B = 0.3
ALL_CUBES = ""  # corpus statistics over every cube (cube names are never empty)

_DDL = """
CREATE TABLE IF NOT EXISTS terms(term_id INTEGER PRIMARY KEY, term TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS postings(
  term_id INTEGER NOT NULL, text_id INTEGER NOT NULL, tf INTEGER NOT NULL, dl INTEGER NOT NULL,
  PRIMARY KEY(term_id, text_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS postings_text ON postings(text_id);
CREATE TABLE IF NOT EXISTS corpus(
  cube TEXT NOT NULL, offset INTEGER NOT NULL, n INTEGER NOT NULL, total INTEGER NOT NULL,
  PRIMARY KEY(cube, offset)
) WITHOUT ROWID;
"""


@dataclass(frozen=True, slots=True)
class CorpusStats:
    """BM25 statistics of the searched corpus as of an offset."""

    n: int
    avgdl: float
    idf: dict[str, float]


def idf(n: int, df: int) -> float:
    """BM25 inverse document frequency (the non-negative Lucene form)."""
    return math.log(1.0 + (n - df + 0.5) / (df + 0.5))


def metadata_clause(metadata: Mapping[str, Any] | None, alias: str = "v") -> tuple[str, list[Any]]:
    """SQL conditions for equality filters on top-level metadata keys."""
    if not metadata:
        return "", []
    sql, args = "", []
    for key, value in metadata.items():
        if not isinstance(key, str) or '"' in key:
            raise InvalidRequest(f"bad metadata filter key {key!r}")
        path = f'$."{key}"'
        if value is None:
            sql += f" AND json_type({alias}.meta, ?) = 'null'"
            args.append(path)
        elif isinstance(value, bool | int | float | str):
            sql += f" AND json_extract({alias}.meta, ?) = ?"
            args += [path, int(value) if isinstance(value, bool) else value]
        else:
            raise InvalidRequest(f"metadata filter on {key!r}: values must be strings, numbers, booleans or null")
    return sql, args


class KeywordView(TemporalSqliteView):
    """Temporal BM25 keyword view (``KeywordSearch`` port)."""

    name = "keyword"
    store_text = True

    def __init__(self, path: str | Path, opener: Opener | None = None):
        self._corpus: dict[str, tuple[int, int]] = {}
        self._term_ids: dict[str, int] = {}
        super().__init__(path, opener)

    def _ddl(self) -> str:
        return _DDL

    def _tables(self) -> list[str]:
        return ["terms", "postings", "corpus"]

    def reset(self) -> None:
        self._corpus.clear()
        self._term_ids.clear()
        super().reset()

    def apply_batch(self, events: Sequence[Event]) -> None:
        try:
            super().apply_batch(events)
        finally:  # the caches must never outlive a rolled-back transaction
            self._corpus.clear()
            self._term_ids.clear()

    # -- indexing ------------------------------------------------------------------------
    def _text_length(self, text: str) -> int:
        return len(terms(text))

    def _term_id(self, c: sqlite3.Connection, term: str) -> int:
        tid = self._term_ids.get(term)
        if tid is None:
            row = c.execute("SELECT term_id FROM terms WHERE term = ?", (term,)).fetchone()
            tid = row[0] if row else c.execute("INSERT INTO terms(term) VALUES (?)", (term,)).lastrowid
            assert tid is not None
            self._term_ids[term] = tid
        return tid

    def _index_text(self, c: sqlite3.Connection, text_id: int, s: MemoryState, text: str) -> None:
        tf, dl = term_frequencies(text)
        c.executemany("INSERT INTO postings(term_id, text_id, tf, dl) VALUES (?,?,?,?)",
                      [(self._term_id(c, t), text_id, n, dl) for t, n in tf.items()])

    def _length(self, c: sqlite3.Connection, text_id: int | None) -> int:
        if text_id is None:
            return 0
        row = c.execute("SELECT length FROM texts WHERE text_id = ?", (text_id,)).fetchone()
        return row[0] if row else 0

    def _counts(self, c: sqlite3.Connection, cube: str) -> tuple[int, int]:
        got = self._corpus.get(cube)
        if got is None:
            row = c.execute("SELECT n, total FROM corpus WHERE cube = ? ORDER BY offset DESC LIMIT 1",
                            (cube,)).fetchone()
            got = (row[0], row[1]) if row else (0, 0)
        return got

    def _on_version(self, c: sqlite3.Connection, vid: int, s: MemoryState, text_id: int | None,
                    prev: Current | None, e: Event) -> None:
        before = (1, self._length(c, prev.text_id)) if prev and prev.state.exists and prev.text_id else (0, 0)
        after = (1, self._length(c, text_id)) if s.exists and text_id is not None else (0, 0)
        if before == after:
            return
        for cube in (s.cube, ALL_CUBES):
            n, total = self._counts(c, cube)
            n, total = n + after[0] - before[0], total + after[1] - before[1]
            self._corpus[cube] = (n, total)
            c.execute("INSERT OR REPLACE INTO corpus(cube, offset, n, total) VALUES (?,?,?,?)",
                      (cube, e.offset, n, total))

    def _purge_texts(self, c: sqlite3.Connection, text_ids: list[int], memory_ids: list[str]) -> None:
        cubes = {r[0] for chunk in _chunks(memory_ids, 500) for r in c.execute(
            f"SELECT DISTINCT cube FROM versions WHERE memory_id IN ({','.join('?' * len(chunk))})", chunk)}
        term_ids: set[int] = set()
        for chunk in _chunks(text_ids, 500):
            marks = ",".join("?" * len(chunk))
            term_ids.update(r[0] for r in c.execute(f"SELECT DISTINCT term_id FROM postings WHERE text_id IN ({marks})",
                                                    chunk))
            c.execute(f"DELETE FROM postings WHERE text_id IN ({marks})", chunk)
        for tid in term_ids:  # a term only the purged texts used would still spell out their words
            if c.execute("SELECT 1 FROM postings WHERE term_id = ? LIMIT 1", (tid,)).fetchone() is None:
                c.execute("DELETE FROM terms WHERE term_id = ?", (tid,))
        self._term_ids.clear()
        self._pending_stats = cubes

    def _purge_subject(self, c: sqlite3.Connection, subject: str, cache: dict[str, Current | None]) -> None:
        self._pending_stats: set[str] = set()
        super()._purge_subject(c, subject, cache)
        if self._pending_stats:
            self._recompute_corpus(c, [*self._pending_stats, ALL_CUBES])

    def _recompute_corpus(self, c: sqlite3.Connection, cubes: Iterable[str]) -> None:
        """Rebuild the cumulative statistics of ``cubes`` from the version rows (after a purge)."""
        for cube in cubes:
            c.execute("DELETE FROM corpus WHERE cube = ?", (cube,))
            self._corpus.pop(cube, None)
            where = "" if cube == ALL_CUBES else " AND v.cube = ?"
            deltas: dict[int, list[int]] = {}
            for vf, vt, length in c.execute(
                    "SELECT v.valid_from, v.valid_to, t.length FROM versions v JOIN texts t ON t.text_id = v.text_id "
                    f"WHERE v.exists_ = 1{where}", () if cube == ALL_CUBES else (cube,)):
                deltas.setdefault(vf, [0, 0])
                deltas[vf][0] += 1
                deltas[vf][1] += length
                if vt != OPEN:
                    deltas.setdefault(vt, [0, 0])
                    deltas[vt][0] -= 1
                    deltas[vt][1] -= length
            n = total = 0
            rows = []
            for off in sorted(deltas):
                dn, dt = deltas[off]
                if dn == 0 and dt == 0:
                    continue
                n, total = n + dn, total + dt
                rows.append((cube, off, n, total))
            c.executemany("INSERT INTO corpus(cube, offset, n, total) VALUES (?,?,?,?)", rows)

    # -- queries -------------------------------------------------------------------------
    def corpus_stats(self, query_terms: Sequence[str], cubes: Sequence[str] | None, as_of: int | None) -> CorpusStats:
        """Document count, mean length and per-term idf of the corpus current at ``as_of``."""
        c = self.conn()
        at = OPEN - 1 if as_of is None else as_of
        n = total = 0
        for cube in (cubes if cubes is not None else [ALL_CUBES]):
            row = c.execute("SELECT n, total FROM corpus WHERE cube = ? AND offset <= ? ORDER BY offset DESC LIMIT 1",
                            (cube, at)).fetchone()
            if row:
                n, total = n + row[0], total + row[1]
        ids = self._lookup_terms(query_terms)
        dfs: dict[str, int] = {}
        if n and ids:
            cube_sql, cube_args = _cube_clause(cubes)
            inv = {v: k for k, v in ids.items()}
            for tid, df in c.execute(
                    f"SELECT p.term_id, COUNT(*) FROM postings p JOIN versions v ON v.text_id = p.text_id "
                    f"WHERE p.term_id IN ({','.join('?' * len(ids))}) AND v.valid_from <= ? AND v.valid_to > ? "
                    f"AND v.exists_ = 1{cube_sql} GROUP BY p.term_id", (*ids.values(), at, at, *cube_args)):
                dfs[inv[tid]] = df
        return CorpusStats(n, (total / n) if n else 0.0, {t: idf(n, df) for t, df in dfs.items() if df})

    def _lookup_terms(self, query_terms: Sequence[str]) -> dict[str, int]:
        uniq = list(dict.fromkeys(query_terms))
        if not uniq:
            return {}
        rows = self.conn().execute(f"SELECT term, term_id FROM terms WHERE term IN ({','.join('?' * len(uniq))})", uniq)
        return dict(rows.fetchall())

    def keyword_search(self, query: str, k: int, cubes: Sequence[str] | None = None, as_of: int | None = None,
                       states: Iterable[str] | None = None, metadata: Mapping[str, Any] | None = None,
                       exclude: Iterable[str] = ()) -> list[Hit]:
        """Top ``k`` memories by BM25 of their version current at ``as_of`` (None: head).

        ``states`` None means every lifecycle state; ``metadata`` filters on equality of
        top-level keys; ``exclude`` drops memory ids (e.g. those a branch overlay replaces).
        """
        return self.search_terms(terms(query), k, cubes, as_of, states, metadata, exclude)

    def search_terms(self, qterms: Sequence[str], k: int, cubes: Sequence[str] | None = None,
                     as_of: int | None = None, states: Iterable[str] | None = None,
                     metadata: Mapping[str, Any] | None = None, exclude: Iterable[str] = ()) -> list[Hit]:
        """:meth:`keyword_search` for already analysed terms (e.g. a query expansion)."""
        if k <= 0:
            return []
        stats = self.corpus_stats(qterms, cubes, as_of)
        if not stats.idf:
            return []
        ids = self._lookup_terms(list(stats.idf))
        at = OPEN - 1 if as_of is None else as_of
        values = ",".join("(?,?)" for _ in stats.idf)
        wargs: list[Any] = []
        for t, w in stats.idf.items():
            wargs += [ids[t], w]
        cube_sql, cube_args = _cube_clause(cubes)
        state_sql, state_args = _state_clause(states)
        meta_sql, meta_args = metadata_clause(metadata)
        excl = list(dict.fromkeys(exclude))
        excl_sql = f" AND v.memory_id NOT IN ({','.join('?' * len(excl))})" if excl else ""
        norm = K1 / stats.avgdl if stats.avgdl else 0.0
        sql = (f"WITH w(term_id, idf) AS (VALUES {values}) "
               f"SELECT v.memory_id, SUM(w.idf * p.tf * {K1 + 1} / (p.tf + {K1 * (1 - B)} + {B * norm} * p.dl)) AS s "
               "FROM w JOIN postings p ON p.term_id = w.term_id JOIN versions v ON v.text_id = p.text_id "
               f"WHERE v.valid_from <= ? AND v.valid_to > ? AND v.exists_ = 1{cube_sql}{state_sql}{meta_sql}{excl_sql} "
               "GROUP BY v.vid ORDER BY s DESC, v.memory_id LIMIT ?")
        rows = self.conn().execute(sql, (*wargs, at, at, *cube_args, *state_args, *meta_args, *excl, k)).fetchall()
        return [(mid, float(s)) for mid, s in rows]

    def score_texts(self, query: str, texts: Mapping[str, str], cubes: Sequence[str] | None = None,
                    as_of: int | None = None, qterms: Sequence[str] | None = None) -> dict[str, float]:
        """BM25 of texts outside the view (a branch's own versions) with the view's statistics at ``as_of``.

        ``qterms`` gives already analysed query terms instead of ``query``.
        """
        qterms = list(dict.fromkeys(terms(query) if qterms is None else qterms))
        stats = self.corpus_stats(qterms, cubes, as_of)
        n = max(stats.n, 1)
        avgdl = stats.avgdl or 1.0
        out: dict[str, float] = {}
        for mid, text in texts.items():
            tf, dl = term_frequencies(text)
            score = 0.0
            for t in qterms:
                f = tf.get(t, 0)
                if f:
                    w = stats.idf.get(t, idf(n, 0))
                    score += w * f * (K1 + 1) / (f + K1 * (1 - B + B * dl / avgdl))
            if score > 0:
                out[mid] = score
        return out


def _cube_clause(cubes: Sequence[str] | None, alias: str = "v") -> tuple[str, list[Any]]:
    if cubes is None:
        return "", []
    return f" AND {alias}.cube IN ({','.join('?' * len(cubes))})", list(cubes)


def _state_clause(states: Iterable[str] | None, alias: str = "v") -> tuple[str, list[Any]]:
    if states is None:
        return "", []
    s = list(states)
    return f" AND {alias}.state IN ({','.join('?' * len(s))})", s
