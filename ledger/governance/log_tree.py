"""The Merkle tree of a log: leaf ``i`` is the raw 32-byte hash of the event at offset ``i``.

Event hashes already commit to each event's whole envelope and payload (and, through
``prev_hash``, to everything before it); the tree adds compact proofs that one event is in
the log (inclusion) and that one log state is a prefix of a later one (consistency).
"""

from __future__ import annotations

from collections.abc import Iterator

from ledger.errors import InvalidRequest
from ledger.governance.merkle import MerkleTree, leaf_hash
from ledger.log import Log


def event_leaf(event_hash_hex: str) -> bytes:
    """The leaf bytes of an event: its hex hash decoded."""
    return bytes.fromhex(event_hash_hex)


def event_hashes(log: Log, end: int | None = None) -> Iterator[str]:
    """Hex hashes of events ``0..end`` (default head), in offset order.

    Backends read just the hash column where they can (``Log.hashes``: no payload decoding).
    """
    yield from log.hashes(0, end)


def log_tree(log: Log, size: int | None = None) -> MerkleTree:
    """The Merkle tree of the first ``size`` events (default: the whole log)."""
    head = log.head()
    if size is None:
        size = head + 1
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= head + 1:
        raise InvalidRequest(f"tree size {size!r} is out of range (the log has {head + 1} events)")
    tree = MerkleTree()
    if size == 0:
        return tree
    expected = 0
    for h in event_hashes(log, size - 1):
        tree.append_leaf_hash(leaf_hash(event_leaf(h)))
        expected += 1
    if expected != size:
        raise InvalidRequest(f"the log returned {expected} events where {size} were expected")
    return tree
