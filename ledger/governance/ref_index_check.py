"""Checking the ref index (memory/subject id -> offsets) against the chained events.

``get``, ``history``, ``audit`` and erasure find a memory's events through the ref index, so an
index row removed (or added) by someone with write access to the database would silently change
their answers while the hash chain stays intact. ``verify`` therefore recomputes the refs of every
event (``refs_of`` of its payload, exactly what ``append`` indexed) and compares them with the
stored rows:

1. an order-independent digest (count and 128-bit sum of a keyed hash of each ``(offset, ref)``
   pair) of the expected and of the stored rows, in one pass over each and O(1) memory;
2. only when the digests differ, a sorted merge of both sides to name the first offset whose refs
   differ, and how.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import groupby
from typing import Any

from ledger.canonical import GENESIS_HASH
from ledger.chain import RawRow, VerifyResult, verify_rows
from ledger.log import refs_of

_MASK = (1 << 128) - 1
_KEY = b"memledger-ref-index/v1"


def _pair_hash(offset: int, ref: str) -> int:
    h = hashlib.blake2b(f"{offset}\x1f{ref}".encode("utf-8", "surrogatepass"), digest_size=16, key=_KEY)
    return int.from_bytes(h.digest(), "big")


@dataclass(slots=True)
class RefDigest:
    """Count and modular sum of the ``(offset, ref)`` pairs of an index."""

    count: int = 0
    total: int = 0

    def add(self, offset: int, ref: str) -> None:
        self.count += 1
        self.total = (self.total + _pair_hash(offset, ref)) & _MASK

    def add_event(self, offset: int, payload: Any) -> None:
        """Add the refs ``append`` indexes for an event with this payload."""
        if isinstance(payload, dict):
            for ref in refs_of(payload):
                self.add(offset, ref)

    @classmethod
    def of_rows(cls, rows: Iterable[tuple[str, int]]) -> RefDigest:
        """The digest of stored ``(ref, offset)`` rows, in any order."""
        d = cls()
        for ref, offset in rows:
            d.add(int(offset), str(ref))
        return d


def first_difference(expected: Iterable[tuple[int, Any]], stored_sorted: Iterable[tuple[int, str]]) -> tuple[int, str]:
    """The first offset whose stored refs differ from the refs of its event, and a description.

    ``expected`` yields ``(offset, payload)`` in offset order; ``stored_sorted`` yields the stored
    ``(offset, ref)`` rows sorted by offset.
    """
    want = ((off, refs_of(p) if isinstance(p, dict) else set()) for off, p in expected)
    have = ((off, {r for _, r in grp}) for off, grp in groupby(stored_sorted, key=lambda row: row[0]))
    nxt_have = next(have, None)
    last = -1
    for off, refs in want:
        last = off
        if nxt_have is not None and nxt_have[0] < off:
            return nxt_have[0], f"index rows {sorted(nxt_have[1])} name an offset whose event does not reference them"
        stored = nxt_have[1] if nxt_have is not None and nxt_have[0] == off else set()
        if stored != refs:
            missing, extra = sorted(refs - stored), sorted(stored - refs)
            parts = ([f"missing {missing}"] if missing else []) + ([f"unexpected {extra}"] if extra else [])
            return off, "; ".join(parts)
        if nxt_have is not None and nxt_have[0] == off:
            nxt_have = next(have, None)
    if nxt_have is not None:
        return nxt_have[0], f"index rows {sorted(nxt_have[1])} name offset {nxt_have[0]}, beyond the last event {last}"
    return -1, "digests differ but no differing offset was found"


def verify_chain_and_refs(
    rows: Callable[[], Iterable[RawRow]],
    stored_refs: Callable[[], Iterable[tuple[str, int]]],
    stored_refs_sorted: Callable[[], Iterable[tuple[int, str]]],
    start_offset: int = 0,
    start_hash: str = GENESIS_HASH,
    index_name: str = "refs",
) -> VerifyResult:
    """Verify the hash chain of ``rows()`` and that the ref index equals what its events imply.

    Each argument is a callable so the failure path can read its source a second time.
    """
    expected = RefDigest()
    result = verify_rows(rows(), start_offset, start_hash, on_payload=expected.add_event)
    if not result.ok:
        return result
    if RefDigest.of_rows(stored_refs()) == expected:
        return result
    offset, detail = first_difference(_payloads(rows()), stored_refs_sorted())
    return VerifyResult(
        False,
        result.checked,
        result.head,
        result.head_hash,
        offset,
        f"the {index_name} index (which get, history and audit read) disagrees with the chained "
        f"events at offset {offset}: {detail}",
    )


def _payloads(rows: Iterable[RawRow]) -> Iterator[tuple[int, Any]]:
    import orjson

    for row in rows:
        payload = row[10]
        yield row[0], orjson.loads(payload.encode() if isinstance(payload, str) else payload)
