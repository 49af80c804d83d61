"""The embedded keyword view: temporal BM25 over an inverted index kept in SQLite.

Why not FTS5's ``bm25()`` (or tantivy, or bm25s)? All three score with corpus statistics of the
whole index, i.e. including versions written *after* the offset asked about, so an as-of query
would rank differently from the same query on a view folded only up to that offset. Here every
statistic BM25 needs is itself temporal: each document (a distinct text of a memory) carries the
offset interval in which it counted, so document count, total length and document frequencies
as of any offset are counted over the documents current then. An as-of query therefore equals a
fresh fold, at about the cost of a head query. (SQLite here is 3.40, so FTS5's ``secure-delete``
and contentless-delete, which erasure needs, are not available either.)

Layout: ``terms`` (term -> id), ``postings`` (packed per term and flush,
``projections.posting_segments``), ``docs`` (cube, length, interval per text,
``projections.keyword_docs``), plus the shared ``versions``/``texts`` rows. Scoring runs in numpy
over a term's whole posting list, masked by the documents current at the offset.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

from ledger.events import Event
from ledger.memory_state import MemoryState, Opener
from ledger.storage.sqlite_pool import immediate
from projections import posting_segments as segments
from projections.base import OPEN, Hit
from projections.keyword_docs import DOCS_DDL, DocColumns, Snapshot
from projections.temporal_store import Current, TemporalSqliteView, _chunks
from projections.text_analysis import ANALYSIS_VERSION, term_frequencies, terms

K1 = 0.9  # tuned for short memories (LoCoMo dev; see docs/projections.md)
B = 0.3
_DDL = (
    """
CREATE TABLE IF NOT EXISTS terms(term_id INTEGER PRIMARY KEY, term TEXT NOT NULL UNIQUE);
"""
    + segments.POSTINGS_DDL
    + DOCS_DDL
)


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


def bm25(w: float, tf: np.ndarray, dl: np.ndarray, norm: float) -> np.ndarray:
    """BM25 contribution of one term with idf ``w`` to documents with these frequencies and lengths.

    ``norm`` is ``K1 / avgdl`` (0 for an empty corpus).
    """
    return w * tf * (K1 + 1) / (tf + K1 * (1 - B) + (B * norm) * dl)


@dataclass(slots=True)
class _Scope:
    """What one query reads: the view's stamp, the synced document columns, the offset and cubes.

    A query at head reads as of the checkpoint it found, so rows that later batches write while
    it runs (always at higher offsets) cannot change its answer.
    """

    c: sqlite3.Connection
    checkpoint: int
    layout: tuple[int, int]  # (purge generation, compaction epoch)
    docs: Snapshot
    codes: np.ndarray | None
    at: int
    df: dict[tuple[Any, ...], int]  # document frequencies of this stamp
    valid: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # term id -> current postings


class KeywordView(TemporalSqliteView):
    """Temporal BM25 keyword view (``KeywordSearch`` port)."""

    name = "keyword"
    layout = f"keyword-2/analysis-{ANALYSIS_VERSION}"  # packed postings and document columns
    store_text = True
    rebuild_batch_size = 25_000  # fewer, larger segments when folding the whole log
    compact_after = 100_000  # segment rows written before the segments of busy terms are merged
    compact_max_segments = 64

    def __init__(self, path: str | Path, opener: Opener | None = None):
        self._term_ids: dict[str, int] = {}  # writer's cache of term ids
        # the checkpoint at which ``_term_ids`` held every term of the file (None: not known to)
        self._terms_complete_at: int | None = None
        self._complete_now = False
        self._docs = DocColumns()
        self._lists = segments.PostingLists()
        self._df: dict[tuple[Any, ...], int] = {}
        self._df_stamp: tuple[int, int, int] | None = None
        self._analysed: tuple[str, list[str]] | None = None
        super().__init__(path, opener)

    def _ddl(self) -> str:
        return _DDL

    def reset(self) -> None:
        self._term_ids.clear()
        super().reset()
        self._terms_complete_at = -1  # an empty view: the empty cache knows every term

    def apply_batch(self, events: Sequence[Event]) -> None:
        self._complete_now = False
        try:
            super().apply_batch(events)
        except BaseException:  # ids cached from a rolled-back transaction must not survive it
            self._term_ids.clear()
            self._terms_complete_at = None
            raise
        self._terms_complete_at = self.committed if self._complete_now else None
        self._maybe_compact()

    # -- indexing ------------------------------------------------------------------------
    def _text_length(self, text: str) -> int:
        self._analysed = (text, terms(text))  # analysed once, used for the length and the postings
        return len(self._analysed[1])

    def _index_text(self, c: sqlite3.Connection, text_id: int, s: MemoryState, text: str) -> None:
        got = self._analysed
        ts = got[1] if got is not None and got[0] is text else terms(text)
        self._buf_terms.append((text_id, ts))
        at = s.updated_offset
        # a text written to a memory that does not exist (an update after a deletion) never counts
        self._buf_docs[text_id] = [text_id, s.cube, len(ts), at, OPEN if s.exists else at, at]

    def _on_version(self, c: sqlite3.Connection, cur: Current, prev: Current | None, e: Event) -> None:
        if prev is None or prev.text_id is None or not prev.state.exists:
            return
        if prev.text_id != cur.text_id or not cur.state.exists:  # the previous text stops counting
            row = self._buf_docs.get(prev.text_id)
            if row is not None:
                row[4] = row[5] = e.offset
            else:
                self._buf_doc_closes.append((e.offset, e.offset, prev.text_id))

    def _discard_buffers(self) -> None:
        super()._discard_buffers()
        self._buf_terms: list[tuple[int, list[str]]] = []  # (text id, its terms) in text id order
        self._buf_docs: dict[int, list[Any]] = {}
        self._buf_doc_closes: list[tuple[int, int, int]] = []  # (t_to, changed, text id)

    def _resolve_terms(self, c: sqlite3.Connection, words: set[str]) -> None:
        """Fill the term-id cache for ``words``: one lookup per 500 unknown words, one insert for new ones.

        The lookups are skipped while the cache is known to hold every term of the file: since a
        reset, as long as only this object wrote (the file's checkpoint is the one it committed).
        """
        unknown = [w for w in words if w not in self._term_ids]
        self._complete_now = self._terms_complete_at is not None and self._terms_complete_at == self.checkpoint()
        if not self._complete_now:
            self._term_ids.update(self._lookup_terms(c, unknown))
        new = sorted(w for w in unknown if w not in self._term_ids)
        if new:
            start = (c.execute("SELECT MAX(term_id) FROM terms").fetchone()[0] or 0) + 1
            ids = {w: start + i for i, w in enumerate(new)}
            c.executemany("INSERT INTO terms(term_id, term) VALUES (?,?)", [(i, w) for w, i in ids.items()])
            self._term_ids.update(ids)

    def _flush_extra(self, c: sqlite3.Connection) -> None:
        buf = self._buf_terms
        if buf:
            flat = list(chain.from_iterable(ts for _, ts in buf))
            self._resolve_terms(c, set(flat))
            term_ids = np.fromiter(map(self._term_ids.__getitem__, flat), np.int64, len(flat))
            text_ids = np.repeat(
                np.fromiter((t for t, _ in buf), np.int64, len(buf)),
                np.fromiter((len(ts) for _, ts in buf), np.int64, len(buf)),
            )
            rows = segments.segment_rows(term_ids, text_ids, buf[0][0])
            segments.insert_segments(c, rows)
            c.execute(
                "INSERT INTO meta(key, value) VALUES ('segments', ?) "
                "ON CONFLICT(key) DO UPDATE SET value = value + excluded.value",
                (len(rows),),
            )
        if self._buf_docs:
            c.executemany(
                "INSERT INTO docs(text_id, cube, dl, t_from, t_to, changed) VALUES (?,?,?,?,?,?)",
                list(self._buf_docs.values()),
            )
        if self._buf_doc_closes:
            c.executemany("UPDATE docs SET t_to = ?, changed = ? WHERE text_id = ?", self._buf_doc_closes)

    def _invalidate_caches(self) -> None:
        self._term_ids.clear()
        self._terms_complete_at = None

    def _maybe_compact(self) -> None:
        """Merge the many small segments of busy terms that small batches leave (same postings)."""
        c = self.conn()
        row = c.execute("SELECT value FROM meta WHERE key = 'segments'").fetchone()
        if row is None or int(row[0]) < self.compact_after:
            return
        with immediate(c):
            segments.compact(c, self.compact_max_segments)
            c.execute("UPDATE meta SET value = 0 WHERE key = 'segments'")
            c.execute(
                "INSERT INTO meta(key, value) VALUES ('postings_epoch', 1) "
                "ON CONFLICT(key) DO UPDATE SET value = value + 1"
            )

    def posting_rows(self) -> list[tuple[str, str, str | None, int, int, str, int, int]]:
        """The inverted index unpacked: (term, memory id, text, tf, dl, cube, t_from, t_to) sorted.

        Independent of row ids and segment boundaries, so two folds of the same events compare
        equal however their batches were cut (a diagnostic for tests and audits; reads it all).
        """
        c = self.conn()
        docs = {
            r[0]: r[1:]
            for r in c.execute(
                "SELECT d.text_id, x.memory_id, x.text, d.dl, d.cube, d.t_from, d.t_to FROM docs d "
                "JOIN texts x ON x.text_id = d.text_id"
            )
        }
        out = []
        for term, blob_ids, blob_tfs in c.execute(
            "SELECT t.term, p.text_ids, p.tfs FROM postings p JOIN terms t ON t.term_id = p.term_id"
        ).fetchall():
            ids, tfs = segments.decode([(blob_ids, blob_tfs)])
            for text_id, tf in zip(ids.tolist(), tfs.tolist(), strict=True):
                mid, text, dl, cube, t_from, t_to = docs[text_id]
                out.append((term, mid, text, int(tf), dl, cube, t_from, t_to))
        return sorted(out)

    # -- right to be forgotten -----------------------------------------------------------
    def _purge_texts(self, c: sqlite3.Connection, text_ids: list[int], memory_ids: list[str]) -> None:
        words: set[str] = set()
        for chunk in _chunks(text_ids, 500):
            for (text,) in c.execute(
                f"SELECT text FROM texts WHERE text IS NOT NULL AND text_id IN ({','.join('?' * len(chunk))})", chunk
            ).fetchall():
                words.update(terms(text))  # the same analysis that indexed it
        gone = np.array(sorted(text_ids), np.intp)
        for term_id in self._lookup_terms(c, sorted(words)).values():
            ids, tfs = segments.decode(segments.read_term(c, term_id))
            keep = ~np.isin(ids, gone)
            if keep.all():
                continue
            segments.rewrite_term(c, term_id, ids[keep], tfs[keep])
            if not keep.any():  # a term only the purged texts used would still spell out their words
                c.execute("DELETE FROM terms WHERE term_id = ?", (term_id,))
        for chunk in _chunks(text_ids, 500):
            c.execute(f"DELETE FROM docs WHERE text_id IN ({','.join('?' * len(chunk))})", chunk)
        self._term_ids.clear()
        self._terms_complete_at, self._complete_now = None, False

    # -- queries -------------------------------------------------------------------------
    @contextmanager
    def _reading(self, cubes: Sequence[str] | None, as_of: int | None) -> Iterator[_Scope]:
        """A query's scope inside one read transaction: every statement of the query sees the same
        committed state (a batch, purge or compaction committed meanwhile is not half seen)."""
        c = self.conn()
        own = not c.in_transaction
        if own:
            c.execute("BEGIN")
        try:
            yield self._scope(c, cubes, as_of)
        finally:
            if own and c.in_transaction:
                c.execute("COMMIT")

    def _scope(self, c: sqlite3.Connection, cubes: Sequence[str] | None, as_of: int | None) -> _Scope:
        meta = dict(
            c.execute(
                "SELECT key, value FROM meta WHERE key IN ('checkpoint', 'generation', 'postings_epoch')"
            ).fetchall()
        )
        checkpoint, gen, epoch = (
            int(meta.get("checkpoint", -1)),
            int(meta.get("generation", 0)),
            int(meta.get("postings_epoch", 0)),
        )
        snap = self._docs.sync(c, checkpoint, gen)
        stamp = (checkpoint, gen, epoch)
        if stamp != self._df_stamp or len(self._df) > 200_000:
            self._df, self._df_stamp = {}, stamp
        return _Scope(
            c,
            checkpoint,
            (gen, epoch),
            snap,
            self._docs.codes(cubes),
            checkpoint if as_of is None else min(as_of, checkpoint),
            self._df,
        )

    def _valid(self, scope: _Scope, term_id: int) -> tuple[np.ndarray, np.ndarray]:
        """(text ids, tf) of the term's postings whose document counted at the scope's offset and cubes."""
        got = scope.valid.get(term_id)
        if got is None:
            ids, tfs = self._lists.get(scope.c, term_id, scope.checkpoint, scope.layout)
            mask = DocColumns.valid(scope.docs.cols, ids, scope.at, scope.codes)
            got = scope.valid[term_id] = (ids[mask], tfs[mask])
        return got

    def _lookup_terms(self, c: sqlite3.Connection, query_terms: Sequence[str]) -> dict[str, int]:
        uniq = list(dict.fromkeys(query_terms))
        found: dict[str, int] = {}
        for chunk in _chunks(uniq, 500):
            found.update(
                c.execute(
                    f"SELECT term, term_id FROM terms WHERE term IN ({','.join('?' * len(chunk))})", chunk
                ).fetchall()
            )
        return {t: found[t] for t in uniq if t in found}

    def corpus_stats(
        self, query_terms: Sequence[str], cubes: Sequence[str] | None, as_of: int | None, max_df: float | None = None
    ) -> CorpusStats:
        """Document count, mean length and per-term idf of the corpus current at ``as_of``.

        ``max_df`` (a share of the corpus) leaves out terms in more memories than that.
        """
        with self._reading(cubes, as_of) as scope:
            return self._corpus_stats(scope, query_terms, max_df)[0]

    def _corpus_stats(
        self, scope: _Scope, query_terms: Sequence[str], max_df: float | None = None
    ) -> tuple[CorpusStats, dict[str, int]]:
        n, total = DocColumns.corpus(scope.docs, scope.at, scope.codes)
        ids = self._lookup_terms(scope.c, query_terms)
        dfs: dict[str, int] = {}
        if n and ids:
            cap = int(max_df * n) + 1 if max_df is not None else None
            key = (scope.at, None if scope.codes is None else scope.codes.tobytes())
            for t, tid in ids.items():
                df = scope.df.get((tid, *key))
                if df is None:
                    df = scope.df[(tid, *key)] = len(self._valid(scope, tid)[0])
                if df and (cap is None or df < cap):
                    dfs[t] = df
        stats = CorpusStats(n, (total / n) if n else 0.0, {t: idf(n, df) for t, df in dfs.items()}, dfs)
        return stats, ids

    def keyword_search(
        self,
        query: str,
        k: int,
        cubes: Sequence[str] | None = None,
        as_of: int | None = None,
        states: Iterable[str] | None = None,
        allowed: Mapping[str, int | None] | None = None,
        exclude: Iterable[str] = (),
    ) -> list[Hit]:
        """Top ``k`` memories by BM25 of their version current at ``as_of`` (None: head).

        ``states`` None means every lifecycle state; ``allowed`` (memory id -> text id, from
        :meth:`matching`) is a pre-filter: only those memories are ranked, so ``k`` hits come back
        whenever ``k`` allowed memories match the query; ``exclude`` drops memory ids (e.g. those
        a branch overlay replaces).
        """
        return self.search_terms(terms(query), k, cubes, as_of, states, allowed, exclude)

    def search_terms(
        self,
        qterms: Sequence[str],
        k: int,
        cubes: Sequence[str] | None = None,
        as_of: int | None = None,
        states: Iterable[str] | None = None,
        allowed: Mapping[str, int | None] | None = None,
        exclude: Iterable[str] = (),
    ) -> list[Hit]:
        """:meth:`keyword_search` for already analysed terms (e.g. a query expansion)."""
        if k <= 0 or (allowed is not None and not allowed):
            return []
        with self._reading(cubes, as_of) as scope:
            return self._search(scope, qterms, k, states, allowed, exclude)

    def _search(
        self,
        scope: _Scope,
        qterms: Sequence[str],
        k: int,
        states: Iterable[str] | None,
        allowed: Mapping[str, int | None] | None,
        exclude: Iterable[str],
    ) -> list[Hit]:
        stats, ids = self._corpus_stats(scope, qterms)
        if not stats.idf:
            return []
        norm = K1 / stats.avgdl if stats.avgdl else 0.0
        text_ids, scores = self._score(scope, {ids[t]: w for t, w in stats.idf.items()}, norm)
        if allowed is not None:  # pre-filter: rank only the texts of the allowed memories' versions
            keep = np.isin(text_ids, np.fromiter((t for t in allowed.values() if t is not None), np.int64))
            text_ids, scores = text_ids[keep], scores[keep]
            if not len(text_ids):
                return []
        state_sql, state_args = _state_clause(states)
        excluded = set(exclude)
        at = scope.at
        # rank every text current at ``at`` (exact BM25 over the terms' whole posting lists), then
        # resolve the best texts to their memory versions with the state/metadata filters, widening
        # until k versions pass and no unseen text could tie, or every text was seen.
        m = 4 * k + 50
        order: np.ndarray | None = None
        while True:
            if m >= len(scores):
                if order is None:
                    order = np.argsort(-scores, kind="stable")
                top = order
            else:
                part = np.argpartition(-scores, m - 1)[:m]
                top = part[np.argsort(-scores[part], kind="stable")]
            scored = list(zip(text_ids[top].tolist(), scores[top].tolist(), strict=True))
            by_text = dict(scored)
            found: list[Hit] = []
            for chunk in _chunks(list(by_text), 500):
                marks = ",".join("?" * len(chunk))
                for tid, mid in scope.c.execute(
                    f"SELECT v.text_id, v.memory_id FROM versions v WHERE v.text_id IN ({marks}) "
                    f"AND v.valid_from <= ? AND v.valid_to > ? AND v.exists_ = 1{state_sql}",
                    (*chunk, at, at, *state_args),
                ):
                    if mid not in excluded and (allowed is None or mid in allowed):
                        found.append((mid, by_text[tid]))
            found.sort(key=lambda h: (-h[1], h[0]))
            if len(top) == len(scores) or (len(found) >= k and scored[-1][1] < found[k - 1][1]):
                return found[:k]
            m *= 4

    def _score(self, scope: _Scope, weights: Mapping[int, float], norm: float) -> tuple[np.ndarray, np.ndarray]:
        """(text ids, BM25) of every text current in the scope that has one of the terms (term id -> idf)."""
        tids, contribs = [], []
        for term_id, w in weights.items():
            ids, tfs = self._valid(scope, term_id)
            tids.append(ids)
            contribs.append(bm25(w, tfs, scope.docs.cols.dl[ids], norm))
        text_ids = np.concatenate(tids)
        if not len(text_ids):
            return text_ids, np.zeros(0)
        sums = np.bincount(text_ids, weights=np.concatenate(contribs))
        where = np.flatnonzero(np.bincount(text_ids))
        return where, sums[where]

    def score_memories(
        self,
        qterms: Sequence[str],
        memory_ids: Iterable[str],
        cubes: Sequence[str] | None = None,
        as_of: int | None = None,
        stats: CorpusStats | None = None,
    ) -> dict[str, float]:
        """BM25 of the given memories' versions current at ``as_of`` for analysed ``qterms`` (rescoring)."""
        with self._reading(cubes, as_of) as scope:
            return self._score_memories(scope, qterms, memory_ids, stats)

    def _score_memories(
        self, scope: _Scope, qterms: Sequence[str], memory_ids: Iterable[str], stats: CorpusStats | None
    ) -> dict[str, float]:
        uniq = list(dict.fromkeys(qterms))
        stats = stats or self._corpus_stats(scope, uniq)[0]
        wanted = set(uniq)
        weights = {t: w for t, w in stats.idf.items() if t in wanted}
        ids = list(dict.fromkeys(memory_ids))
        if not weights or not ids:
            return {}
        term_ids = self._lookup_terms(scope.c, list(weights))
        mids: list[str] = []
        texts: list[int] = []
        for chunk in _chunks(ids, 500):
            for mid, text_id in scope.c.execute(
                f"SELECT memory_id, text_id FROM versions WHERE memory_id IN ({','.join('?' * len(chunk))}) "
                "AND valid_from <= ? AND valid_to > ? AND exists_ = 1 AND text_id IS NOT NULL",
                (*chunk, scope.at, scope.at),
            ):
                mids.append(mid)
                texts.append(text_id)
        want = np.array(texts, np.intp)
        dl_all = scope.docs.cols.dl
        known = want < len(dl_all)  # defensive: a text the synced columns do not hold is not scored
        dl = dl_all[np.where(known, want, 0)]
        total = np.zeros(len(want))
        hit = np.zeros(len(want), bool)
        norm = K1 / stats.avgdl if stats.avgdl else 0.0
        for t, w in weights.items():
            if t not in term_ids:
                continue
            pids, ptf = self._lists.get(scope.c, term_ids[t], scope.checkpoint, scope.layout)
            if not len(pids):
                continue
            pos = np.minimum(np.searchsorted(pids, want), len(pids) - 1)
            match = (pids[pos] == want) & known  # a current version's text counts: no interval check
            total[match] += bm25(w, ptf[pos[match]], dl[match], norm)
            hit |= match
        return {mids[i]: float(total[i]) for i in np.flatnonzero(hit)}

    def score_texts(
        self,
        query: str,
        texts: Mapping[str, str],
        cubes: Sequence[str] | None = None,
        as_of: int | None = None,
        qterms: Sequence[str] | None = None,
    ) -> dict[str, float]:
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


def _state_clause(states: Iterable[str] | None, alias: str = "v") -> tuple[str, list[Any]]:
    if states is None:
        return "", []
    s = list(states)
    return f" AND {alias}.state IN ({','.join('?' * len(s))})", s
