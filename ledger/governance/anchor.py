"""Anchoring an export in a signed checkpoint, so its Merkle root can be trusted offline."""

from __future__ import annotations

from typing import Any

from ledger.api import Ledger
from ledger.errors import InvalidRequest
from ledger.events import now_us, us_to_iso
from ledger.governance.checkpoints import Checkpoints
from ledger.governance.log_tree import log_tree
from ledger.governance.merkle import MerkleTree


def export_anchor(ledger: Ledger, size: int) -> dict[str, Any]:
    """A checkpoint of the whole log signed now, its public key, and a consistency proof from the
    tree of the first ``size`` events (the export's) to the checkpoint's tree."""
    config = ledger.config
    if config is None:
        raise InvalidRequest("signing an export needs a data directory (its checkpoint key)")
    checkpoints = Checkpoints.for_config(config, ledger.log)
    full = log_tree(ledger.log)
    cp = checkpoints.create(ledger.log, full)
    return {
        "checkpoint": cp.to_dict(),
        "public_key": checkpoints.signer.public_key_pem(),
        "consistency_proof": [p.hex() for p in full.consistency_proof(size, cp.log_size)],
    }


def export_header(
    ledger: Ledger,
    end: int,
    kind: tuple[str, int],
    what: dict[str, Any],
    counted: tuple[str, int],
    sign: bool,
) -> tuple[MerkleTree, dict[str, Any]]:
    """The Merkle tree of events ``0..end`` and the header line of an export of it: ``kind`` (format,
    version), ``what`` it holds (``{"cube": c}``, ``{"subject": s}``), ``counted`` (the name and number of
    its lines), the tree's root and the log's first and last hashes, and with ``sign`` an anchor."""
    tree = log_tree(ledger.log, end + 1)
    first = next(iter(ledger.log.read(0, 0)))
    head = next(iter(ledger.log.read(end, end)))
    header: dict[str, Any] = {
        "format": kind[0],
        "version": kind[1],
        **what,
        "source_ledger": first.hash,
        "tree_size": tree.size,
        "merkle_root": tree.root().hex(),
        "head_hash": head.hash,
        counted[0]: counted[1],
        "exported_at": us_to_iso(now_us()),
        "leaf": "sha256(0x00 || bytes.fromhex(hash))",
    }
    if sign:
        header["anchor"] = export_anchor(ledger, tree.size)
    return tree, header
