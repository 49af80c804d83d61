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
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

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
  cube TEXT NOT NULL, t_from INTEGER NOT NULL, t_to INTEGER NOT NULL,
  PRIMARY KEY(term_id, text_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS postings_text ON postings(text_id);
CREATE TABLE IF NOT EXISTS corpus(
  cube TEXT NOT NULL, offset INTEGER NOT NULL, n INTEGER NOT NULL, total INTEGER NOT NULL,
  PRIMARY KEY(cube, offset)
) WITHOUT ROWID;
"""

# During a rebuild from zero, postings are appended to this table, ordered by text id (texts get
# increasing ids, so every insert lands at the end of the B-tree), instead of being inserted in
# term order into ``postings``, where each batch would dirty most of the table's pages. The first
# read, purge or :meth:`KeywordView.finish_rebuild` moves them into ``postings`` in one sorted pass.
# Each batch still writes its rows and its checkpoint in one transaction, so the view is correct
# (postings = postings + postings_bulk) at every commit, and a crash mid-rebuild loses nothing.
_BULK_DDL = """
CREATE TABLE IF NOT EXISTS postings_bulk(
  term_id INTEGER NOT NULL, text_id INTEGER NOT NULL, tf INTEGER NOT NULL, dl INTEGER NOT NULL,
  cube TEXT NOT NULL, t_from INTEGER NOT NULL, t_to INTEGER NOT NULL,
  PRIMARY KEY(text_id, term_id)
) WITHOUT ROWID;
"""


@dataclass(frozen=True, slots=True)
class CorpusStats:
    """BM25 statistics of the searched corpus as of an offset."""

    n: int
    avgdl: float
    idf: dict[str, float]
    df: dict[str, int] = field(default_factory=dict)


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
    prune_ratio = 0.02  # terms in more than 2% of the corpus only rescore (see ``search_terms``)
    prune_min_df = 500
    hot_min_postings = 5000  # queries of common terms only, with more postings, score from cached arrays
    hot_max_postings = 4_000_000  # cached postings kept at most (about 40 bytes each)

    def __init__(self, path: str | Path, opener: Opener | None = None):
        self._corpus: dict[str, tuple[int, int]] = {}
        self._term_ids: dict[str, int] = {}
        self._analysed: tuple[Any, int] | None = None
        self._analysed_text: str | None = None
        self._df_cache: dict[tuple[Any, ...], tuple[int, bool]] = {}
        self._df_stamp: tuple[Any, ...] = ()
        self._hot: dict[str, tuple[np.ndarray, ...]] = {}
        self._hot_size = 0
        self._cube_codes: dict[str, int] = {}
        self._codes_lock = threading.Lock()
        super().__init__(path, opener)

    def _ddl(self) -> str:
        return _DDL

    def _tables(self) -> list[str]:
        return ["terms", "postings", "corpus", "postings_bulk"]

    def reset(self) -> None:
        self._corpus.clear()
        self._term_ids.clear()
        super().reset()
        c = self.conn()  # the view is empty: fold the rebuild in bulk mode (see ``_BULK_DDL``)
        c.execute("BEGIN IMMEDIATE")
        try:
            c.execute(_BULK_DDL)
            c.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('bulk', 1)")
            c.execute("COMMIT")
        except BaseException:
            if c.in_transaction:
                c.execute("ROLLBACK")
            raise

    # -- bulk mode (rebuild from zero) ---------------------------------------------------
    @staticmethod
    def _in_bulk(c: sqlite3.Connection) -> bool:
        return c.execute("SELECT 1 FROM meta WHERE key = 'bulk'").fetchone() is not None

    def _merge_bulk(self, c: sqlite3.Connection) -> None:
        """Move the bulk postings into ``postings`` (inside the caller's write transaction)."""
        if not self._in_bulk(c):
            return
        c.execute("DROP INDEX IF EXISTS postings_text")  # rebuilt by one sort below, not row by row
        c.execute("INSERT INTO postings(term_id, text_id, tf, dl, cube, t_from, t_to) SELECT term_id, text_id, tf, "
                  "dl, cube, t_from, t_to FROM postings_bulk ORDER BY term_id, text_id")
        c.execute("CREATE INDEX postings_text ON postings(text_id)")
        c.execute("DROP TABLE postings_bulk")
        c.execute("DELETE FROM meta WHERE key = 'bulk'")

    def finish_rebuild(self) -> None:
        """End the bulk mode of a rebuild from zero (also done lazily by the first read)."""
        c = self.conn()
        if not self._in_bulk(c):
            return
        c.execute("BEGIN IMMEDIATE")
        try:
            self._merge_bulk(c)
            c.execute("COMMIT")
        except BaseException:
            if c.in_transaction:
                c.execute("ROLLBACK")
            raise

    def _ready(self) -> sqlite3.Connection:
        """This thread's connection, after any pending bulk merge (every read goes through here)."""
        c = self.conn()
        if self._in_bulk(c):
            self.finish_rebuild()
        return c

    def apply_batch(self, events: Sequence[Event]) -> None:
        try:
            super().apply_batch(events)
        except BaseException:  # ids cached from a rolled-back transaction must not survive it
            self._term_ids.clear()
            raise
        finally:
            self._corpus.clear()

    # -- indexing ------------------------------------------------------------------------
    def _text_length(self, text: str) -> int:
        self._analysed_text = text  # analysed once, used for the length and the postings
        self._analysed = term_frequencies(text)
        return self._analysed[1]

    def _resolve_terms(self, c: sqlite3.Connection, words: set[str]) -> None:
        """Fill the term-id cache for ``words``: one lookup per 500 unknown words, one insert for new ones."""
        unknown = [w for w in words if w not in self._term_ids]
        for chunk in _chunks(unknown, 500):
            self._term_ids.update(c.execute(f"SELECT term, term_id FROM terms WHERE term IN "
                                            f"({','.join('?' * len(chunk))})", chunk).fetchall())
        new = sorted(w for w in unknown if w not in self._term_ids)
        if new:
            start = (c.execute("SELECT MAX(term_id) FROM terms").fetchone()[0] or 0) + 1
            ids = {w: start + i for i, w in enumerate(new)}
            c.executemany("INSERT INTO terms(term_id, term) VALUES (?,?)", [(i, w) for w, i in ids.items()])
            self._term_ids.update(ids)

    def _index_text(self, c: sqlite3.Connection, text_id: int, s: MemoryState, text: str) -> None:
        tf, dl = self._analysed if self._analysed and self._analysed_text == text else term_frequencies(text)
        at = s.updated_offset
        # the term (a string here) becomes its id when the batch is flushed
        self._buf_postings[text_id] = (tf, dl, s.cube, at)

    def _invalidate_caches(self) -> None:
        self._term_ids.clear()

    def _discard_buffers(self) -> None:
        super()._discard_buffers()
        self._buf_postings: dict[int, tuple[Mapping[str, int], int, str, int]] = {}  # text -> (tf, dl, cube, at)
        self._buf_posting_ends: dict[int, int] = {}  # buffered text -> offset its postings stop counting at
        self._buf_posting_closes: list[tuple[int, int]] = []
        self._buf_corpus: dict[tuple[str, int], tuple[int, int]] = {}

    def _flush_extra(self, c: sqlite3.Connection) -> None:
        if self._buf_postings:
            buf = self._buf_postings
            self._resolve_terms(c, {t for tf, _, _, _ in buf.values() for t in tf})
            ids, ends = self._term_ids, self._buf_posting_ends
            rows = [(ids[t], text_id, n, dl, cube, at, ends.get(text_id, OPEN))
                    for text_id, (tf, dl, cube, at) in buf.items() for t, n in tf.items()]
            table = "postings_bulk" if self._in_bulk(c) else "postings"
            c.executemany(f"INSERT INTO {table}(term_id, text_id, tf, dl, cube, t_from, t_to) VALUES (?,?,?,?,?,?,?)",
                          rows)
        if self._buf_posting_closes:
            table = "postings_bulk" if self._in_bulk(c) else "postings"
            c.executemany(f"UPDATE {table} SET t_to = ? WHERE text_id = ?", self._buf_posting_closes)
        if self._buf_corpus:
            c.executemany("INSERT OR REPLACE INTO corpus(cube, offset, n, total) VALUES (?,?,?,?)",
                          [(cube, off, n, total) for (cube, off), (n, total) in self._buf_corpus.items()])

    def _counts(self, c: sqlite3.Connection, cube: str) -> tuple[int, int]:
        got = self._corpus.get(cube)
        if got is None:
            row = c.execute("SELECT n, total FROM corpus WHERE cube = ? ORDER BY offset DESC LIMIT 1",
                            (cube,)).fetchone()
            got = (row[0], row[1]) if row else (0, 0)
        return got

    def _on_version(self, c: sqlite3.Connection, cur: Current, prev: Current | None, e: Event) -> None:
        s, text_id = cur.state, cur.text_id
        if prev is not None and prev.text_id is not None and prev.state.exists and (
                prev.text_id != text_id or not s.exists):
            # the previous text stops counting: close its postings' interval (document frequencies)
            if prev.text_id in self._buf_postings:
                self._buf_posting_ends[prev.text_id] = e.offset
            else:
                self._buf_posting_closes.append((e.offset, prev.text_id))
        before = (1, prev.text_len) if prev and prev.state.exists and prev.text_id is not None else (0, 0)
        after = (1, cur.text_len) if s.exists and text_id is not None else (0, 0)
        if before == after:
            return
        for cube in (s.cube, ALL_CUBES):
            n, total = self._counts(c, cube)
            n, total = n + after[0] - before[0], total + after[1] - before[1]
            self._corpus[cube] = (n, total)
            self._buf_corpus[(cube, e.offset)] = (n, total)

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
        self._merge_bulk(c)
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
    def corpus_stats(self, query_terms: Sequence[str], cubes: Sequence[str] | None, as_of: int | None,
                     max_df: float | None = None) -> CorpusStats:
        """Document count, mean length and per-term idf of the corpus current at ``as_of``.

        ``max_df`` (a share of the corpus) leaves out terms in more memories than that, counting
        each term's postings only up to that limit (cheap for very common terms).
        """
        c = self._ready()
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
            known = self._df_cache_for(c)
            scope = (tuple(cubes) if cubes is not None else None, at)
            cube_sql, cube_args = _cube_clause(cubes, "p")
            missing: dict[int, str] = {}
            cap = int(max_df * n) + 1 if max_df is not None else None
            for t, tid in ids.items():
                got = known.get((t, *scope))  # (count, exact); not exact: the count stopped at a cap
                if got is not None and (got[1] or (cap is not None and got[0] >= cap)):
                    if cap is None or got[0] < cap:
                        dfs[t] = got[0]
                else:
                    missing[tid] = t
            if cap is not None:
                for tid, t in missing.items():
                    df = c.execute(f"SELECT COUNT(*) FROM (SELECT 1 FROM postings p WHERE p.term_id = ? AND "
                                   f"p.t_from <= ? AND p.t_to > ?{cube_sql} LIMIT ?)",
                                   (tid, at, at, *cube_args, cap)).fetchone()[0]
                    known[(t, *scope)] = (df, df < cap)
                    if df < cap:
                        dfs[t] = df
            elif missing:
                for t in missing.values():
                    known[(t, *scope)] = (0, True)
                marks = ",".join("?" * len(missing))
                for tid, df in c.execute(
                        f"SELECT p.term_id, COUNT(*) FROM postings p WHERE p.term_id IN ({marks}) "
                        f"AND p.t_from <= ? AND p.t_to > ?{cube_sql} GROUP BY p.term_id",
                        (*missing, at, at, *cube_args)):
                    known[(missing[tid], *scope)] = (df, True)
                    dfs[missing[tid]] = df
        return CorpusStats(n, (total / n) if n else 0.0, {t: idf(n, df) for t, df in dfs.items() if df},
                           {t: df for t, df in dfs.items() if df})

    def _df_cache_for(self, c: sqlite3.Connection) -> dict[tuple[Any, ...], tuple[int, bool]]:
        """Document frequencies already counted for the view's present content.

        Keyed by (term, cubes, offset); valid while the checkpoint and the purge generation stay
        the same: the view only changes through ``apply_batch`` (which moves the checkpoint, also
        for an erasure) or ``reset`` (which moves the generation), and a fold to a given
        checkpoint is deterministic. Common terms cost a count over many postings, so repeated
        queries save most of their time here.
        """
        stamp = tuple(c.execute("SELECT key, value FROM meta WHERE key IN ('checkpoint', 'generation') "
                                "ORDER BY key").fetchall())
        if stamp != self._df_stamp or len(self._df_cache) > 200_000:
            self._df_cache = {}
            self._df_stamp = stamp
            self._hot, self._hot_size = {}, 0
        return self._df_cache

    def _hot_postings(self, c: sqlite3.Connection, term: str, term_id: int) -> tuple[np.ndarray, ...]:
        """Every posting of a common term as arrays (text id, tf, dl, cube code, t_from, t_to).

        Cached with the document frequencies (same validity) within ``hot_max_postings``.
        """
        got = self._hot.get(term)
        if got is not None:
            return got
        # one row per cube, each column concatenated by SQLite (all aggregates see the rows in the
        # same order) and parsed by numpy: about twice as fast as fetching the rows as tuples
        codes = self._cube_codes
        parts: list[list[np.ndarray]] = [[] for _ in range(6)]
        for cube, *cols in c.execute(
                "SELECT cube, group_concat(text_id), group_concat(tf), group_concat(dl), group_concat(t_from), "
                "group_concat(t_to) FROM postings WHERE term_id = ? GROUP BY cube", (term_id,)):
            arrays = [np.array(col.split(","), dtype=np.int64) for col in cols]
            with self._codes_lock:  # two threads must never give two cubes one code
                code = codes.setdefault(cube, len(codes))
            arrays.insert(3, np.full(len(arrays[0]), code, dtype=np.int64))
            for i, a in enumerate(arrays):
                parts[i].append(a)
        got = tuple(np.concatenate(p) if p else np.zeros(0, dtype=np.int64) for p in parts)
        got = (got[0], got[1].astype(np.float64), got[2].astype(np.float64), got[3], got[4], got[5])
        size = len(got[0])
        if self._hot_size + size > self.hot_max_postings:
            self._hot, self._hot_size = {}, 0
        self._hot[term] = got
        self._hot_size += size
        return got

    def _score_hot(self, c: sqlite3.Connection, weights: Mapping[str, float], ids: Mapping[str, int],
                   cubes: Sequence[str] | None, at: int, norm: float) -> tuple[np.ndarray, np.ndarray]:
        """(text ids, BM25) of every text current at ``at`` with one of the terms, from cached arrays.

        The same arithmetic as the SQL scorer, term by term, summed per text.
        """
        tids, contribs = [], []
        wanted = None if cubes is None else np.array([self._cube_codes.get(x, -1) for x in cubes], dtype=np.int64)
        for t, w in weights.items():
            text_id, tf, dl, cube, t_from, t_to = self._hot_postings(c, t, ids[t])
            mask = (t_from <= at) & (t_to > at)
            if wanted is not None:
                mask &= np.isin(cube, wanted)
            f, d = tf[mask], dl[mask]
            tids.append(text_id[mask])
            contribs.append(w * f * (K1 + 1) / (f + K1 * (1 - B) + (B * norm) * d))
        text_ids = np.concatenate(tids)
        if not len(text_ids):
            return text_ids, np.zeros(0)
        sums = np.bincount(text_ids, weights=np.concatenate(contribs))
        hit = np.bincount(text_ids) > 0
        where = np.flatnonzero(hit)
        return where, sums[where]

    def _lookup_terms(self, query_terms: Sequence[str]) -> dict[str, int]:
        uniq = list(dict.fromkeys(query_terms))
        if not uniq:
            return {}
        marks = ",".join("?" * len(uniq))
        rows = self._ready().execute(f"SELECT term, term_id FROM terms WHERE term IN ({marks})", uniq)
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
        cube_sql, cube_args = _cube_clause(cubes, "p")
        state_sql, state_args = _state_clause(states)
        meta_sql, meta_args = metadata_clause(metadata)
        excluded = set(exclude)
        norm = K1 / stats.avgdl if stats.avgdl else 0.0
        # 1) rank texts current at ``at`` from the postings alone (their own validity interval);
        # 2) resolve the best texts to their memory versions, applying state/metadata filters;
        # widen step 1 until k versions pass or every matching text was seen.
        # Terms in more than ``prune_ratio`` of the corpus (near stop words, idf close to 0) do not
        # generate candidates when rarer terms are present: the candidates of the rarer terms are
        # rescored exactly with every term. Deterministic at any offset, so as-of still equals a fold.
        cutoff = max(self.prune_min_df, int(self.prune_ratio * stats.n))
        generators = [t for t in stats.idf if stats.df.get(t, 0) <= cutoff]
        pruned = 0 < len(generators) < len(stats.idf)
        gen_terms = generators if pruned else list(stats.idf)
        gen_values = ",".join("(?,?)" for _ in gen_terms)
        gen_args: list[Any] = []
        for t in gen_terms:
            gen_args += [ids[t], stats.idf[t]]
        bm25 = f"SUM(w.idf * p.tf * {K1 + 1} / (p.tf + {K1 * (1 - B)} + {B * norm} * p.dl))"
        score_sql = (f"WITH w(term_id, idf) AS (VALUES {gen_values}) SELECT p.text_id, {bm25} AS s "
                     "FROM w JOIN postings p ON p.term_id = w.term_id "
                     f"WHERE p.t_from <= ? AND p.t_to > ?{cube_sql} "
                     "GROUP BY p.text_id ORDER BY s DESC LIMIT ?")
        c = self._ready()
        m = 4 * k + 50
        hot = not pruned and sum(stats.df.get(t, 0) for t in gen_terms) > self.hot_min_postings and all(
            stats.df.get(t, 0) > cutoff for t in gen_terms)
        if hot:
            # every term is common: score from the cached posting arrays instead of aggregating
            # the same tens of thousands of postings in SQL at every query
            hot_ids, hot_scores = self._score_hot(c, {t: stats.idf[t] for t in gen_terms}, ids, cubes, at, norm)
            hot_order: np.ndarray | None = None
        while True:
            if hot:
                if m >= len(hot_scores):
                    if hot_order is None:
                        hot_order = np.argsort(-hot_scores, kind="stable")
                    top = hot_order
                else:
                    part = np.argpartition(-hot_scores, m - 1)[:m]
                    top = part[np.argsort(-hot_scores[part], kind="stable")]
                scored = list(zip(hot_ids[top].tolist(), hot_scores[top].tolist(), strict=True))
            else:
                scored = c.execute(score_sql, (*gen_args, at, at, *cube_args, m)).fetchall()
            by_text = dict(scored)
            if pruned and by_text:
                by_text = {}
                for chunk in _chunks([tid for tid, _ in scored], 400):
                    marks = ",".join("?" * len(chunk))
                    by_text.update(c.execute(
                        f"WITH w(term_id, idf) AS (VALUES {values}) SELECT p.text_id, {bm25} FROM w JOIN postings p "
                        f"ON p.term_id = w.term_id AND p.text_id IN ({marks}) GROUP BY p.text_id",
                        (*wargs, *chunk)).fetchall())
            found: list[Hit] = []
            for chunk in _chunks(list(by_text), 500):
                marks = ",".join("?" * len(chunk))
                for tid, mid in c.execute(
                        f"SELECT v.text_id, v.memory_id FROM versions v WHERE v.text_id IN ({marks}) "
                        f"AND v.valid_from <= ? AND v.valid_to > ? AND v.exists_ = 1{state_sql}{meta_sql}",
                        (*chunk, at, at, *state_args, *meta_args)):
                    if mid not in excluded:
                        found.append((mid, float(by_text[tid])))
            found.sort(key=lambda h: (-h[1], h[0]))
            exhausted = len(scored) < m
            if exhausted or (len(found) >= k and scored[-1][1] < found[k - 1][1]):
                return found[:k]
            m *= 4

    def score_memories(self, qterms: Sequence[str], memory_ids: Iterable[str], cubes: Sequence[str] | None = None,
                       as_of: int | None = None, stats: CorpusStats | None = None) -> dict[str, float]:
        """BM25 of the given memories' versions current at ``as_of`` for analysed ``qterms`` (rescoring)."""
        uniq = list(dict.fromkeys(qterms))
        stats = stats or self.corpus_stats(uniq, cubes, as_of)
        weights = {t: w for t, w in stats.idf.items() if t in set(uniq)}
        ids = list(dict.fromkeys(memory_ids))
        if not weights or not ids:
            return {}
        term_ids = self._lookup_terms(list(weights))
        at = OPEN - 1 if as_of is None else as_of
        values = ",".join("(?,?)" for _ in weights)
        wargs: list[Any] = []
        for t, w in weights.items():
            wargs += [term_ids[t], w]
        norm = K1 / stats.avgdl if stats.avgdl else 0.0
        out: dict[str, float] = {}
        for chunk in _chunks(ids, 400):
            marks = ",".join("?" * len(chunk))
            for mid, score in self._ready().execute(
                    f"WITH w(term_id, idf) AS (VALUES {values}) "
                    f"SELECT v.memory_id, SUM(w.idf * p.tf * {K1 + 1} / (p.tf + {K1 * (1 - B)} + {B * norm} * p.dl)) "
                    "FROM versions v CROSS JOIN w CROSS JOIN postings p "  # index lookups, candidate by candidate
                    "ON p.term_id = w.term_id AND p.text_id = v.text_id "
                    f"WHERE v.memory_id IN ({marks}) AND v.valid_from <= ? AND v.valid_to > ? AND v.exists_ = 1 "
                    "GROUP BY v.memory_id", (*wargs, *chunk, at, at)):
                out[mid] = float(score)
        return out

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
