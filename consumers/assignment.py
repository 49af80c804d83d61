"""Which member of a consumer group applies which partition: a pure function of the live members.

Every member computes the assignment itself from the same sorted list of live members, so no
leader and no extra round trip is needed; two members that briefly disagree (one saw a join the
other has not seen yet) are kept apart by the per-partition lock, not by this function.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from ledger.errors import InvalidRequest

STRATEGIES = ("range", "round_robin", "rendezvous")


def assign_partitions(members: Iterable[str], partitions: int, strategy: str = "range") -> dict[str, tuple[int, ...]]:
    """Member -> the partitions it owns, for ``partitions`` partitions over the sorted ``members``.

    ``range`` gives each member one contiguous block (the first ``partitions % n`` members one
    partition more); ``round_robin`` deals partition ``k`` to member ``k % n``; ``rendezvous``
    gives each partition to the member that scores highest for it (a hash of both), within the
    same balance, so a join or a leave moves few partitions besides those it must. Every
    partition has exactly one owner; with more members than partitions some members own none.
    """
    if partitions < 1:
        raise InvalidRequest(f"a consumer group needs at least one partition, not {partitions}")
    if strategy not in STRATEGIES:
        raise InvalidRequest(f"unknown assignment strategy {strategy!r}; known: {', '.join(STRATEGIES)}")
    names = sorted(set(members))
    if not names:
        return {}
    n = len(names)
    if strategy == "round_robin":
        return {m: tuple(range(i, partitions, n)) for i, m in enumerate(names)}
    if strategy == "rendezvous":
        return _rendezvous(names, partitions)
    size, extra = divmod(partitions, n)
    out: dict[str, tuple[int, ...]] = {}
    start = 0
    for i, m in enumerate(names):
        count = size + (1 if i < extra else 0)
        out[m] = tuple(range(start, start + count))
        start += count
    return out


def _score(member: str, partition: int) -> int:
    """A stable pseudo-random weight of (member, partition), the same in every process."""
    return int.from_bytes(hashlib.blake2b(f"{member}\0{partition}".encode(), digest_size=8).digest(), "big")


def _rendezvous(names: list[str], partitions: int) -> dict[str, tuple[int, ...]]:
    """Highest weight first over all (member, partition) pairs: a partition goes to the best-scoring
    member that still has room (``partitions // n`` each, one more for the first ``partitions % n``
    members to fill up)."""
    n = len(names)
    base, extra = divmod(partitions, n)
    pairs = sorted(((_score(m, k), m, k) for m in names for k in range(partitions)), reverse=True)
    owner: dict[int, str] = {}
    load = dict.fromkeys(names, 0)
    for _, m, k in pairs:
        if k in owner:
            continue
        if load[m] < base or (load[m] == base and extra > 0):
            if load[m] == base:
                extra -= 1
            owner[k] = m
            load[m] += 1
    return {m: tuple(sorted(k for k, o in owner.items() if o == m)) for m in names}


def owned_by(member: str, members: Iterable[str], partitions: int, strategy: str = "range") -> frozenset[int]:
    """The partitions ``member`` owns (empty when it is not among ``members``)."""
    return frozenset(assign_partitions(members, partitions, strategy).get(member, ()))
