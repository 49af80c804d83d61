"""A persistent embedding cache keyed by (model id, SHA-256 of the text), so rebuilds never re-embed.

The cache is one SQLite file in the data directory. It stores vectors only (float32 blobs) under
the SHA-256 digest of the text: never the text itself. A digest still lets someone who already
holds a candidate text confirm it was embedded, so the vector view deletes the digests of a
forgotten subject's memories from the cache too (``delete``), with ``secure_delete`` on.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from ledger.storage.file_modes import private_file
from ledger.storage.sqlite_pool import immediate
from projections import view_health
from projections.vector.embedding import Embedder

_DDL = """
CREATE TABLE IF NOT EXISTS embeddings(
  id INTEGER PRIMARY KEY,
  model TEXT NOT NULL,
  text_sha256 BLOB NOT NULL,
  vec BLOB NOT NULL,
  UNIQUE(model, text_sha256)
);
"""

_CHUNK = 500  # host parameters per IN (...) lookup
log = logging.getLogger("memledger")


def text_hash(text: str) -> bytes:
    """SHA-256 digest of the UTF-8 text (the cache key)."""
    return hashlib.sha256(text.encode("utf-8")).digest()


class EmbeddingCache:
    """Vectors by (model id, text digest) in SQLite; safe to share between threads and processes.

    A damaged cache file (not a database, truncated, corrupt, another layout) is deleted and
    started afresh, at open or when a lookup hits the damage: it is only a cache. ``repaired``
    then says why (and a warning is logged on the ``memledger`` logger).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.RLock()
        self.hits = 0
        self.misses = 0
        self.repaired: str | None = None
        problem = view_health.file_problem(self.path)
        if problem is None:
            try:
                self._connect()
                self._conn.execute("SELECT model, text_sha256, vec FROM embeddings LIMIT 1").fetchall()
                return
            except sqlite3.DatabaseError as exc:
                if not view_health.is_damage(exc):
                    raise
                problem = view_health.describe(exc)
                with contextlib.suppress(Exception):
                    self._conn.close()
        self._start_afresh(problem)

    def _connect(self) -> None:
        private_file(self.path)
        self._conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")  # a lost cache entry costs one re-embedding
        self._conn.execute("PRAGMA secure_delete=ON")
        self._conn.execute("PRAGMA busy_timeout=60000")
        self._conn.execute("PRAGMA cache_size=-32768")  # 32 MB of pages
        self._conn.executescript(_DDL)

    def _start_afresh(self, problem: str) -> None:
        """Delete the damaged cache file and open an empty one."""
        with self._lock:
            view_health.discard([self.path])
            self._connect()
            self.repaired = problem
        log.warning("embedding cache %s was %s: dropped and started afresh (it is only a cache)", self.path, problem)

    def check(self) -> str | None:
        """Check the file in depth (``PRAGMA quick_check``); a damaged cache starts afresh. Returns why, or None."""
        with self._lock:
            problem = view_health.deep_problem(self.path)
            if problem is not None:
                with contextlib.suppress(Exception):
                    self._conn.close()
                self._start_afresh(problem)
        return problem

    def _damaged(self, exc: sqlite3.DatabaseError) -> bool:
        """Start afresh if ``exc`` means the file is damaged; return whether it did."""
        if not view_health.is_damage(exc):
            return False
        with contextlib.suppress(Exception):
            self._conn.close()
        self._start_afresh(view_health.describe(exc))
        return True

    def get_many(self, model_id: str, digests: Sequence[bytes], dim: int) -> dict[bytes, np.ndarray]:
        """Cached vectors for ``digests`` (entries of the wrong dimension count as missing)."""
        found: dict[bytes, np.ndarray] = {}
        with self._lock:
            try:
                self._get_many(model_id, digests, dim, found)
            except sqlite3.DatabaseError as exc:
                if not self._damaged(exc):
                    raise
                return {}  # an empty cache: everything is a miss
        return found

    def _get_many(self, model_id: str, digests: Sequence[bytes], dim: int, found: dict[bytes, np.ndarray]) -> None:
        for i in range(0, len(digests), _CHUNK):
            chunk = list(digests[i : i + _CHUNK])
            marks = ",".join("?" * len(chunk))
            rows = self._conn.execute(
                f"SELECT text_sha256, vec FROM embeddings WHERE model = ? AND text_sha256 IN ({marks})",
                [model_id, *chunk],
            ).fetchall()
            for digest, blob in rows:
                if len(blob) == dim * 4:
                    found[bytes(digest)] = np.frombuffer(blob, dtype=np.float32)

    def put_many(self, model_id: str, items: Iterable[tuple[bytes, np.ndarray]]) -> None:
        """Store vectors (float32) under their text digests."""
        rows = [(model_id, d, np.ascontiguousarray(v, dtype=np.float32).tobytes()) for d, v in items]
        if not rows:
            return
        with self._lock:
            try:
                self._put_rows(rows)
            except sqlite3.DatabaseError as exc:
                if not self._damaged(exc):
                    raise
                self._put_rows(rows)

    def _put_rows(self, rows: list[tuple[str, bytes, bytes]]) -> None:
        with immediate(self._conn):
            self._conn.executemany("INSERT OR REPLACE INTO embeddings(model, text_sha256, vec) VALUES (?,?,?)", rows)

    def delete(self, digests: Iterable[bytes], model_id: str | None = None) -> int:
        """Erase entries (of every model unless ``model_id``) and truncate the WAL; returns the count."""
        digests = list(digests)
        n = 0
        with self._lock:
            with immediate(self._conn):
                for i in range(0, len(digests), _CHUNK):
                    chunk = digests[i : i + _CHUNK]
                    marks = ",".join("?" * len(chunk))
                    sql = f"DELETE FROM embeddings WHERE text_sha256 IN ({marks})"
                    params: list[object] = list(chunk)
                    if model_id is not None:
                        sql += " AND model = ?"
                        params.append(model_id)
                    n += self._conn.execute(sql, params).rowcount
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return n

    def present(self, digests: Sequence[bytes]) -> list[bytes]:
        """Which of ``digests`` have a vector (of any model) in the cache."""
        found: list[bytes] = []
        with self._lock:
            for i in range(0, len(digests), _CHUNK):
                chunk = list(digests[i : i + _CHUNK])
                marks = ",".join("?" * len(chunk))
                found += [
                    bytes(r[0])
                    for r in self._conn.execute(
                        f"SELECT DISTINCT text_sha256 FROM embeddings WHERE text_sha256 IN ({marks})", chunk
                    )
                ]
        return found

    def count(self, model_id: str | None = None) -> int:
        """Number of cached vectors (of one model, or all)."""
        with self._lock:
            if model_id is None:
                return self._conn.execute("SELECT count(*) FROM embeddings").fetchone()[0]
            return self._conn.execute("SELECT count(*) FROM embeddings WHERE model = ?", (model_id,)).fetchone()[0]

    def embed_cached(self, embedder: Embedder, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        """Vectors of ``texts`` in order; only cache misses reach ``embedder.embed``, in batches."""
        return embed_cached(embedder, texts, self, batch_size=batch_size)

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def embed_cached(
    embedder: Embedder,
    texts: Sequence[str],
    cache: EmbeddingCache | None = None,
    batch_size: int = 256,
    digests: Sequence[bytes] | None = None,
) -> np.ndarray:
    """Embed ``texts`` through ``cache`` (None: no cache); duplicates are embedded once.

    ``digests`` may pass precomputed ``text_hash`` values of ``texts``.
    """
    n = len(texts)
    out = np.zeros((n, embedder.dim), dtype=np.float32)
    if n == 0:
        return out
    keys = list(digests) if digests is not None else [text_hash(t) for t in texts]
    unique: dict[bytes, str] = {}
    for d, t in zip(keys, texts, strict=True):
        unique.setdefault(d, t)
    have = cache.get_many(embedder.model_id, list(unique), embedder.dim) if cache is not None else {}
    missing = [d for d in unique if d not in have]
    if cache is not None:
        cache.hits += len(unique) - len(missing)
        cache.misses += len(missing)
    for i in range(0, len(missing), batch_size):
        chunk = missing[i : i + batch_size]
        vecs = np.asarray(embedder.embed([unique[d] for d in chunk]), dtype=np.float32)
        if vecs.shape != (len(chunk), embedder.dim):
            raise ValueError(
                f"embedder {embedder.model_id} returned shape {vecs.shape}, expected {(len(chunk), embedder.dim)}"
            )
        new = list(zip(chunk, vecs, strict=True))
        have.update(new)
        if cache is not None:
            cache.put_many(embedder.model_id, new)
    for i, d in enumerate(keys):
        out[i] = have[d]
    return out
