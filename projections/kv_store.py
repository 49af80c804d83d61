"""Content-addressed, size-bounded disk store of KV caches (activation memory).

A cache is addressed by ``sha256(model id, tokenizer identity, exact token ids)``, so the same
context for the same model always maps to the same file and a different model never does.
Files are safetensors (no pickle): per layer a key and a value tensor, plus the token ids and
the identities in the header. Writes go to a temporary file that is renamed into place, so a
reader never sees a half-written cache, and a stored file is never modified afterwards.
An SQLite index keeps last-use times for LRU eviction under a byte budget, and which
memories and data subjects a cache was built from (to delete it when a subject is forgotten).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from ledger.errors import LedgerError
from ledger.storage.file_modes import make_private, private_dir, private_file

DEFAULT_BUDGET_BYTES = 2 * 1024**3

_DDL = """
CREATE TABLE IF NOT EXISTS entries(
  key TEXT PRIMARY KEY,
  model_id TEXT NOT NULL,
  tokenizer_id TEXT NOT NULL,
  n_tokens INTEGER NOT NULL,
  size INTEGER NOT NULL,
  created_ns INTEGER NOT NULL,
  last_used_ns INTEGER NOT NULL,
  cube TEXT,
  basis_offset INTEGER,
  memory_ids TEXT NOT NULL,
  subjects TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_lru ON entries(last_used_ns);
CREATE TABLE IF NOT EXISTS entry_subjects(subject TEXT NOT NULL, key TEXT NOT NULL, PRIMARY KEY(subject, key));
CREATE TABLE IF NOT EXISTS entry_memories(memory_id TEXT NOT NULL, key TEXT NOT NULL, PRIMARY KEY(memory_id, key));
CREATE TABLE IF NOT EXISTS meta(name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class KVCacheMismatch(LedgerError):
    """A KV cache was offered to a model (or tokenizer) other than the one that built it."""


class KVCacheCorrupt(LedgerError):
    """A stored cache file does not match its address (damaged or tampered with)."""


def cache_key(model_id: str, tokenizer_id: str, token_ids: Sequence[int]) -> str:
    """The content address of a KV cache."""
    h = hashlib.sha256()
    h.update(orjson.dumps([model_id, tokenizer_id]))
    h.update(b"\n")
    h.update(orjson.dumps([int(t) for t in token_ids]))
    return h.hexdigest()


@dataclass
class KVCache:
    """An immutable snapshot of a prefix's keys and values, with what built it.

    ``layers`` holds one ``(keys, values)`` pair per decoder layer, shaped
    ``[batch, kv_heads, seq, head_dim]``. Consumers get copies (see :meth:`to_dynamic_cache`).
    """

    key: str
    model_id: str
    tokenizer_id: str
    token_ids: list[int]
    layers: list[tuple[Any, Any]]
    cube: str | None = None
    basis_offset: int | None = None
    memory_ids: list[str] = field(default_factory=list)
    subjects: list[str] = field(default_factory=list)

    @property
    def n_tokens(self) -> int:
        return len(self.token_ids)

    def nbytes(self) -> int:
        return sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in self.layers)

    def check_model(self, model_id: str, tokenizer_id: str) -> None:
        """Raise :class:`KVCacheMismatch` unless this cache was built by that model and tokenizer."""
        if self.model_id != model_id:
            raise KVCacheMismatch(
                f"KV cache {self.key[:12]} was built by model {self.model_id!r}; "
                f"refusing to inject it into model {model_id!r}"
            )
        if self.tokenizer_id != tokenizer_id:
            raise KVCacheMismatch(
                f"KV cache {self.key[:12]} was built with another tokenizer "
                f"({self.tokenizer_id[:12]} != {tokenizer_id[:12]})"
            )

    def to_dynamic_cache(self) -> Any:
        """A fresh transformers ``DynamicCache`` holding *copies* of the tensors (generation may extend it)."""
        from transformers import DynamicCache

        return DynamicCache(ddp_cache_data=[(k.clone(), v.clone()) for k, v in self.layers])


class KVStore:
    """Content-addressed KV caches under ``root`` with LRU eviction past ``budget_bytes``."""

    def __init__(self, root: str | Path, budget_bytes: int = DEFAULT_BUDGET_BYTES):
        if budget_bytes <= 0:
            raise ValueError("the KV cache budget must be positive")
        self.root = Path(root)
        private_dir(self.root / "objects")
        self.budget_bytes = int(budget_bytes)
        self._local = threading.local()
        with self._db() as db:
            db.executescript(_DDL)

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(private_file(self.root / "index.sqlite"), timeout=60.0, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            self._local.db = db
        return db

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    def path_of(self, key: str) -> Path:
        if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
            raise KVCacheCorrupt(f"not a KV cache address: {key!r}")
        return self.root / "objects" / key[:2] / f"{key}.safetensors"

    # -- writes --------------------------------------------------------------------------
    def put(self, cache: KVCache) -> KVCache:
        """Store ``cache`` (atomically; a no-op when that address is stored) and evict past the budget."""
        import torch
        from safetensors.torch import save_file

        expected = cache_key(cache.model_id, cache.tokenizer_id, cache.token_ids)
        if expected != cache.key:
            raise KVCacheCorrupt(f"cache key {cache.key[:12]} does not match its content ({expected[:12]})")
        path = self.path_of(cache.key)
        now = time.time_ns()
        if not path.exists():
            private_dir(path.parent)
            tensors = {"token_ids": torch.tensor(cache.token_ids, dtype=torch.int64)}
            for i, (k, v) in enumerate(cache.layers):
                tensors[f"k.{i}"] = k.detach().contiguous().clone()
                tensors[f"v.{i}"] = v.detach().contiguous().clone()
            meta = {
                "model_id": cache.model_id,
                "tokenizer_id": cache.tokenizer_id,
                "layers": str(len(cache.layers)),
                "format": "memledger-kv/1",
            }
            tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            save_file(tensors, str(tmp), metadata=meta)
            make_private(tmp)
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        size = path.stat().st_size
        db = self._db()
        with db:
            db.execute(
                "INSERT INTO entries(key, model_id, tokenizer_id, n_tokens, size, created_ns, last_used_ns, cube, "
                "basis_offset, memory_ids, subjects) VALUES (?,?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT(key) DO UPDATE SET last_used_ns = excluded.last_used_ns",
                (
                    cache.key,
                    cache.model_id,
                    cache.tokenizer_id,
                    cache.n_tokens,
                    size,
                    now,
                    now,
                    cache.cube,
                    cache.basis_offset,
                    orjson.dumps(cache.memory_ids).decode(),
                    orjson.dumps(cache.subjects).decode(),
                ),
            )
            db.executemany(
                "INSERT OR IGNORE INTO entry_subjects(subject, key) VALUES (?,?)",
                [(s, cache.key) for s in cache.subjects],
            )
            db.executemany(
                "INSERT OR IGNORE INTO entry_memories(memory_id, key) VALUES (?,?)",
                [(m, cache.key) for m in cache.memory_ids],
            )
        self.evict(keep=cache.key)
        return cache

    def delete(self, key: str) -> bool:
        """Remove one cache (file and index row); True if it existed."""
        path = self.path_of(key)
        existed = path.exists()
        path.unlink(missing_ok=True)
        db = self._db()
        with db:
            n = db.execute("DELETE FROM entries WHERE key = ?", (key,)).rowcount
            db.execute("DELETE FROM entry_subjects WHERE key = ?", (key,))
            db.execute("DELETE FROM entry_memories WHERE key = ?", (key,))
        return existed or n > 0

    def delete_for_subject(self, subject: str) -> list[str]:
        """Delete every cache built from memories of data subject ``subject``; return their keys."""
        keys = [r[0] for r in self._db().execute("SELECT key FROM entry_subjects WHERE subject = ?", (subject,))]
        for k in keys:
            self.delete(k)
        return keys

    def delete_for_memory(self, memory_id: str) -> list[str]:
        """Delete every cache whose context included ``memory_id``."""
        keys = [r[0] for r in self._db().execute("SELECT key FROM entry_memories WHERE memory_id = ?", (memory_id,))]
        for k in keys:
            self.delete(k)
        return keys

    def clear(self) -> None:
        for key in [e["key"] for e in self.entries()]:
            self.delete(key)

    def evict(self, keep: str | None = None) -> list[str]:
        """Drop least-recently-used caches until the total size fits the budget."""
        db = self._db()
        total = db.execute("SELECT COALESCE(SUM(size), 0) FROM entries").fetchone()[0]
        evicted: list[str] = []
        if total <= self.budget_bytes:
            return evicted
        for key, size in db.execute("SELECT key, size FROM entries ORDER BY last_used_ns ASC, key ASC").fetchall():
            if total <= self.budget_bytes:
                break
            if key == keep:
                continue
            self.delete(key)
            total -= size
            evicted.append(key)
        if total > self.budget_bytes and keep is not None:
            # a single cache larger than the whole budget is not kept either
            self.delete(keep)
            evicted.append(keep)
        return evicted

    # -- reads ---------------------------------------------------------------------------
    def has(self, key: str) -> bool:
        return self.path_of(key).exists()

    def get(self, key: str, model_id: str | None = None, tokenizer_id: str | None = None) -> KVCache | None:
        """Load a cache (fresh tensors) and mark it used; ``None`` if absent.

        With ``model_id``/``tokenizer_id``, a cache built by another model raises
        :class:`KVCacheMismatch`; a file whose content does not match its address raises
        :class:`KVCacheCorrupt`.
        """
        from safetensors import safe_open

        path = self.path_of(key)
        try:
            with safe_open(str(path), framework="pt") as fh:
                meta = fh.metadata() or {}
                n = int(meta.get("layers", "0"))
                token_ids = [int(t) for t in fh.get_tensor("token_ids").tolist()]
                layers = [(fh.get_tensor(f"k.{i}"), fh.get_tensor(f"v.{i}")) for i in range(n)]
        except FileNotFoundError:
            return None
        except Exception as exc:  # safetensors raises its own error types for damaged files
            raise KVCacheCorrupt(f"KV cache file {path} cannot be read: {exc}") from None
        mid, tid = meta.get("model_id", ""), meta.get("tokenizer_id", "")
        if cache_key(mid, tid, token_ids) != key:
            raise KVCacheCorrupt(f"KV cache file {path} does not match its address (damaged or tampered with)")
        row = (
            self._db()
            .execute("SELECT cube, basis_offset, memory_ids, subjects FROM entries WHERE key = ?", (key,))
            .fetchone()
        )
        cache = KVCache(key, mid, tid, token_ids, layers)
        if row:
            cache.cube, cache.basis_offset = row[0], row[1]
            cache.memory_ids, cache.subjects = orjson.loads(row[2]), orjson.loads(row[3])
        if model_id is not None:
            cache.check_model(model_id, tokenizer_id if tokenizer_id is not None else tid)
        db = self._db()
        with db:
            db.execute("UPDATE entries SET last_used_ns = ? WHERE key = ?", (time.time_ns(), key))
        return cache

    def entries(self) -> list[dict[str, Any]]:
        """Index rows, least recently used first."""
        cols = (
            "key",
            "model_id",
            "tokenizer_id",
            "n_tokens",
            "size",
            "created_ns",
            "last_used_ns",
            "cube",
            "basis_offset",
            "memory_ids",
            "subjects",
        )
        rows = self._db().execute(f"SELECT {', '.join(cols)} FROM entries ORDER BY last_used_ns ASC, key ASC")
        out = []
        for r in rows:
            d = dict(zip(cols, r, strict=True))
            d["memory_ids"], d["subjects"] = orjson.loads(d["memory_ids"]), orjson.loads(d["subjects"])
            out.append(d)
        return out

    def built_from(self, memory_ids: Sequence[str], subjects: Sequence[str]) -> list[str]:
        """Keys of stored caches whose context held one of ``memory_ids`` or a memory of ``subjects``."""
        db = self._db()
        keys: set[str] = set()
        for s in subjects:
            keys.update(r[0] for r in db.execute("SELECT key FROM entry_subjects WHERE subject = ?", (s,)))
        for m in memory_ids:
            keys.update(r[0] for r in db.execute("SELECT key FROM entry_memories WHERE memory_id = ?", (m,)))
        return sorted(keys)

    def unindexed_files(self) -> list[Path]:
        """Cache files with no index row (left by a crash between writing and indexing, or planted)."""
        known = {r[0] for r in self._db().execute("SELECT key FROM entries")}
        return sorted(p for p in (self.root / "objects").rglob("*.safetensors") if p.stem not in known)

    def total_bytes(self) -> int:
        return int(self._db().execute("SELECT COALESCE(SUM(size), 0) FROM entries").fetchone()[0])

    # -- projection checkpoint (for the subject-forgotten watcher) ---------------------------
    def checkpoint(self) -> int:
        row = self._db().execute("SELECT value FROM meta WHERE name = 'checkpoint'").fetchone()
        return -1 if row is None else int(row[0])

    def set_checkpoint(self, offset: int) -> None:
        db = self._db()
        with db:
            db.execute(
                "INSERT INTO meta(name, value) VALUES ('checkpoint', ?) "
                "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                (offset,),
            )
