"""The embedded vector view: one row per memory version, temporal, exactly-once, searchable as of any offset.

Storage (one SQLite file, WAL):

* ``versions``: one row per memory version with ``valid_from`` (offset of the event that made it
  current) and ``valid_to`` (offset of the event that superseded it, ``OPEN`` while current),
  cube, lifecycle state, subject, metadata, tags and the ``slot`` of its vector (NULL when the
  version has no readable text: a sealed payload whose key is gone or no opener was given).
* ``vectors``: one float32 vector per distinct text (keyed by the SHA-256 of the text, never the
  text itself); versions that only change state or tags share their predecessor's slot.
* ``meta``: the checkpoint (last applied offset), the embedding model id, and a generation
  counter that tells readers in other processes that the view changed.

Each ``apply_batch`` writes rows, vectors and the checkpoint in one ``BEGIN IMMEDIATE``
transaction, re-reading the checkpoint inside it, so redelivered events are skipped and a crash
leaves either the whole batch or none of it.

Search keeps a columnar copy of the searchable rows in memory (numpy arrays: slot, valid_from,
valid_to, cube, state) and the vector matrix; a query as of offset N masks rows with
``valid_from <= N < valid_to`` and scores them, so as-of and head queries do the same work.
Scoring is exact (float32 dot products); see ``projections/vector_ann.py`` for the optional
approximate index used on large views, and docs/vector.md for the measurements behind it.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from ledger import events as ev
from ledger.errors import InvalidRequest, present
from ledger.events import Event
from ledger.file_modes import private_dir, private_file
from ledger.lifecycle import check_state
from ledger.memory_state import Erasure, Opener, content_subjects, erasure_of
from ledger.sqlite_pool import dropping_without_zeroing, immediate
from projections import vector_ann
from projections.base import OPEN, Hit
from projections.embedding import Embedder
from projections.embedding_cache import EmbeddingCache, embed_cached, text_hash

_DDL = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS vectors(
  slot INTEGER PRIMARY KEY,
  text_sha256 BLOB NOT NULL UNIQUE,
  vec BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS versions(
  id INTEGER PRIMARY KEY,
  memory_id TEXT NOT NULL,
  cube TEXT NOT NULL,
  valid_from INTEGER NOT NULL,
  valid_to INTEGER NOT NULL,
  state TEXT NOT NULL,
  subject TEXT,
  present INTEGER NOT NULL,
  slot INTEGER,
  metadata BLOB NOT NULL,
  tags BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS versions_memory ON versions(memory_id, valid_to);
CREATE INDEX IF NOT EXISTS versions_subject ON versions(subject) WHERE subject IS NOT NULL;
CREATE INDEX IF NOT EXISTS versions_closed ON versions(valid_to) WHERE valid_to < 4611686018427387904;
"""

SCHEMA = _DDL  # the tables and columns a vector view file must have (projections.view_health)
_CHUNK = 500
_Content = tuple["str | None", "dict[str, Any] | None", "bytes | None"]  # text, metadata, text digest

try:  # multi-threaded BLAS on small products mostly waits for its threads: score on one
    from threadpoolctl import ThreadpoolController

    _BLAS = ThreadpoolController()
except ImportError:  # pragma: no cover - optional
    _BLAS = None


def _one_blas_thread() -> Any:
    return _BLAS.limit(limits=1, user_api="blas") if _BLAS is not None else contextlib.nullcontext()
_GROW = 1.5


@dataclass(slots=True)
class _Cur:
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


@dataclass(frozen=True, slots=True)
class VersionRow:
    """One memory version as stored in the view (what ``rows_as_of`` returns)."""

    memory_id: str
    cube: str
    valid_from: int
    valid_to: int
    state: str
    subject: str | None
    exists: bool
    has_vector: bool
    metadata: dict[str, Any]
    tags: list[str]


class VectorView:
    """Vector projection of the log (``Projection`` + ``VectorSearch``), embedded in SQLite + numpy.

    ``path`` is the view's SQLite file; ``embedder`` turns texts into vectors; ``opener`` opens
    sealed (per-subject encrypted) payloads, ``None`` meaning sealed memories get no vector.
    ``cache`` defaults to ``embedding_cache.sqlite`` next to ``path``. ``exact_threshold``: at or
    below this many candidate rows a query is always answered by exact scoring; above it, and when
    at least ``ann_min_fraction`` of the view's vectors are candidates, the usearch HNSW index
    proposes candidates that are then filtered and scored exactly (``ann=None``: always exact;
    ``"auto"``: the index is built on the first query that needs it, or by ``build_index``).
    """

    name = "vector"
    # events per transaction when folding the whole log: fewer, larger commits (3.4 s instead of
    # 4.3 s at 100k memories); a batch's missing embeddings are cached as they are computed
    rebuild_batch_size = 10_000

    def __init__(self, path: str | Path, embedder: Embedder, opener: Opener | None = None, *,
                 cache: EmbeddingCache | None = None, exact_threshold: int = 20_000,
                 ann: str | None = "auto", ann_min_fraction: float = 0.05):
        self.path = Path(path)
        private_dir(self.path.parent)
        self.embedder = embedder
        self.opener = opener
        self.dim = int(embedder.dim)
        self.cache = cache if cache is not None else EmbeddingCache(self.path.parent / "embedding_cache.sqlite")
        self._own_cache = cache is None
        self.exact_threshold = exact_threshold
        if ann not in (None, "auto"):
            raise InvalidRequest(f"ann must be None or 'auto', not {ann!r}")
        self.ann_mode = ann
        self.ann_min_fraction = ann_min_fraction
        self._lock = threading.RLock()
        private_file(self.path)
        self._conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA secure_delete=ON")
        self._conn.execute("PRAGMA busy_timeout=60000")
        self._conn.execute("PRAGMA cache_size=-32768")  # 32 MB of pages
        self._conn.execute("PRAGMA wal_autocheckpoint=16384")  # fewer, larger checkpoints during rebuilds
        self._conn.executescript(_DDL)
        self._mem: _Columns | None = None  # in-memory search columns, loaded lazily
        self._ann: vector_ann.AnnIndex | None = None
        self._ann_epoch: str | None = None
        self._ann_saved = 0  # coverage of the persisted index file
        self._indexer: threading.Thread | None = None
        self._closing = False
        self._check_model()

    # -- meta ------------------------------------------------------------------------------
    def _meta(self, key: str, default: str | None = None) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def _set_meta(self, key: str, value: object) -> None:
        self._conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, str(value)))

    def _check_model(self) -> None:
        """A view built with another model (or dimension) is dropped: its vectors are not comparable."""
        stored = self._meta("model")
        want = f"{self.embedder.model_id}|{self.dim}"
        if stored is None:
            with self._lock, immediate(self._conn):
                if self._meta("model") is None:
                    self._set_meta("model", want)
                    self._set_meta("epoch", _new_epoch())
                    self._set_meta("checkpoint", -1)
                    self._set_meta("generation", 0)
        elif stored != want:
            self.reset()

    def checkpoint(self) -> int:
        """The last applied offset (-1 when nothing was applied)."""
        with self._lock:
            return int(self._meta("checkpoint", "-1"))

    def checkpoint_hash(self) -> str | None:
        """Hash of the log event at the checkpoint when it was folded (None: nothing folded, or not recorded)."""
        with self._lock:
            return self._meta("checkpoint_hash")

    def _generation(self) -> int:
        return int(self._meta("generation", "0"))

    # -- writes ----------------------------------------------------------------------------
    def apply_batch(self, events: Sequence[Event]) -> None:
        """Apply events in offset order, writing rows, vectors and the checkpoint in one transaction.

        Events at or below the checkpoint are skipped (redelivery is harmless).
        """
        last = None
        for e in events:
            if last is not None and e.offset <= last:
                raise InvalidRequest(f"events must come in increasing offset order ({e.offset} after {last})")
            last = e.offset
        with self._lock:
            cp = self.checkpoint()
            todo = [e for e in events if e.offset > cp]
            if not todo:
                return
            contents = self._open_contents(todo)
            gen_seen = self._generation()
            known, vecs = self._embed_missing(contents)
            with immediate(self._conn):
                cp = int(self._meta("checkpoint", "-1"))  # another process may have moved it
                todo = [e for e in todo if e.offset > cp]
                if not todo:
                    self._conn.execute("ROLLBACK")
                    return
                gen = self._generation()
                writer = _BatchWriter(self, contents, vecs)
                writer.prefetch(self._memory_ids(todo))
                if gen != gen_seen:  # another process wrote in between: look the slots up again
                    known = self._slots_of([d for _, _, d in contents.values() if d is not None])
                writer.slots.update(known)
                for e in todo:
                    writer.apply(e)
                writer.flush()
                self._set_meta("checkpoint", todo[-1].offset)
                self._set_meta("checkpoint_hash", todo[-1].hash)
                writer.last_offset = todo[-1].offset
                if writer.forgot:  # erased vectors invalidate every derived index
                    self._set_meta("epoch", _new_epoch())
                self._set_meta("generation", gen + 1)
            self._after_commit(writer, gen)

    def _open_contents(self, events: Sequence[Event]) -> dict[int, _Content]:
        """(text, metadata or None, text digest) of every content event, by offset (opens sealed payloads once)."""
        out: dict[int, _Content] = {}
        for e in events:
            if e.type not in (ev.MEMORY_ADDED, ev.MEMORY_UPDATED, ev.MEMORY_MERGED, ev.MEMORY_RESTORED):
                continue
            p = e.payload
            text, meta = None, p.get("metadata")
            if "text" in p:
                text = p["text"]
            elif p.get("sealed") is not None:
                opened = self.opener(p["sealed"]) if self.opener else None
                if opened is not None:
                    text, meta = opened.get("text"), opened.get("metadata", meta)
            out[e.offset] = (text, meta, text_hash(text) if text else None)
        return out

    def _embed_missing(self, contents: Mapping[int, _Content]) -> tuple[dict[bytes, int], dict[bytes, np.ndarray]]:
        """(slots the view already has, vectors through the cache of the others) for the batch's texts."""
        texts: dict[bytes, str] = {}
        for text, _, d in contents.values():
            if d is not None:
                texts.setdefault(d, text)  # type: ignore[arg-type]
        if not texts:
            return {}, {}
        known = self._slots_of(list(texts))
        missing = [d for d in texts if d not in known]
        if not missing:
            return known, {}
        vecs = embed_cached(self.embedder, [texts[d] for d in missing], self.cache, digests=missing)
        return known, dict(zip(missing, vecs, strict=True))

    @staticmethod
    def _memory_ids(events: Sequence[Event]) -> list[str]:
        ids: list[str] = []
        for e in events:
            mid = e.payload.get("memory_id")
            if isinstance(mid, str) and e.type != ev.MEMORY_READ:
                ids.append(mid)
            if e.type == ev.MEMORY_MERGED:
                ids += e.payload.get("sources", [])
        return ids

    def _slots_of(self, digests: Sequence[bytes]) -> dict[bytes, int]:
        found: dict[bytes, int] = {}
        for i in range(0, len(digests), _CHUNK):
            chunk = digests[i:i + _CHUNK]
            q = f"SELECT text_sha256, slot FROM vectors WHERE text_sha256 IN ({','.join('?' * len(chunk))})"
            for d, s in self._conn.execute(q, chunk):
                found[bytes(d)] = s
        return found

    def _after_commit(self, writer: _BatchWriter, gen_before: int) -> None:
        if writer.purged_digests:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self.cache.delete(writer.purged_digests)
        if writer.forgot:
            self._drop_memory(shred_index=True)
            return
        mem = self._mem
        if mem is None:
            return
        if mem.generation != gen_before:
            self._mem = None  # another process wrote too: reload lazily at the next query
            return
        mem.add_vectors(writer.new_vectors)
        mem.add_rows(writer.new_search_rows)
        mem.close_rows(writer.closed_done)
        mem.generation = gen_before + 1
        mem.checkpoint = writer.last_offset
        mem.max_id = max(mem.max_id, writer.next_id - 1)

    def reset(self) -> None:
        """Drop every row, vector and the ANN index; the checkpoint goes back to -1."""
        with self._lock, dropping_without_zeroing(self._conn):
            with immediate(self._conn):
                gen = int(self._meta("generation", "0"))
                self._conn.execute("DROP TABLE IF EXISTS versions")
                self._conn.execute("DROP TABLE IF EXISTS vectors")
                for stmt in _DDL.split(";"):
                    if stmt.strip():
                        self._conn.execute(stmt)
                self._set_meta("model", f"{self.embedder.model_id}|{self.dim}")
                self._set_meta("epoch", _new_epoch())
                self._set_meta("checkpoint", -1)
                self._conn.execute("DELETE FROM meta WHERE key = 'checkpoint_hash'")
                self._set_meta("generation", gen + 1)
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._drop_memory(shred_index=True)

    def close(self) -> None:
        """Release the database (and the cache if the view opened it)."""
        self._closing = True
        self._wait_indexer()
        with self._lock:
            try:
                self._save_ann()
            except Exception:  # noqa: BLE001 - the index is derived; the next open rebuilds it
                pass
            self._conn.close()
            if self._own_cache:
                self.cache.close()
            self._mem = None
            self._ann = None

    # -- in-memory columns -----------------------------------------------------------------
    def _wait_indexer(self) -> None:
        t = self._indexer
        if t is not None and t.is_alive() and t is not threading.current_thread():
            t.join()

    def _drop_memory(self, shred_index: bool = False) -> None:
        self._mem = None
        self._ann = None
        self._ann_epoch = None
        self._ann_saved = 0
        if shred_index:
            vector_ann.shred_index_files(self._ann_path())

    def _columns(self) -> _Columns:
        """The in-memory search columns, reloaded if any process changed the view since."""
        gen = self._generation()
        mem = self._mem
        if mem is not None and mem.generation == gen:
            return mem
        self._conn.execute("BEGIN")  # one read snapshot for the meta and the rows
        try:
            gen = self._generation()
            epoch = self._meta("epoch", "") or ""
            cp = int(self._meta("checkpoint", "-1"))
            if mem is not None and mem.epoch == epoch:
                mem.refresh(self._conn, cp)  # rows appended/closed by another process since
            else:  # first load, or vectors erased / view reset since: load everything
                mem = _Columns.load(self._conn, self.dim, gen, epoch, cp)
            mem.generation = gen
        finally:
            self._conn.execute("COMMIT")
        if self._ann is not None and self._ann_epoch != mem.epoch:
            self._ann = None
            self._ann_saved = 0
        self._mem = mem
        return mem

    def _ann_path(self) -> Path:
        return self.path.with_name(self.path.name + ".usearch")

    # -- queries ---------------------------------------------------------------------------
    def _resolve(self, as_of: int | None) -> int:
        cp = self.checkpoint()
        if as_of is None:
            return cp
        if isinstance(as_of, bool) or not isinstance(as_of, (int, np.integer)):
            raise InvalidRequest(f"as_of must be an offset (int), not {as_of!r}")
        if as_of < -1:
            raise InvalidRequest(f"offset {as_of} is out of range")
        if as_of > cp:
            raise InvalidRequest(f"the vector view is at offset {cp}; catch it up before querying as of {as_of}")
        return int(as_of)

    def vector_search(self, query_vector: Sequence[float], k: int, cubes: Sequence[str] | None = None,
                      as_of: int | None = None, states: Iterable[str] | None = None) -> list[Hit]:
        """Top ``k`` memories by cosine similarity of their version current at ``as_of`` (None: head).

        Ties are broken by memory id. Only versions with a vector (readable text) can match.
        """
        q = np.asarray(query_vector, dtype=np.float32).reshape(-1)
        if q.shape[0] != self.dim:
            raise InvalidRequest(f"query vector has {q.shape[0]} dimensions; the view has {self.dim}")
        if not np.all(np.isfinite(q)):
            raise InvalidRequest("query vector contains NaN or infinite values")
        norm = float(np.linalg.norm(q))
        if norm > 0:
            q = q / norm  # cosine, whatever the query's scale
        if states is not None:
            states = [check_state(states)] if isinstance(states, str) else [check_state(x) for x in states]
        if k <= 0:
            return []
        with self._lock:
            n_at = self._resolve(as_of)
            mem = self._columns()
            rows = mem.candidates(n_at, cubes, states)
            if rows.size == 0:
                return []
            if self._use_ann(mem, rows):
                scored = self._ann_search(mem, q, k, rows)
                if scored is not None:
                    return scored
            return mem.exact_top(q, k, rows)

    # -- approximate index ---------------------------------------------------------------
    def _use_ann(self, mem: _Columns, rows: np.ndarray) -> bool:
        if self.ann_mode is None or not vector_ann.AVAILABLE or rows.size <= self.exact_threshold:
            return False
        return rows.size >= self.ann_min_fraction * max(1, mem.n_present)

    def _ensure_ann(self, mem: _Columns, wait: bool) -> vector_ann.AnnIndex | None:
        """The index for ``mem``'s epoch: loaded from disk, or built (now if ``wait``, else in the background).

        Without ``wait`` a query never waits for indexing: it gets None (answer exactly) while a
        background thread builds the index, and slots not indexed yet are scored exactly.
        """
        if self._ann is None or self._ann_epoch != mem.epoch:
            self._ann = vector_ann.AnnIndex.load(self._ann_path(), mem.epoch, self.dim)
            self._ann_epoch = mem.epoch if self._ann is not None else None
            self._ann_saved = self._ann.covered if self._ann is not None else 0
        if self._ann is None:
            if wait:
                ann = vector_ann.AnnIndex(self.dim)
                ann.extend(mem.vectors, mem.present, mem.n_slots)
                self._ann, self._ann_epoch, self._ann_saved = ann, mem.epoch, 0
            else:
                self._start_indexer(mem.epoch)
                return None
        ann = self._ann
        if ann.covered < mem.n_slots:
            if wait:
                ann.extend(mem.vectors, mem.present, mem.n_slots)
            elif mem.n_slots - ann.covered > 1024:
                self._start_indexer(mem.epoch)
        return ann

    def _start_indexer(self, epoch: str) -> None:
        if self._indexer is not None and self._indexer.is_alive():
            return
        self._indexer = threading.Thread(target=self._index_in_background, args=(epoch,), daemon=True,
                                         name=f"vector-index-{self.path.name}")
        self._indexer.start()

    def _index_in_background(self, epoch: str) -> None:
        """Build or extend the index in small steps, never holding the view lock while indexing."""
        with self._lock:
            ann = self._ann if self._ann is not None and self._ann_epoch == epoch else vector_ann.AnnIndex(self.dim)
        published = ann is self._ann
        while not self._closing:
            with self._lock:
                mem = self._mem
                if mem is None or mem.epoch != epoch:
                    return  # erased or reset meanwhile: this index must not be used or saved
                vectors, present, upto = mem.vectors, mem.present, mem.n_slots
            if ann.covered >= upto:
                break
            ann.extend(vectors, present, min(upto, ann.covered + (2048 if not published else 64)), threads=1)
        with self._lock:
            if self._closing or self._mem is None or self._mem.epoch != epoch or self._meta("epoch") != epoch:
                return
            if not published:
                self._ann, self._ann_epoch, self._ann_saved = ann, epoch, 0
            if ann.covered - self._ann_saved > max(4096, self._ann_saved // 4):
                self._save_ann()

    def _save_ann(self) -> None:
        if self._ann is not None and self._ann_epoch and self._ann.covered > self._ann_saved:
            self._ann.save(self._ann_path(), self._ann_epoch)
            self._ann_saved = self._ann.covered

    def build_index(self) -> dict[str, Any]:
        """Build (or bring up to date) and persist the approximate index now; returns its description."""
        if self.ann_mode is None or not vector_ann.AVAILABLE:
            return {"ann": None}
        self._wait_indexer()  # outside the lock: the background indexer takes it to publish
        with self._lock:
            mem = self._columns()
            ann = present(self._ensure_ann(mem, wait=True), "the ANN index just built")
            self._save_ann()
            return {"ann": "usearch-hnsw-f16", "vectors": len(ann), "covered_slots": ann.covered}

    def ann_description(self) -> str:
        """What answers large queries: the HNSW index (with its size) or exact scoring."""
        if self.ann_mode is None or not vector_ann.AVAILABLE:
            return "exact only"
        if self._ann is None:
            return f"usearch HNSW (not built yet), exact at <= {self.exact_threshold} candidates"
        return (f"usearch HNSW f16 M=16 ef_add=128 ef_search=1024 over {len(self._ann):,} vectors; "
                f"exact at <= {self.exact_threshold:,} candidates or < {self.ann_min_fraction:.0%} of vectors")

    def _ann_search(self, mem: _Columns, q: np.ndarray, k: int, rows: np.ndarray) -> list[Hit] | None:
        """Candidates from the index, kept if valid for this query, scored exactly; None: go exact."""
        ann = self._ensure_ann(mem, wait=False)
        if ann is None:
            return None
        total = max(1, len(ann))
        want = max(64, int(k * 2 * mem.n_present / max(1, rows.size)) + 32)
        row_slots = mem.slot[rows]
        while True:
            mark = np.zeros(mem.n_slots, dtype=bool)
            mark[ann.search(q, want)] = True
            if ann.covered < mem.n_slots:
                mark[ann.covered:mem.n_slots] = True  # not indexed yet: scored exactly
            sel = rows[mark[row_slots]]
            if sel.size >= k:
                with _one_blas_thread():
                    scores = mem.vectors[mem.slot[sel]] @ q
                return mem.top(scores, sel, k)
            if want >= total:
                return None
            want = min(total, want * 4)

    def embed_query(self, text: str) -> np.ndarray:
        """The (cached) vector of a query text."""
        return embed_cached(self.embedder, [text], self.cache)[0]

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors of arbitrary texts through the cache (rows L2-normalised)."""
        return embed_cached(self.embedder, list(texts), self.cache)

    def score_texts(self, query_vector: Sequence[float], texts: Sequence[str]) -> list[float]:
        """Cosine similarity of each text (embedded through the cache) to the query vector.

        For candidates that are not rows of this view, e.g. memories of a branch overlay.
        """
        q = np.asarray(query_vector, dtype=np.float32).reshape(-1)
        if q.shape[0] != self.dim:
            raise InvalidRequest(f"query vector has {q.shape[0]} dimensions; the view has {self.dim}")
        if not texts:
            return []
        return [float(x) for x in self.embed_texts(texts) @ q]

    def rows_as_of(self, memory_ids: Sequence[str], as_of: int | None = None) -> dict[str, VersionRow]:
        """The version of each memory current at ``as_of`` (absent ids: not in the view then)."""
        with self._lock:
            n_at = self._resolve(as_of)
            out: dict[str, VersionRow] = {}
            ids = list(dict.fromkeys(memory_ids))
            for i in range(0, len(ids), _CHUNK):
                chunk = ids[i:i + _CHUNK]
                q = ("SELECT memory_id, cube, valid_from, valid_to, state, subject, present, slot, metadata, tags "
                     f"FROM versions WHERE memory_id IN ({','.join('?' * len(chunk))}) "
                     "AND valid_from <= ? AND valid_to > ?")
                for r in self._conn.execute(q, [*chunk, n_at, n_at]):
                    if r[6]:
                        out[r[0]] = VersionRow(r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6]), r[7] is not None,
                                               orjson.loads(r[8]), orjson.loads(r[9]))
            return out

    def provenance(self, memory_id: str, as_of: int | None = None) -> list[int]:
        """Offsets of the events that produced the memory's versions up to ``as_of``, oldest first."""
        with self._lock:
            n_at = self._resolve(as_of)
            return [r[0] for r in self._conn.execute(
                "SELECT valid_from FROM versions WHERE memory_id = ? AND valid_from <= ? ORDER BY valid_from",
                (memory_id, n_at))]

    def stats(self) -> dict[str, int]:
        """Row counts: versions, searchable versions, distinct vectors, checkpoint."""
        with self._lock:
            versions = self._conn.execute("SELECT count(*) FROM versions").fetchone()[0]
            vectors = self._conn.execute("SELECT count(*) FROM vectors").fetchone()[0]
            current = self._conn.execute(
                "SELECT count(*) FROM versions WHERE valid_to = ? AND present = 1 AND slot IS NOT NULL",
                (OPEN,)).fetchone()[0]
            return {"versions": versions, "vectors": vectors, "current_searchable": current,
                    "checkpoint": self.checkpoint()}


class _BatchWriter:
    """Folds one batch into row writes, with the semantics of ``ledger.memory_state.apply_event``."""

    def __init__(self, view: VectorView, contents: Mapping[int, _Content],
                 vecs: Mapping[bytes, np.ndarray]):
        self.view = view
        self.conn = view._conn
        self.contents = contents
        self.vecs = vecs
        self.cur: dict[str, _Cur | None] = {}
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
        for i in range(0, len(want), _CHUNK):
            chunk = want[i:i + _CHUNK]
            q = ("SELECT id, memory_id, cube, state, subject, present, slot, metadata, tags FROM versions "
                 f"WHERE valid_to = ? AND memory_id IN ({','.join('?' * len(chunk))})")
            for r in self.conn.execute(q, [OPEN, *chunk]):
                self.cur[r[1]] = _Cur(r[0], r[1], r[2], r[3], r[4], bool(r[5]), r[6], orjson.loads(r[7]),
                                      orjson.loads(r[8]))

    def _get(self, mid: str) -> _Cur | None:
        if mid not in self.cur:
            self.prefetch([mid])
        return self.cur[mid]

    def _slot(self, content: _Content) -> int | None:
        text, _, d = content
        if d is None or not text:
            return None
        s = self.slots.get(d)
        if s is None:  # slots of every digest already in the view were loaded before the batch
            vec = self.vecs.get(d)
            if vec is None:  # its vector was deleted by a concurrent process since: embed (cached)
                vec = embed_cached(self.view.embedder, [text], self.view.cache, digests=[d])[0]
            s = self.next_slot
            self.next_slot += 1
            self.pending_vectors.append((s, d, np.ascontiguousarray(vec, dtype=np.float32).tobytes()))
            self.new_vectors[s] = vec
            self.slots[d] = s
        return s

    def _put(self, c: _Cur, offset: int) -> None:
        """Make ``c`` the current version of its memory from ``offset`` on (closing the previous one)."""
        old = self.cur.get(c.memory_id)
        if old is not None:
            if old.row_id in self.pending:
                self.pending[old.row_id][4] = offset
            else:
                self.closed[old.row_id] = offset
        c.row_id = self.next_id
        self.next_id += 1
        self.pending[c.row_id] = [c.row_id, c.memory_id, c.cube, offset, OPEN, c.state, c.subject,
                                  int(c.present), c.slot, orjson.dumps(c.metadata), orjson.dumps(c.tags)]
        self.cur[c.memory_id] = c

    def _touch(self, old: _Cur, offset: int, **changes: Any) -> None:
        c = _Cur(0, old.memory_id, old.cube, old.state, old.subject, old.present, old.slot, old.metadata, old.tags)
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
        if t not in (ev.MEMORY_ADDED, ev.MEMORY_MERGED, ev.MEMORY_UPDATED, ev.MEMORY_RESTORED,
                     ev.MEMORY_STATE_CHANGED, ev.MEMORY_TAGGED):
            return
        mid = p["memory_id"]
        if t in (ev.MEMORY_ADDED, ev.MEMORY_MERGED):
            content = self.contents[e.offset]
            meta = content[1]
            self._get(mid)
            subjects = content_subjects(p)
            subject = subjects[0] if subjects else None
            self._put(_Cur(0, mid, e.stream, p.get("state", "generated"), subject, True, self._slot(content),
                           dict(meta or {}), list(p.get("tags", []))), e.offset)
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
        elif t == ev.MEMORY_TAGGED:
            remove = set(p.get("remove", []))
            tags = [x for x in s.tags if x not in remove]
            tags += [x for x in p.get("add", []) if x not in tags]
            self._touch(s, e.offset, tags=tags)

    def _restore(self, e: Event, mid: str, s: _Cur | None) -> None:
        p = e.payload
        if not p.get("exists", True):
            if s is not None:
                self._touch(s, e.offset, present=False)
            return
        content = self.contents[e.offset]
        meta = content[1]
        if s is None:
            s = _Cur(0, mid, e.stream, "generated", None, True, None, {}, [])
        self._touch(s, e.offset, slot=self._slot(content), metadata=dict(meta or {}),
                    tags=list(p.get("tags", s.tags)), state=p.get("state", s.state), present=True)

    def _forget(self, erasure: Erasure) -> None:
        """Erasure: delete every version (and now-unused vector) of the erased subjects' memories and
        of the memories the erasure lists."""
        self.flush()
        mids: dict[str, None] = {}
        for subject in erasure.subjects:
            mids.update((r[0], None) for r in self.conn.execute(
                "SELECT DISTINCT memory_id FROM versions WHERE subject = ?", (subject,)))
        mids.update((m, None) for m in erasure.memory_ids)
        gone = set(mids)
        slots: list[int] = []
        for i in range(0, len(mids), _CHUNK):
            chunk = list(mids)[i:i + _CHUNK]
            marks = ",".join("?" * len(chunk))
            slots += [r[0] for r in self.conn.execute(
                f"SELECT DISTINCT slot FROM versions WHERE memory_id IN ({marks}) AND slot IS NOT NULL", chunk)]
            self.conn.execute(f"DELETE FROM versions WHERE memory_id IN ({marks})", chunk)
        for i in range(0, len(slots), _CHUNK):
            chunk = slots[i:i + _CHUNK]
            marks = ",".join("?" * len(chunk))
            orphans = self.conn.execute(
                f"SELECT slot, text_sha256 FROM vectors WHERE slot IN ({marks}) AND NOT EXISTS "
                "(SELECT 1 FROM versions v WHERE v.slot = vectors.slot)", chunk).fetchall()
            if orphans:
                self.conn.execute(f"DELETE FROM vectors WHERE slot IN ({','.join('?' * len(orphans))})",
                                  [o[0] for o in orphans])
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
            self.conn.executemany("INSERT INTO vectors(slot, text_sha256, vec) VALUES (?, ?, ?)",
                                  self.pending_vectors)
            self.pending_vectors = []
        if self.closed:
            self.conn.executemany("UPDATE versions SET valid_to = ? WHERE id = ?",
                                  [(vt, rid) for rid, vt in self.closed.items()])
        if self.pending:
            rows = list(self.pending.values())
            self.conn.executemany(
                "INSERT INTO versions(id, memory_id, cube, valid_from, valid_to, state, subject, present, slot, "
                "metadata, tags) VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)
            self.new_search_rows += [(r[0], r[8], r[3], r[4], r[1], r[2], r[5]) for r in rows
                                     if r[7] and r[8] is not None]
        self.closed_done.update(self.closed)
        self.pending = {}
        self.closed = {}


class _Columns:
    """Columnar in-memory copy of the searchable rows (present, with a vector) and the vector matrix."""

    def __init__(self, dim: int, generation: int, epoch: str = ""):
        self.dim = dim
        self.generation = generation
        self.epoch = epoch
        self.vectors = np.zeros((1024, dim), dtype=np.float32)  # row = slot id
        self.present = np.zeros(1024, dtype=bool)  # slot ids that hold a vector
        self.n_present = 0
        self.n_slots = 0  # 1 + highest slot id loaded
        self.checkpoint = -1  # the view's checkpoint these columns reflect
        self.max_id = 0  # highest version row id seen (searchable or not)
        cap = 1024
        self.ids = np.zeros(cap, dtype=np.int64)
        self.slot = np.zeros(cap, dtype=np.int64)
        self.vf = np.zeros(cap, dtype=np.int64)
        self.vt = np.zeros(cap, dtype=np.int64)
        self.cube = np.zeros(cap, dtype=np.int32)
        self.state = np.zeros(cap, dtype=np.int32)
        self.mem = np.zeros(cap, dtype=np.int64)
        self.n = 0
        self.pos: dict[int, int] = {}
        self.memory_ids: list[str] = []
        self.memory_code: dict[str, int] = {}
        self.cube_code: dict[str, int] = {}
        self.state_code: dict[str, int] = {}

    @classmethod
    def load(cls, conn: sqlite3.Connection, dim: int, generation: int, epoch: str = "",
             checkpoint: int = -1) -> _Columns:
        mem = cls(dim, generation, epoch)
        mem.checkpoint = checkpoint
        top = conn.execute("SELECT max(slot) FROM vectors").fetchone()[0]
        if top is not None:  # straight into a matrix of the final size, a chunk at a time
            mem.vectors = np.zeros((top + 1, dim), dtype=np.float32)
            mem.present = np.zeros(top + 1, dtype=bool)
            mem.n_slots = top + 1
            cur = conn.execute("SELECT slot, vec FROM vectors ORDER BY slot")
            while chunk := cur.fetchmany(4096):
                slots = np.fromiter((r[0] for r in chunk), dtype=np.int64, count=len(chunk))
                mem.vectors[slots] = np.frombuffer(b"".join(r[1] for r in chunk), dtype=np.float32).reshape(-1, dim)
                mem.present[slots] = True
            mem.n_present = int(mem.present.sum())
        rows = conn.execute("SELECT id, slot, valid_from, valid_to, memory_id, cube, state FROM versions "
                            "WHERE present = 1 AND slot IS NOT NULL ORDER BY id").fetchall()
        mem.add_rows(rows)
        mem.max_id = conn.execute("SELECT coalesce(max(id), 0) FROM versions").fetchone()[0]
        return mem

    def refresh(self, conn: sqlite3.Connection, checkpoint: int) -> None:
        """Catch up with rows written by another process (same epoch: nothing was erased)."""
        rows = conn.execute("SELECT slot, vec FROM vectors WHERE slot >= ? ORDER BY slot", (self.n_slots,)).fetchall()
        self.add_vectors({r[0]: np.frombuffer(r[1], dtype=np.float32) for r in rows})
        last_id = int(self.max_id)
        rows = conn.execute("SELECT id, slot, valid_from, valid_to, memory_id, cube, state FROM versions "
                            "WHERE id > ? AND present = 1 AND slot IS NOT NULL ORDER BY id", (last_id,)).fetchall()
        self.add_rows(rows)
        closed = conn.execute(f"SELECT id, valid_to FROM versions WHERE valid_to > ? AND valid_to < {OPEN}",
                              (self.checkpoint,)).fetchall()
        self.close_rows(dict(closed))
        self.max_id = max(self.max_id, conn.execute("SELECT coalesce(max(id), 0) FROM versions").fetchone()[0])
        self.checkpoint = checkpoint

    def _grow_rows(self, need: int) -> None:
        cap = self.ids.shape[0]
        if need <= cap:
            return
        new = max(need, int(cap * _GROW) + 1)
        for name in ("ids", "slot", "vf", "vt", "cube", "state", "mem"):
            old = getattr(self, name)
            arr = np.zeros(new, dtype=old.dtype)
            arr[: self.n] = old[: self.n]
            setattr(self, name, arr)

    def add_vectors(self, vecs: Mapping[int, np.ndarray]) -> None:
        if not vecs:
            return
        top = max(vecs) + 1
        if top > self.vectors.shape[0]:
            new = np.zeros((max(top, int(self.vectors.shape[0] * _GROW) + 1), self.dim), dtype=np.float32)
            new[: self.n_slots] = self.vectors[: self.n_slots]
            self.vectors = new
            present = np.zeros(new.shape[0], dtype=bool)
            present[: self.n_slots] = self.present[: self.n_slots]
            self.present = present
        slots = np.fromiter(vecs.keys(), dtype=np.int64, count=len(vecs))
        self.vectors[slots] = np.stack([np.asarray(v, dtype=np.float32) for v in vecs.values()])
        self.n_present += int((~self.present[slots]).sum())
        self.present[slots] = True
        self.n_slots = max(self.n_slots, top)

    def _code(self, table: dict[str, int], value: str, names: list[str] | None = None) -> int:
        c = table.get(value)
        if c is None:
            c = table[value] = len(table)
            if names is not None:
                names.append(value)
        return c

    def add_rows(self, rows: Sequence[Sequence[Any]]) -> None:
        """Append rows ``(id, slot, valid_from, valid_to, memory_id, cube, state)`` (ids increasing)."""
        if not rows:
            return
        n0 = self.n
        self._grow_rows(n0 + len(rows))
        ids, slots, vfs, vts, mems, cubes, states = zip(*rows, strict=True)
        m = len(rows)
        self.ids[n0:n0 + m] = ids
        self.slot[n0:n0 + m] = slots
        self.vf[n0:n0 + m] = vfs
        self.vt[n0:n0 + m] = vts
        mc, cc, sc = self.memory_code, self.cube_code, self.state_code
        self.mem[n0:n0 + m] = [mc[x] if x in mc else self._code(mc, x, self.memory_ids) for x in mems]
        self.cube[n0:n0 + m] = [cc[x] if x in cc else self._code(cc, x) for x in cubes]
        self.state[n0:n0 + m] = [sc[x] if x in sc else self._code(sc, x) for x in states]
        self.pos.update(zip(ids, range(n0, n0 + m), strict=True))
        self.n = n0 + m
        self.max_id = max(self.max_id, int(ids[-1]))

    def close_rows(self, closed: Mapping[int, int]) -> None:
        for rid, vt in closed.items():
            p = self.pos.get(rid)
            if p is not None:
                self.vt[p] = vt

    def candidates(self, n_at: int, cubes: Sequence[str] | None, states: Iterable[str] | None) -> np.ndarray:
        """Positions of the rows valid at offset ``n_at`` that pass the cube and state filters."""
        n = self.n
        mask = (self.vf[:n] <= n_at) & (self.vt[:n] > n_at)
        if cubes is not None:
            if isinstance(cubes, str):
                cubes = [cubes]
            codes = [self.cube_code[c] for c in cubes if c in self.cube_code]
            if not codes:
                return np.zeros(0, dtype=np.int64)
            mask &= np.isin(self.cube[:n], codes) if len(codes) > 1 else (self.cube[:n] == codes[0])
        if states is not None:
            if isinstance(states, str):
                states = [states]
            codes = [self.state_code[s] for s in states if s in self.state_code]
            if not codes:
                return np.zeros(0, dtype=np.int64)
            mask &= np.isin(self.state[:n], codes) if len(codes) > 1 else (self.state[:n] == codes[0])
        return np.flatnonzero(mask)

    def scores(self, q: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Exact cosine scores of the given row positions."""
        slots = self.slot[rows]
        with _one_blas_thread():
            if rows.size * 3 < self.n_slots:
                return self.vectors[slots] @ q
            return (self.vectors[: self.n_slots] @ q)[slots]

    def exact_top(self, q: np.ndarray, k: int, rows: np.ndarray) -> list[Hit]:
        return self.top(self.scores(q, rows), rows, k)

    def top(self, scores: np.ndarray, rows: np.ndarray, k: int) -> list[Hit]:
        """The ``k`` best (score, then memory id) among ``rows``."""
        if rows.size > k:
            # keep every row tied with the k-th score so the id tie-break is exact
            kth = np.partition(scores, rows.size - k)[rows.size - k]
            keep = scores >= kth
            scores, rows = scores[keep], rows[keep]
        names = self.memory_ids
        mems = self.mem[rows]
        order = sorted(range(rows.size), key=lambda i: (-float(scores[i]), names[mems[i]]))[:k]
        return [(names[mems[i]], float(scores[i])) for i in order]


def _new_epoch() -> str:
    return os.urandom(8).hex()
