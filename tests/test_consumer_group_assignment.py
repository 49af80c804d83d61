"""Assignment of partitions to the members of a consumer group: total, exclusive, balanced, stable."""

from __future__ import annotations

import itertools

import pytest

from consumers.assignment import assign_partitions, owned_by
from ledger.errors import InvalidRequest


@pytest.mark.parametrize("strategy", ["range", "round_robin", "rendezvous"])
@pytest.mark.parametrize("members", [1, 2, 3, 4, 5, 8, 11])
@pytest.mark.parametrize("partitions", [1, 3, 8, 12])
def test_every_partition_has_exactly_one_owner_and_loads_differ_by_at_most_one(strategy, members, partitions):
    names = [f"m{i}" for i in range(members)]
    out = assign_partitions(names, partitions, strategy)
    owned = sorted(k for ks in out.values() for k in ks)
    assert owned == list(range(partitions))
    loads = [len(out.get(m, ())) for m in names]
    assert max(loads) - min(loads) <= 1


@pytest.mark.parametrize("strategy", ["range", "round_robin", "rendezvous"])
def test_the_assignment_depends_only_on_the_set_of_members(strategy):
    names = ["c", "a", "d", "b"]
    first = assign_partitions(names, 8, strategy)
    for order in itertools.permutations(names):
        assert assign_partitions(list(order) + ["a"], 8, strategy) == first


def test_range_gives_contiguous_blocks_in_member_order():
    assert assign_partitions(["b", "a"], 8) == {"a": (0, 1, 2, 3), "b": (4, 5, 6, 7)}
    assert assign_partitions(["a", "b", "c"], 8) == {"a": (0, 1, 2), "b": (3, 4, 5), "c": (6, 7)}
    assert assign_partitions(["a", "b"], 8, "round_robin") == {"a": (0, 2, 4, 6), "b": (1, 3, 5, 7)}


def test_a_member_not_in_the_group_owns_nothing_and_an_empty_group_assigns_nothing():
    assert owned_by("z", ["a", "b"], 8) == frozenset()
    assert owned_by("b", ["a", "b"], 8) == frozenset({4, 5, 6, 7})
    assert assign_partitions([], 8) == {}


def test_bad_arguments_are_refused():
    with pytest.raises(InvalidRequest):
        assign_partitions(["a"], 0)
    with pytest.raises(InvalidRequest):
        assign_partitions(["a"], 8, "sticky")


def _moved(before: dict[str, tuple[int, ...]], after: dict[str, tuple[int, ...]]) -> int:
    owner = {k: m for m, ks in before.items() for k in ks}
    return sum(1 for m, ks in after.items() for k in ks if owner.get(k) != m)


def test_rendezvous_moves_fewer_partitions_than_range_when_members_join_and_leave():
    moved = {"range": 0, "rendezvous": 0}
    for size in range(1, 8):
        for seed in range(20):
            names = [f"member-{seed}-{i}" for i in range(size)]
            joined = [*names, f"member-{seed}-new"]
            for strategy in moved:
                before, after = assign_partitions(names, 12, strategy), assign_partitions(joined, 12, strategy)
                moved[strategy] += _moved(before, after) + _moved(after, before)  # join, then leave again
    assert moved["rendezvous"] < moved["range"], moved
