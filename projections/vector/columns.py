"""The vector view's in-memory search columns: slot, validity interval, cube and state of every
searchable row, and the vector matrix, so a query as of any offset is a masked scan (numpy)."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from projections.base import OPEN, Hit

GROW = 1.5

try:  # multi-threaded BLAS on small products mostly waits for its threads: score on one
    from threadpoolctl import ThreadpoolController

    _BLAS = ThreadpoolController()
except ImportError:  # pragma: no cover - optional vendor package
    _BLAS = None


def one_blas_thread() -> Any:
    """A context in which BLAS uses one thread (a no-op without threadpoolctl)."""
    return _BLAS.limit(limits=1, user_api="blas") if _BLAS is not None else contextlib.nullcontext()


class Columns:
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
    def load(
        cls, conn: sqlite3.Connection, dim: int, generation: int, epoch: str = "", checkpoint: int = -1
    ) -> Columns:
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
        rows = conn.execute(
            "SELECT id, slot, valid_from, valid_to, memory_id, cube, state FROM versions "
            "WHERE present = 1 AND slot IS NOT NULL ORDER BY id"
        ).fetchall()
        mem.add_rows(rows)
        mem.max_id = conn.execute("SELECT coalesce(max(id), 0) FROM versions").fetchone()[0]
        return mem

    def refresh(self, conn: sqlite3.Connection, checkpoint: int) -> None:
        """Catch up with rows written by another process (same epoch: nothing was erased)."""
        rows = conn.execute("SELECT slot, vec FROM vectors WHERE slot >= ? ORDER BY slot", (self.n_slots,)).fetchall()
        self.add_vectors({r[0]: np.frombuffer(r[1], dtype=np.float32) for r in rows})
        last_id = int(self.max_id)
        rows = conn.execute(
            "SELECT id, slot, valid_from, valid_to, memory_id, cube, state FROM versions "
            "WHERE id > ? AND present = 1 AND slot IS NOT NULL ORDER BY id",
            (last_id,),
        ).fetchall()
        self.add_rows(rows)
        closed = conn.execute(
            f"SELECT id, valid_to FROM versions WHERE valid_to > ? AND valid_to < {OPEN}", (self.checkpoint,)
        ).fetchall()
        self.close_rows(dict(closed))
        self.max_id = max(self.max_id, conn.execute("SELECT coalesce(max(id), 0) FROM versions").fetchone()[0])
        self.checkpoint = checkpoint

    def _grow_rows(self, need: int) -> None:
        cap = self.ids.shape[0]
        if need <= cap:
            return
        new = max(need, int(cap * GROW) + 1)
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
            new = np.zeros((max(top, int(self.vectors.shape[0] * GROW) + 1), self.dim), dtype=np.float32)
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
        self.ids[n0 : n0 + m] = ids
        self.slot[n0 : n0 + m] = slots
        self.vf[n0 : n0 + m] = vfs
        self.vt[n0 : n0 + m] = vts
        mc, cc, sc = self.memory_code, self.cube_code, self.state_code
        self.mem[n0 : n0 + m] = [mc[x] if x in mc else self._code(mc, x, self.memory_ids) for x in mems]
        self.cube[n0 : n0 + m] = [cc[x] if x in cc else self._code(cc, x) for x in cubes]
        self.state[n0 : n0 + m] = [sc[x] if x in sc else self._code(sc, x) for x in states]
        self.pos.update(zip(ids, range(n0, n0 + m), strict=True))
        self.n = n0 + m
        self.max_id = max(self.max_id, int(ids[-1]))

    def close_rows(self, closed: Mapping[int, int]) -> None:
        for rid, vt in closed.items():
            p = self.pos.get(rid)
            if p is not None:
                self.vt[p] = vt

    def candidates(
        self,
        n_at: int,
        cubes: Sequence[str] | None,
        states: Iterable[str] | None,
        allowed: Collection[str] | None = None,
    ) -> np.ndarray:
        """Positions of the rows valid at offset ``n_at`` that pass the cube and state filters and
        belong to ``allowed`` memories (None: any)."""
        n = self.n
        mask = (self.vf[:n] <= n_at) & (self.vt[:n] > n_at)
        if allowed is not None:
            mc = self.memory_code
            wanted = np.fromiter((mc[m] for m in allowed if m in mc), dtype=np.int64)
            if not wanted.size:
                return np.zeros(0, dtype=np.int64)
            mask &= np.isin(self.mem[:n], wanted)
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
        with one_blas_thread():
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
