"""RFC 6962 / RFC 9162 Merkle tree over leaf byte strings (the log's event hashes).

Hashing (SHA-256): ``leaf = H(0x00 || leaf_bytes)``, ``node = H(0x01 || left || right)``,
and the root of the empty tree is ``H("")``. The tree of ``n`` leaves splits at the largest
power of two ``k < n`` (left subtree perfect, right subtree the rest).

``MerkleTree`` stores every perfect, aligned subtree hash level by level (in compact
``bytearray`` rows), so a root, an inclusion proof or a consistency proof for any tree size
up to the current one costs O(log n) hashes after the leaves are loaded, and appending a
leaf costs amortised O(1) hashes.

The ``verify_*`` functions are pure: they trust nothing but their arguments. The standalone
``ledger/governance/verifier.py`` carries its own copy of them (it must import nothing of the project);
tests check both agree.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from ledger.errors import InvalidRequest

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


class MerkleError(InvalidRequest):
    """A proof was requested for sizes or indexes the tree cannot answer."""


def leaf_hash(data: bytes) -> bytes:
    """``H(0x00 || data)``."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``H(0x01 || left || right)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


class MerkleTree:
    """An append-only Merkle tree that answers roots and proofs for every size up to its own."""

    def __init__(self, leaves: Iterable[bytes] = ()):
        # _levels[i] holds the hashes of the perfect subtrees of 2**i leaves, in order.
        self._levels: list[bytearray] = [bytearray()]
        self._size = 0
        for data in leaves:
            self.append(data)

    @classmethod
    def from_leaf_hashes(cls, hashes: Iterable[bytes]) -> MerkleTree:
        """Build from already-computed leaf hashes (``leaf_hash(data)``)."""
        tree = cls()
        for h in hashes:
            tree.append_leaf_hash(h)
        return tree

    @property
    def size(self) -> int:
        """Number of leaves."""
        return self._size

    def append(self, data: bytes) -> int:
        """Append a leaf (its raw bytes); return its index."""
        return self.append_leaf_hash(leaf_hash(data))

    def append_leaf_hash(self, h: bytes) -> int:
        """Append a leaf given its leaf hash; return its index."""
        if len(h) != HASH_SIZE:
            raise MerkleError(f"a leaf hash has {HASH_SIZE} bytes, not {len(h)}")
        index = self._size
        self._levels[0] += h
        self._size += 1
        # Complete every perfect subtree this leaf closes.
        level, pos = 0, index
        while pos & 1:
            row = self._levels[level]
            right = bytes(row[pos * HASH_SIZE : (pos + 1) * HASH_SIZE])
            left = bytes(row[(pos - 1) * HASH_SIZE : pos * HASH_SIZE])
            level += 1
            pos >>= 1
            if len(self._levels) <= level:
                self._levels.append(bytearray())
            self._levels[level] += node_hash(left, right)
        return index

    def leaf(self, index: int) -> bytes:
        """The leaf hash at ``index``."""
        self._check_index(index, self._size)
        return bytes(self._levels[0][index * HASH_SIZE : (index + 1) * HASH_SIZE])

    # -- hashes of ranges -------------------------------------------------------------------
    def _subtree(self, lo: int, hi: int) -> bytes:
        """MTH of leaves ``lo..hi-1`` (``hi > lo``)."""
        n = hi - lo
        if n & (n - 1) == 0 and lo % n == 0:
            level = n.bit_length() - 1
            pos = lo >> level
            return bytes(self._levels[level][pos * HASH_SIZE : (pos + 1) * HASH_SIZE])
        k = _split(n)
        return node_hash(self._subtree(lo, lo + k), self._subtree(lo + k, hi))

    def root(self, size: int | None = None) -> bytes:
        """Root hash of the tree made of the first ``size`` leaves (default: all)."""
        size = self._size if size is None else size
        self._check_size(size)
        return EMPTY_ROOT if size == 0 else self._subtree(0, size)

    # -- proofs -------------------------------------------------------------------------------
    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """Audit path (RFC 6962 ``PATH``) of leaf ``index`` in the tree of ``size`` leaves."""
        size = self._size if size is None else size
        self._check_size(size)
        self._check_index(index, size)
        path: list[bytes] = []
        lo, hi = 0, size
        # Walk down from the root, collecting siblings; the proof is ordered leaf first.
        while hi - lo > 1:
            k = _split(hi - lo)
            if index < lo + k:
                path.append(self._subtree(lo + k, hi))
                hi = lo + k
            else:
                path.append(self._subtree(lo, lo + k))
                lo = lo + k
        path.reverse()
        return path

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """RFC 6962 ``PROOF(old_size, D[new_size])``: the tree of ``old_size`` is a prefix."""
        new_size = self._size if new_size is None else new_size
        self._check_size(new_size)
        if not 0 <= old_size <= new_size:
            raise MerkleError(f"old size {old_size} must be between 0 and the new size {new_size}")
        if old_size == 0 or old_size == new_size:
            return []
        out: list[bytes] = []
        self._subproof(old_size, 0, new_size, True, out)
        return out

    def _subproof(self, m: int, lo: int, hi: int, complete: bool, out: list[bytes]) -> None:
        n = hi - lo
        if m == n:
            if not complete:
                out.append(self._subtree(lo, hi))
            return
        k = _split(n)
        if m <= k:
            self._subproof(m, lo, lo + k, complete, out)
            out.append(self._subtree(lo + k, hi))
        else:
            self._subproof(m - k, lo + k, hi, False, out)
            out.append(self._subtree(lo, lo + k))

    # -- checks ---------------------------------------------------------------------------------
    def _check_size(self, size: int) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= self._size:
            raise MerkleError(f"tree size {size!r} is out of range (the tree has {self._size} leaves)")

    @staticmethod
    def _check_index(index: int, size: int) -> None:
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < size:
            raise MerkleError(f"leaf index {index!r} is out of range for a tree of {size} leaves")


# -- pure verification (RFC 9162 sections 2.1.3.2 and 2.1.4.2) ----------------------------------
def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes | None:
    """Recompute the root from a leaf hash and its audit path; ``None`` if the path is malformed."""
    if not 0 <= index < size or any(len(p) != HASH_SIZE for p in proof) or len(leaf) != HASH_SIZE:
        return None
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> bool:
    """True when ``leaf`` (a leaf hash) sits at ``index`` of the tree of ``size`` with ``root``."""
    got = root_from_inclusion(index, size, leaf, proof)
    return got is not None and got == root


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> bool:
    """True when the tree ``(old_size, old_root)`` is a prefix of ``(new_size, new_root)``."""
    if not 0 <= old_size <= new_size or any(len(p) != HASH_SIZE for p in proof):
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof and old_root == EMPTY_ROOT
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root
