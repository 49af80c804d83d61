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

import os
import sqlite3
import threading
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, overload

import numpy as np
import orjson

from ledger import events as ev
from ledger.errors import InvalidRequest, present
from ledger.events import Event
from ledger.lifecycle import check_state
from ledger.memory_state import Opener
from ledger.storage.file_modes import private_dir, private_file
from ledger.storage.sqlite_pool import dropping_without_zeroing, immediate
from projections.base import OPEN, Hit, VersionRow
from projections.vector import ann as vector_ann
from projections.vector.columns import Columns, one_blas_thread
from projections.vector.embedding import Embedder
from projections.vector.embedding_cache import EmbeddingCache, embed_cached, text_hash
from projections.vector.writer import CHUNK, BatchWriter, Content

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
    filters_inside = True  # vector_search takes ``allowed`` (a pre-filter)
    # events per transaction when folding the whole log: fewer, larger commits (3.4 s instead of
    # 4.3 s at 100k memories); a batch's missing embeddings are cached as they are computed
    rebuild_batch_size = 10_000

    def __init__(
        self,
        path: str | Path,
        embedder: Embedder,
        opener: Opener | None = None,
        *,
        cache: EmbeddingCache | None = None,
        exact_threshold: int = 20_000,
        ann: str | None = "auto",
        ann_min_fraction: float = 0.05,
    ):
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
        self._mem: Columns | None = None  # in-memory search columns, loaded lazily
        self._ann: vector_ann.AnnIndex | None = None
        self._ann_epoch: str | None = None
        self._ann_saved = 0  # coverage of the persisted index file
        self._indexer: threading.Thread | None = None
        self._closing = False
        self._check_model()

    # -- meta ------------------------------------------------------------------------------
    @overload
    def _meta(self, key: str, default: str) -> str: ...

    @overload
    def _meta(self, key: str, default: None = None) -> str | None: ...

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
                writer = BatchWriter(self._conn, contents, vecs, self._embed_one)
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

    def _open_contents(self, events: Sequence[Event]) -> dict[int, Content]:
        """(text, metadata or None, text digest) of every content event, by offset (opens sealed payloads once)."""
        out: dict[int, Content] = {}
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

    def _embed_missing(self, contents: Mapping[int, Content]) -> tuple[dict[bytes, int], dict[bytes, np.ndarray]]:
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
        for i in range(0, len(digests), CHUNK):
            chunk = digests[i : i + CHUNK]
            q = f"SELECT text_sha256, slot FROM vectors WHERE text_sha256 IN ({','.join('?' * len(chunk))})"
            for d, s in self._conn.execute(q, chunk):
                found[bytes(d)] = s
        return found

    def _after_commit(self, writer: BatchWriter, gen_before: int) -> None:
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

    def _columns(self) -> Columns:
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
                mem = Columns.load(self._conn, self.dim, gen, epoch, cp)
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

    def vector_search(
        self,
        query_vector: Sequence[float],
        k: int,
        cubes: Sequence[str] | None = None,
        as_of: int | None = None,
        states: Iterable[str] | None = None,
        allowed: Collection[str] | None = None,
    ) -> list[Hit]:
        """Top ``k`` memories by cosine similarity of their version current at ``as_of`` (None: head).

        Ties are broken by memory id. Only versions with a vector (readable text) can match.
        ``allowed`` (memory ids, e.g. those a filter selects) is a pre-filter: rows of other
        memories are masked out before scoring, so ``k`` hits come back whenever ``k`` allowed
        memories have a vector.
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
            rows = mem.candidates(n_at, cubes, states, allowed)
            if rows.size == 0:
                return []
            if self._use_ann(mem, rows):
                scored = self._ann_search(mem, q, k, rows)
                if scored is not None:
                    return scored
            return mem.exact_top(q, k, rows)

    # -- approximate index ---------------------------------------------------------------
    def _use_ann(self, mem: Columns, rows: np.ndarray) -> bool:
        if self.ann_mode is None or not vector_ann.AVAILABLE or rows.size <= self.exact_threshold:
            return False
        return rows.size >= self.ann_min_fraction * max(1, mem.n_present)

    def _ensure_ann(self, mem: Columns, wait: bool) -> vector_ann.AnnIndex | None:
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
        self._indexer = threading.Thread(
            target=self._index_in_background, args=(epoch,), daemon=True, name=f"vector-index-{self.path.name}"
        )
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
        return (
            f"usearch HNSW f16 M=16 ef_add=128 ef_search=1024 over {len(self._ann):,} vectors; "
            f"exact at <= {self.exact_threshold:,} candidates or < {self.ann_min_fraction:.0%} of vectors"
        )

    def _ann_search(self, mem: Columns, q: np.ndarray, k: int, rows: np.ndarray) -> list[Hit] | None:
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
                mark[ann.covered : mem.n_slots] = True  # not indexed yet: scored exactly
            sel = rows[mark[row_slots]]
            if sel.size >= k:
                with one_blas_thread():
                    scores = mem.vectors[mem.slot[sel]] @ q
                return mem.top(scores, sel, k)
            if want >= total:
                return None
            want = min(total, want * 4)

    def _embed_one(self, text: str, digest: bytes) -> np.ndarray:
        return embed_cached(self.embedder, [text], self.cache, digests=[digest])[0]

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
            for i in range(0, len(ids), CHUNK):
                chunk = ids[i : i + CHUNK]
                q = (
                    "SELECT memory_id, cube, valid_from, valid_to, state, subject, present, slot, metadata, tags "
                    f"FROM versions WHERE memory_id IN ({','.join('?' * len(chunk))}) "
                    "AND valid_from <= ? AND valid_to > ?"
                )
                for r in self._conn.execute(q, [*chunk, n_at, n_at]):
                    if r[6]:
                        out[r[0]] = VersionRow(
                            r[0],
                            r[1],
                            r[4],
                            r[2],
                            r[3],
                            r[5],
                            bool(r[6]),
                            orjson.loads(r[8]),
                            orjson.loads(r[9]),
                            has_vector=r[7] is not None,
                        )
            return out

    def provenance(self, memory_id: str, as_of: int | None = None) -> list[int]:
        """Offsets of the events that produced the memory's versions up to ``as_of``, oldest first."""
        with self._lock:
            n_at = self._resolve(as_of)
            return [
                r[0]
                for r in self._conn.execute(
                    "SELECT valid_from FROM versions WHERE memory_id = ? AND valid_from <= ? ORDER BY valid_from",
                    (memory_id, n_at),
                )
            ]

    def stats(self) -> dict[str, int]:
        """Row counts: versions, searchable versions, distinct vectors, checkpoint."""
        with self._lock:
            versions = self._conn.execute("SELECT count(*) FROM versions").fetchone()[0]
            vectors = self._conn.execute("SELECT count(*) FROM vectors").fetchone()[0]
            current = self._conn.execute(
                "SELECT count(*) FROM versions WHERE valid_to = ? AND present = 1 AND slot IS NOT NULL", (OPEN,)
            ).fetchone()[0]
            return {
                "versions": versions,
                "vectors": vectors,
                "current_searchable": current,
                "checkpoint": self.checkpoint(),
            }


def _new_epoch() -> str:
    return os.urandom(8).hex()
