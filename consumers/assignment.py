"""Which member of a consumer group applies which partition: a pure function of the live members.

Every member computes the assignment itself from the same sorted list of live members, so no
leader and no extra round trip is needed; two members that briefly disagree (one saw a join the
other has not seen yet) are kept apart by the per-partition lock, not by this function.
"""

from __future__ import annotations

from collections.abc import Iterable

from ledger.errors import InvalidRequest

STRATEGIES = ("range", "round_robin")


def assign_partitions(members: Iterable[str], partitions: int, strategy: str = "range") -> dict[str, tuple[int, ...]]:
    """Member -> the partitions it owns, for ``partitions`` partitions over the sorted ``members``.

    ``range`` gives each member one contiguous block (the first ``partitions % n`` members one
    partition more); ``round_robin`` deals partition ``k`` to member ``k % n``. Every partition has
    exactly one owner; with more members than partitions the last members own none.
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
    size, extra = divmod(partitions, n)
    out: dict[str, tuple[int, ...]] = {}
    start = 0
    for i, m in enumerate(names):
        count = size + (1 if i < extra else 0)
        out[m] = tuple(range(start, start + count))
        start += count
    return out


def owned_by(member: str, members: Iterable[str], partitions: int, strategy: str = "range") -> frozenset[int]:
    """The partitions ``member`` owns (empty when it is not among ``members``)."""
    return frozenset(assign_partitions(members, partitions, strategy).get(member, ()))
