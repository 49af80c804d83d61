"""Merkle tree: RFC 6962 test vectors, agreement with a naive reference, forged proofs rejected."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.governance.merkle import (
    EMPTY_ROOT,
    MerkleError,
    MerkleTree,
    leaf_hash,
    node_hash,
    verify_consistency,
    verify_inclusion,
)

# Leaves and roots of the certificate-transparency reference tests (RFC 6962 hashing).
CT_LEAVES = [
    bytes.fromhex(x)
    for x in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f")
]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


# -- a naive reference, written straight from the RFC's recursive definitions ----------------
def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(d: list[bytes]) -> bytes:
    if not d:
        return hashlib.sha256(b"").digest()
    if len(d) == 1:
        return leaf_hash(d[0])
    k = _k(len(d))
    return node_hash(ref_mth(d[:k]), ref_mth(d[k:]))


def ref_path(m: int, d: list[bytes]) -> list[bytes]:
    if len(d) <= 1:
        return []
    k = _k(len(d))
    if m < k:
        return ref_path(m, d[:k]) + [ref_mth(d[k:])]
    return ref_path(m - k, d[k:]) + [ref_mth(d[:k])]


def ref_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [ref_mth(d)]
    k = _k(n)
    if m <= k:
        return ref_subproof(m, d[:k], b) + [ref_mth(d[k:])]
    return ref_subproof(m - k, d[k:], False) + [ref_mth(d[:k])]


def _leaves(n: int) -> list[bytes]:
    return [f"leaf-{i}".encode() for i in range(n)]


def test_ct_reference_roots() -> None:
    tree = MerkleTree(CT_LEAVES)
    for size, want in enumerate(CT_ROOTS, start=1):
        assert tree.root(size).hex() == want
    assert tree.root(0) == EMPTY_ROOT == hashlib.sha256(b"").digest()


def test_domain_separation() -> None:
    # A leaf whose bytes look like two concatenated hashes must not hash like an inner node.
    a, b = leaf_hash(b"a"), leaf_hash(b"b")
    assert MerkleTree([a + b]).root() != MerkleTree([b"a", b"b"]).root()


def test_agrees_with_reference_for_every_size() -> None:
    d = _leaves(33)
    tree = MerkleTree(d)
    for n in range(0, 34):
        root = tree.root(n)
        assert root == ref_mth(d[:n])
        for m in range(n):
            proof = tree.inclusion_proof(m, n)
            assert proof == ref_path(m, d[:n])
            assert verify_inclusion(m, n, leaf_hash(d[m]), proof, root)
        for m in range(1, n + 1):
            proof = tree.consistency_proof(m, n)
            assert proof == (ref_subproof(m, d[:n], True) if m < n else [])
            assert verify_consistency(m, n, tree.root(m), root, proof)


def test_incremental_build_matches_bulk() -> None:
    d = _leaves(100)
    tree = MerkleTree()
    for i, x in enumerate(d):
        tree.append(x)
        assert tree.size == i + 1
    assert tree.root() == MerkleTree(d).root() == ref_mth(d)
    assert MerkleTree.from_leaf_hashes(leaf_hash(x) for x in d).root() == tree.root()


def _flip(b: bytes) -> bytes:
    return bytes([b[0] ^ 1]) + b[1:]


def test_forged_inclusion_proofs_are_rejected() -> None:
    # (The tree size itself is bound by the signed checkpoint, not by the path: RFC 9162.)
    d = _leaves(21)
    tree = MerkleTree(d)
    root = tree.root()
    for m in range(21):
        proof = tree.inclusion_proof(m)
        leaf = leaf_hash(d[m])
        assert verify_inclusion(m, 21, leaf, proof, root)
        assert not verify_inclusion(m, 21, leaf_hash(b"forged"), proof, root)  # wrong leaf
        assert not verify_inclusion(m, 21, d[m][:32].ljust(32, b"\0"), proof, root)  # raw bytes, not leaf hash
        assert not verify_inclusion((m + 1) % 21, 21, leaf, proof, root)  # wrong index
        assert not verify_inclusion(m, 21, leaf, proof, _flip(root))  # wrong root
        assert not verify_inclusion(m, 21, leaf, proof[:-1], root)  # truncated path
        assert not verify_inclusion(m, 21, leaf, proof + [root], root)  # padded path
        for i in range(len(proof)):
            bad = list(proof)
            bad[i] = _flip(bad[i])
            assert not verify_inclusion(m, 21, leaf, bad, root)  # any sibling changed
    # The leaf's own hash must not pass as an inner node of a smaller tree (second preimage).
    inner = node_hash(leaf_hash(d[0]), leaf_hash(d[1]))
    assert not verify_inclusion(0, 20, inner, tree.inclusion_proof(0, 21)[1:], root)


def test_forged_consistency_proofs_are_rejected() -> None:
    d = _leaves(30)
    tree = MerkleTree(d)
    for m, n in [(1, 2), (3, 7), (4, 8), (5, 30), (16, 30), (29, 30), (8, 9)]:
        proof = tree.consistency_proof(m, n)
        old, new = tree.root(m), tree.root(n)
        assert verify_consistency(m, n, old, new, proof)
        assert not verify_consistency(m, n, _flip(old), new, proof)
        assert not verify_consistency(m, n, old, _flip(new), proof)
        assert not verify_consistency(m + 1, n, old, new, proof)
        assert not verify_consistency(m, n, old, new, proof[:-1])
        assert not verify_consistency(m, n, old, new, proof + [old])
        for i in range(len(proof)):
            bad = list(proof)
            bad[i] = _flip(bad[i])
            assert not verify_consistency(m, n, old, new, bad)
    # A rewritten history (one leaf changed) has no valid consistency proof with the old root.
    rewritten = MerkleTree(d[:4] + [b"rewritten"] + d[5:])
    assert not verify_consistency(10, 30, tree.root(10), rewritten.root(30), rewritten.consistency_proof(10, 30))
    # Edge cases.
    assert verify_consistency(0, 5, EMPTY_ROOT, tree.root(5), [])
    assert verify_consistency(7, 7, tree.root(7), tree.root(7), [])
    assert not verify_consistency(7, 7, tree.root(7), tree.root(8), [])
    assert not verify_consistency(8, 7, tree.root(8), tree.root(7), [])


def test_bad_arguments_raise_clear_errors() -> None:
    tree = MerkleTree(_leaves(5))
    with pytest.raises(MerkleError):
        tree.root(6)
    with pytest.raises(MerkleError):
        tree.inclusion_proof(5, 5)
    with pytest.raises(MerkleError):
        tree.inclusion_proof(-1)
    with pytest.raises(MerkleError):
        tree.consistency_proof(6, 5)
    with pytest.raises(MerkleError):
        tree.append_leaf_hash(b"short")


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 300), data=st.data())
def test_random_sizes(n: int, data: st.DataObject) -> None:
    d = _leaves(n)
    tree = MerkleTree(d)
    m = data.draw(st.integers(0, n - 1))
    old = data.draw(st.integers(1, n))
    assert verify_inclusion(m, n, leaf_hash(d[m]), tree.inclusion_proof(m), tree.root())
    assert verify_consistency(old, n, tree.root(old), tree.root(), tree.consistency_proof(old))
    assert tree.root() == ref_mth(d)
