"""Anchoring an export in a signed checkpoint, so its Merkle root can be trusted offline."""

from __future__ import annotations

from typing import Any

from ledger.api import Ledger
from ledger.errors import InvalidRequest
from ledger.governance.checkpoints import Checkpoints
from ledger.governance.log_tree import log_tree


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
