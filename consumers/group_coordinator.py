"""The ``GroupCoordinator`` port: membership of a consumer group and one lock per partition.

A coordinator answers two questions for one member of one group (a group consumes one view):
who is alive (``heartbeat``, which also proves this member is), and may this member apply
partition ``k`` now (``acquire``). The lock of a partition is held by at most one member at a
time, so two members never apply the same partition, even while they disagree on the
assignment during a rebalance. Exactly-once does not rest on the lock: each partition's view
writes its rows and its checkpoint in one transaction.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class GroupCoordinator(Protocol):
    """Membership and per-partition locks of one member of one consumer group."""

    member: str
    description: str

    def heartbeat(self) -> list[str] | None:
        """Record that this member is alive; return the live members, sorted (None: the coordinator is
        unreachable, and every lock this member held is to be treated as lost)."""
        ...

    def acquire(self, partition: int) -> bool:
        """Take the lock of ``partition`` (True when this member holds it now)."""
        ...

    def release(self, partition: int) -> None:
        """Give up the lock of ``partition`` (a no-op when not held)."""
        ...

    def held(self) -> frozenset[int]:
        """The partitions whose lock this member holds now (empty after its session was lost)."""
        ...

    def check(self) -> bool:
        """Whether the session that holds the locks is still alive (False drops every lock)."""
        ...

    def lock_holders(self) -> dict[int, str]:
        """Partition -> the member holding its lock now, over the whole group (status and tests)."""
        ...

    def leave(self) -> None:
        """Release every lock and leave the group at once (others rebalance without waiting for a
        heartbeat to expire)."""
        ...
