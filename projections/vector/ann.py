"""Approximate nearest-neighbour index over the vector view's slots (usearch HNSW), derived data.

The index holds one entry per *distinct vector* (slot), including vectors of superseded
versions, so the same index serves head and as-of queries: it proposes candidate slots, the
view keeps those whose row is valid at the queried offset and passes the filters, and scores
them exactly. The index is rebuilt from the ``vectors`` table at will, persisted next to the
view with the epoch it was built for, and shredded whenever vectors are erased.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import numpy as np

from ledger.storage.file_modes import make_private

try:  # optional dependency: without it the view answers every query exactly
    from usearch.index import Index
except ImportError:  # pragma: no cover - depends on the environment
    Index = None  # type: ignore[assignment,misc]

AVAILABLE = Index is not None


class AnnIndex:
    """HNSW over unit vectors with inner-product metric; keys are slot ids."""

    def __init__(self, dim: int, connectivity: int = 16, expansion_add: int = 128, expansion_search: int = 1024):
        if Index is None:
            raise RuntimeError("the approximate index needs the package usearch")
        self.dim = dim
        self.index = Index(
            ndim=dim,
            metric="ip",
            dtype="f16",
            connectivity=connectivity,
            expansion_add=expansion_add,
            expansion_search=expansion_search,
        )
        self.covered = 0  # every present slot below this id is in the index
        self.lock = threading.Lock()  # adds and searches may come from different threads

    def __len__(self) -> int:
        return len(self.index)

    def extend(self, vectors: np.ndarray, present: np.ndarray, upto: int, threads: int = 0) -> int:
        """Add the present slots in ``[covered, upto)``; returns how many were added."""
        with self.lock:
            if upto <= self.covered:
                return 0
            keys = np.flatnonzero(present[self.covered : upto]) + self.covered
            if keys.size:
                self.index.add(keys.astype(np.uint64), np.ascontiguousarray(vectors[keys]), threads=threads)
            self.covered = upto
            return int(keys.size)

    def search(self, q: np.ndarray, count: int) -> np.ndarray:
        """Up to ``count`` candidate slot ids, best first (approximate)."""
        with self.lock:
            if len(self.index) == 0 or count <= 0:
                return np.zeros(0, dtype=np.int64)
            m = self.index.search(q, min(count, len(self.index)))
            return np.asarray(m.keys, dtype=np.int64)

    def save(self, path: Path, epoch: str) -> None:
        """Persist atomically (index file, then a sidecar naming the epoch and coverage)."""
        tmp = path.with_name(path.name + ".tmp")
        with self.lock:
            self.index.save(str(tmp))
            covered, size = self.covered, len(self.index)
        make_private(tmp)
        os.replace(tmp, path)
        side = _sidecar(path)
        side_tmp = side.with_name(side.name + ".tmp")
        side_tmp.write_text(json.dumps({"epoch": epoch, "covered": covered, "dim": self.dim, "size": size}))
        make_private(side_tmp)
        os.replace(side_tmp, side)

    @classmethod
    def load(cls, path: Path, epoch: str, dim: int) -> AnnIndex | None:
        """The persisted index if it was built for this epoch, else None."""
        side = _sidecar(path)
        try:
            meta = json.loads(side.read_text())
        except (FileNotFoundError, ValueError):
            return None
        if meta.get("epoch") != epoch or meta.get("dim") != dim or not path.exists():
            return None
        ann = cls(dim)
        try:
            ann.index.load(str(path))
        except Exception:  # a torn or foreign file is simply rebuilt
            return None
        if len(ann.index) != meta.get("size"):
            return None
        ann.covered = int(meta["covered"])
        return ann


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def shred_index_files(path: Path) -> None:
    """Overwrite the persisted index (and sidecar) with zeros and delete them."""
    for p in (path, _sidecar(path), path.with_name(path.name + ".tmp")):
        try:
            size = p.stat().st_size
        except FileNotFoundError:
            continue
        with open(p, "r+b") as f:
            f.write(b"\0" * size)
            f.flush()
            os.fsync(f.fileno())
        p.unlink()
