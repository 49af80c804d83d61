"""Creating and checking the global checkpoints of a partitioned ledger (see ``global_checkpoint``).

``create`` builds each partition's Merkle tree from its stored event hashes, signs the global tree
over their heads and stores it. ``verify`` recomputes everything from what the partitions store:
every partition's hash chain (an edited event no longer matches its hash), then for each stored
checkpoint its signature and each partition's root at the signed size (a rewritten or truncated
partition no longer has it). Proofs come from the same trees.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ledger.config import Config
from ledger.errors import InvalidRequest
from ledger.events import now_us
from ledger.governance.checkpoints import SIGNING_KEY_NAME, CheckpointError, CheckpointSigner, key_id_of
from ledger.governance.keystore_factory import keys_dir
from ledger.governance.log_tree import log_tree
from ledger.governance.merkle import MerkleTree
from ledger.partitions.base import PartitionedLog
from ledger.partitions.global_checkpoint import (
    GlobalCheckpoint,
    GlobalConsistencyProof,
    GlobalInclusionProof,
    PartitionHead,
    global_tree,
)
from ledger.partitions.global_checkpoint_store import STORE_NAME, GlobalCheckpointStore


@dataclass(slots=True)
class GlobalReport:
    """Outcome of checking a partitioned ledger against its stored global checkpoints."""

    ok: bool
    checked: int
    problem: str | None = None
    seq: int | None = None
    partition: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "problem": self.problem,
            "seq": self.seq,
            "partition": self.partition,
        }


def partition_trees(plog: PartitionedLog) -> list[MerkleTree]:
    """Every partition's Merkle tree over its events as stored now, by index."""
    return [log_tree(plog.partition(k)) for k in range(plog.count)]


class GlobalCheckpoints:
    """The signed global checkpoints of one partitioned ledger."""

    def __init__(self, signer: CheckpointSigner, store: GlobalCheckpointStore):
        self.signer = signer
        self.store = store

    @classmethod
    def for_config(cls, config: Config, plog: PartitionedLog | None = None) -> GlobalCheckpoints:
        """The data directory's checkpoint key (the single-log checkpoints' one) and global store; with
        ``[keys] backend = "postgres"`` and a PostgreSQL ``plog``, the key and the global checkpoints in
        partition 0's schema, which every app server of the ledger shares."""
        from ledger.governance.checkpoints import shared_governance

        if shared_governance(config) and plog is not None:
            from ledger.backends.postgres_log import PostgresLog
            from ledger.governance.pg_checkpoints import PostgresCheckpointSigner
            from ledger.log import DelegatingLog
            from ledger.partitions.global_checkpoint_store import PostgresGlobalCheckpointStore

            first = plog.partition(0)
            while isinstance(first, DelegatingLog):  # the partition's clock, the service's counter
                first = first.inner
            if isinstance(first, PostgresLog):
                return cls(PostgresCheckpointSigner(first), PostgresGlobalCheckpointStore(first))
        signer = CheckpointSigner(keys_dir(config) / SIGNING_KEY_NAME)
        return cls(signer, GlobalCheckpointStore(config.data_dir / STORE_NAME))

    def create(self, plog: PartitionedLog) -> GlobalCheckpoint:
        """Sign and store a checkpoint of every partition as it is now."""
        key_id = key_id_of(self.signer.public_key(create=True))
        trees = partition_trees(plog)
        heads = tuple(PartitionHead(k, t.size, t.root().hex()) for k, t in enumerate(trees))
        root = global_tree(heads).root().hex()

        def make(seq: int) -> GlobalCheckpoint:
            unsigned = GlobalCheckpoint(seq, heads, root, now_us(), key_id, "")
            return GlobalCheckpoint(seq, heads, root, unsigned.ts_us, key_id, self.signer.sign(unsigned.message()))

        return self.store.append(make)

    def list(self) -> list[GlobalCheckpoint]:
        """Every stored global checkpoint, oldest first."""
        return self.store.all()

    def get(self, seq: int) -> GlobalCheckpoint:
        """Global checkpoint number ``seq``."""
        return self.store.get(seq)

    def verify(self, plog: PartitionedLog, public_key: Ed25519PublicKey | None = None) -> GlobalReport:
        """Check every partition's chain, then every stored checkpoint against the partitions' trees.

        ``public_key``: a trusted key (an auditor's copy); default the local signing key.
        """
        for k in range(plog.count):
            chain = plog.partition(k).verify()
            if not chain.ok:
                return GlobalReport(False, 0, f"partition {k}: {chain.problem}", partition=k)
        try:
            cps = self.store.all()
        except CheckpointError as exc:
            return GlobalReport(False, 0, f"the global checkpoint store is damaged: {exc}")
        if not cps:
            return GlobalReport(True, 0)
        if public_key is None and not self.signer.exists():
            return GlobalReport(
                False, 0, f"{len(cps)} global checkpoints are stored but the signing key {self.signer.path} is gone"
            )
        pub = public_key or self.signer.public_key(create=False)
        trees = partition_trees(plog)
        prev: GlobalCheckpoint | None = None
        for i, cp in enumerate(cps):
            problem, part = _problem(cp, prev, pub, trees)
            if problem is not None:
                return GlobalReport(False, i, f"global checkpoint #{cp.seq}: {problem}", cp.seq, part)
            prev = cp
        return GlobalReport(True, len(cps))

    def inclusion_proof(
        self, plog: PartitionedLog, checkpoint: GlobalCheckpoint, partition: int, offset: int
    ) -> GlobalInclusionProof:
        """The proof that event ``offset`` of ``partition`` is under ``checkpoint``'s signed root."""
        if len(checkpoint.heads) != plog.count or not 0 <= partition < plog.count:
            raise InvalidRequest(f"partition {partition!r} is not one of the checkpoint's {len(checkpoint.heads)}")
        head = checkpoint.heads[partition]
        if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset < head.size:
            raise InvalidRequest(
                f"offset {offset!r} of partition {partition} is not covered by global checkpoint #{checkpoint.seq} "
                f"(it covers offsets 0..{head.size - 1})"
            )
        tree = log_tree(plog.partition(partition), head.size)
        if tree.root().hex() != head.root:
            raise InvalidRequest(f"partition {partition} no longer matches global checkpoint #{checkpoint.seq}")
        return GlobalInclusionProof(
            partition,
            offset,
            tuple(p.hex() for p in tree.inclusion_proof(offset)),
            tuple(p.hex() for p in global_tree(checkpoint.heads).inclusion_proof(partition)),
        )

    def consistency_proof(
        self, plog: PartitionedLog, old: GlobalCheckpoint, new: GlobalCheckpoint
    ) -> GlobalConsistencyProof:
        """Every partition's consistency proof from ``old``'s size to ``new``'s."""
        if not len(old.heads) == len(new.heads) == plog.count:
            raise InvalidRequest("both global checkpoints must cover this ledger's partitions")
        paths = []
        for a, b in zip(old.heads, new.heads, strict=True):
            if a.size > b.size:
                raise InvalidRequest(f"partition {a.index} shrank from {a.size} to {b.size} events")
            tree = log_tree(plog.partition(a.index), b.size)
            paths.append(tuple(p.hex() for p in tree.consistency_proof(a.size, b.size)))
        return GlobalConsistencyProof(old.seq, new.seq, tuple(paths))


def _problem(
    cp: GlobalCheckpoint, prev: GlobalCheckpoint | None, pub: Ed25519PublicKey, trees: list[MerkleTree]
) -> tuple[str | None, int | None]:
    """Why one stored checkpoint does not hold for the partitions' trees (None when it does)."""
    want = prev.seq + 1 if prev else 1
    if cp.seq != want:
        return f"follows #{want - 1} (checkpoints were removed or reordered)", None
    if not cp.verify_signature(pub):
        return f"signature is not valid for key {key_id_of(pub)}", None
    if not cp.well_formed():
        return "its partition heads do not build its signed root (edited)", None
    if len(cp.heads) != len(trees):
        return f"covers {len(cp.heads)} partitions, the ledger has {len(trees)}", None
    for head, tree in zip(cp.heads, trees, strict=True):
        k = head.index
        if prev is not None and head.size < prev.heads[k].size:
            return f"partition {k} covers {head.size} events, fewer than the {prev.heads[k].size} before", k
        if head.size > tree.size:
            return f"partition {k} has {tree.size} events but the checkpoint covers {head.size}: truncated", k
        if tree.root(head.size).hex() != head.root:
            return f"partition {k}: the Merkle root of its first {head.size} events differs: history was rewritten", k
    return None, None
