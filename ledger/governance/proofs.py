"""Self-contained proof documents for offline verification (see ``ledger/governance/verifier.py``).

Inclusion proof: one event exactly as stored (its payload is ciphertext if it was sealed), its
leaf index, the audit path to the root of a signed checkpoint, and that checkpoint.
Consistency proof: two signed checkpoints and the RFC 6962 proof that the older log is a prefix
of the newer one. Both are plain JSON; nothing in them needs the server to be trusted.
"""

from __future__ import annotations

from typing import Any

from ledger.errors import InvalidRequest, NotFound, StateError
from ledger.events import Event
from ledger.governance.checkpoints import Checkpoint, Checkpoints
from ledger.governance.log_tree import log_tree
from ledger.governance.merkle import MerkleTree
from ledger.log import Log

INCLUSION_FORMAT = "memledger-inclusion-proof/v1"
CONSISTENCY_FORMAT = "memledger-consistency-proof/v1"


class LogDiverged(InvalidRequest):
    """The log no longer matches a signed checkpoint: no honest proof can be made."""


def hashed_event(e: Event) -> dict[str, Any]:
    """The fields of an event that its hash covers, plus the hash (no derived fields)."""
    return {
        "offset": e.offset,
        "stream": e.stream,
        "version": e.version,
        "event_id": e.event_id,
        "type": e.type,
        "schema_version": e.schema_version,
        "ts_us": e.ts_us,
        "actor": e.actor,
        "causation_id": e.causation_id,
        "correlation_id": e.correlation_id,
        "payload": e.payload,
        "prev_hash": e.prev_hash,
        "hash": e.hash,
    }


def _tree_for(log: Log, cp: Checkpoint) -> MerkleTree:
    head = log.head()
    if cp.log_size > head + 1:
        raise LogDiverged(
            f"checkpoint #{cp.seq} covers {cp.log_size} events but the log has {head + 1}: the log was truncated"
        )
    tree = log_tree(log, cp.log_size)
    if tree.root().hex() != cp.root:
        raise LogDiverged(f"the log no longer matches checkpoint #{cp.seq}: history was rewritten")
    return tree


def inclusion_proof(
    log: Log, checkpoints: Checkpoints, offset: int, seq: int | None = None, create: bool = True
) -> dict[str, Any]:
    """Prove the event at ``offset`` is in the log signed by checkpoint ``seq``.

    Without ``seq``: the newest stored checkpoint that covers the offset, or a new checkpoint
    (only with ``create``; otherwise ``StateError`` when no stored checkpoint covers the offset:
    callers who may not create checkpoints never cause one to be signed).
    """
    head = log.head()
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= head:
        raise NotFound(f"no event at offset {offset!r} (head is {head})")
    cp: Checkpoint | None
    if seq is not None:
        cp = checkpoints.get(seq)
        if offset >= cp.log_size:
            raise InvalidRequest(f"checkpoint #{seq} covers offsets 0..{cp.log_size - 1}, not {offset}")
    else:
        cp = checkpoints.latest_covering(offset)
        if cp is None and not create:
            stored = checkpoints.list()
            covered = (
                f"the newest, #{stored[-1].seq}, covers offsets 0..{stored[-1].log_size - 1}"
                if stored
                else "none is stored yet"
            )
            raise StateError(
                f"no signed checkpoint covers offset {offset} ({covered}); "
                "an admin can create one (POST /v1/checkpoints, memledger checkpoint)"
            )
        cp = cp or checkpoints.create(log)
    tree = _tree_for(log, cp)
    event = next(iter(log.read(offset, offset)))
    return {
        "format": INCLUSION_FORMAT,
        "event": hashed_event(event),
        "leaf_index": offset,
        "tree_size": cp.log_size,
        "audit_path": [h.hex() for h in tree.inclusion_proof(offset)],
        "checkpoint": cp.to_dict(),
    }


def consistency_proof(log: Log, checkpoints: Checkpoints, old_seq: int, new_seq: int) -> dict[str, Any]:
    """Prove the log of checkpoint ``old_seq`` is a prefix of the log of checkpoint ``new_seq``."""
    old, new = checkpoints.get(old_seq), checkpoints.get(new_seq)
    if old.log_size > new.log_size:
        raise InvalidRequest(
            f"checkpoint #{old_seq} covers {old.log_size} events, more than #{new_seq} "
            f"({new.log_size}); give the older checkpoint first"
        )
    tree = _tree_for(log, new)
    if tree.root(old.log_size).hex() != old.root:
        raise LogDiverged(f"the log no longer matches checkpoint #{old_seq}: history was rewritten")
    return {
        "format": CONSISTENCY_FORMAT,
        "old": old.to_dict(),
        "new": new.to_dict(),
        "proof": [h.hex() for h in tree.consistency_proof(old.log_size, new.log_size)],
    }
