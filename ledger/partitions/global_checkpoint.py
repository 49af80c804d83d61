"""Signed global checkpoint of a partitioned ledger, and its proofs, verifiable from the proof alone.

Each partition is a log with its own RFC 6962 Merkle tree over its event hashes
(``ledger.governance.log_tree``). A partition's *head* is ``(index, size, root)``; the global tree is
the Merkle tree whose leaf ``k`` is the canonical text of partition k's head::

    memledger-partition-head/v1
    <index>
    <size>
    <root hex>

A global checkpoint signs (ed25519, the ledger's checkpoint key) the root of that tree, with the
heads it was built from::

    memledger-global-checkpoint/v1
    <seq>
    <partitions>
    <global root hex>
    <ts_us>
    <key_id>

An event is proved in two steps: its audit path in its partition's tree (up to that partition's
root), then the partition leaf's audit path in the global tree (up to the signed root). Two global
checkpoints are consistent when every partition's tree of the older is a prefix of the newer one's.
The ``verify_*`` functions trust nothing but their arguments.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ledger.events import us_to_iso
from ledger.governance.checkpoints import CheckpointError, key_id_of
from ledger.governance.merkle import MerkleTree, leaf_hash, root_from_inclusion, verify_consistency
from ledger.partitions.base import PartitionVector

FORMAT = "memledger-global-checkpoint/v1"
HEAD_FORMAT = "memledger-partition-head/v1"


@dataclass(frozen=True, slots=True)
class PartitionHead:
    """One partition's state: its first ``size`` events have Merkle root ``root`` (hex)."""

    index: int
    size: int
    root: str

    def leaf(self) -> bytes:
        """The leaf bytes of this head in the global tree."""
        return f"{HEAD_FORMAT}\n{self.index}\n{self.size}\n{self.root}\n".encode()


def global_tree(heads: tuple[PartitionHead, ...] | list[PartitionHead]) -> MerkleTree:
    """The Merkle tree over partition heads (leaf k: partition k)."""
    return MerkleTree(h.leaf() for h in heads)


@dataclass(frozen=True, slots=True)
class GlobalCheckpoint:
    """A signed statement about every partition's state at once."""

    seq: int
    heads: tuple[PartitionHead, ...]
    root: str  # hex root of global_tree(heads)
    ts_us: int
    key_id: str
    signature: str  # base64 ed25519 signature of message()

    def message(self) -> bytes:
        """The exact bytes that are signed."""
        return f"{FORMAT}\n{self.seq}\n{len(self.heads)}\n{self.root}\n{self.ts_us}\n{self.key_id}\n".encode()

    def vector(self) -> PartitionVector:
        """The partition vector this checkpoint covers (each partition's last offset, -1 when empty)."""
        return tuple(h.size - 1 for h in self.heads)

    def well_formed(self) -> bool:
        """True when the heads are partitions 0..N-1 and build the signed root."""
        return (
            [h.index for h in self.heads] == list(range(len(self.heads)))
            and all(h.size >= 0 for h in self.heads)
            and global_tree(self.heads).root().hex() == self.root
        )

    def verify_signature(self, public_key: Ed25519PublicKey) -> bool:
        """True when the signature is valid for ``public_key``."""
        if self.key_id != key_id_of(public_key):
            return False
        try:
            public_key.verify(base64.b64decode(self.signature, validate=True), self.message())
        except (InvalidSignature, ValueError):
            return False
        return True

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "seq": self.seq,
            "partitions": [{"index": h.index, "size": h.size, "root": h.root} for h in self.heads],
            "root": self.root,
            "ts_us": self.ts_us,
            "time": us_to_iso(self.ts_us),
            "key_id": self.key_id,
            "signature": self.signature,
        }

    @staticmethod
    def from_dict(d: dict[str, Any]) -> GlobalCheckpoint:
        try:
            if d.get("format") != FORMAT:
                raise ValueError(f"format is {d.get('format')!r}, expected {FORMAT!r}")
            heads = tuple(PartitionHead(int(h["index"]), int(h["size"]), str(h["root"])) for h in d["partitions"])
            return GlobalCheckpoint(
                int(d["seq"]), heads, str(d["root"]), int(d["ts_us"]), str(d["key_id"]), str(d["signature"])
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"malformed global checkpoint: {exc}") from None


@dataclass(frozen=True, slots=True)
class GlobalInclusionProof:
    """That the event at ``offset`` of ``partition`` is under a global checkpoint's root."""

    partition: int
    offset: int
    event_path: tuple[str, ...]  # hex audit path in the partition's tree of the checkpoint's size
    head_path: tuple[str, ...]  # hex audit path of the partition's head leaf in the global tree

    def to_dict(self) -> dict[str, Any]:
        return {
            "partition": self.partition,
            "offset": self.offset,
            "event_path": list(self.event_path),
            "head_path": list(self.head_path),
        }


@dataclass(frozen=True, slots=True)
class GlobalConsistencyProof:
    """That every partition of checkpoint ``old_seq`` is a prefix of its state in ``new_seq``."""

    old_seq: int
    new_seq: int
    paths: tuple[tuple[str, ...], ...]  # per partition: its RFC 6962 consistency proof, hex

    def to_dict(self) -> dict[str, Any]:
        return {"old_seq": self.old_seq, "new_seq": self.new_seq, "paths": [list(p) for p in self.paths]}


def _unhex(items: tuple[str, ...]) -> list[bytes] | None:
    try:
        return [bytes.fromhex(x) for x in items]
    except ValueError:
        return None


def verify_global_inclusion(
    proof: GlobalInclusionProof, event_hash: str, checkpoint: GlobalCheckpoint, public_key: Ed25519PublicKey
) -> bool:
    """True when the event of hash ``event_hash`` (hex) is at ``proof.offset`` of ``proof.partition``
    under the validly signed ``checkpoint``."""
    if not checkpoint.verify_signature(public_key) or not checkpoint.well_formed():
        return False
    if not 0 <= proof.partition < len(checkpoint.heads):
        return False
    head = checkpoint.heads[proof.partition]
    event_path, head_path = _unhex(proof.event_path), _unhex(proof.head_path)
    if event_path is None or head_path is None:
        return False
    try:
        event_leaf = leaf_hash(bytes.fromhex(event_hash))
        head_root, signed_root = bytes.fromhex(head.root), bytes.fromhex(checkpoint.root)
    except ValueError:
        return False
    got = root_from_inclusion(proof.offset, head.size, event_leaf, event_path)
    if got is None or got != head_root:
        return False
    top = root_from_inclusion(proof.partition, len(checkpoint.heads), leaf_hash(head.leaf()), head_path)
    return top is not None and top == signed_root


def verify_global_consistency(
    old: GlobalCheckpoint, new: GlobalCheckpoint, proof: GlobalConsistencyProof, public_key: Ed25519PublicKey
) -> bool:
    """True when both checkpoints are validly signed and every partition only grew from ``old`` to ``new``."""
    if not (old.verify_signature(public_key) and new.verify_signature(public_key)):
        return False
    if not (old.well_formed() and new.well_formed()) or len(old.heads) != len(new.heads):
        return False
    if (proof.old_seq, proof.new_seq) != (old.seq, new.seq) or len(proof.paths) != len(old.heads):
        return False
    for a, b, hex_path in zip(old.heads, new.heads, proof.paths, strict=True):
        path = _unhex(hex_path)
        try:
            old_root, new_root = bytes.fromhex(a.root), bytes.fromhex(b.root)
        except ValueError:
            return False
        if path is None or not verify_consistency(a.size, b.size, old_root, new_root, path):
            return False
    return True
