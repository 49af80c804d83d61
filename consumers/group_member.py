"""``GroupMember``: one member of a consumer group that divides a view's partitions among its members.

A view over a partitioned log is N views, one per partition, each with its own checkpoint written
in the same transaction as that partition's rows (``make_view(k)`` opens partition ``k``'s store).
Members of a group divide the partitions: each computes the assignment from the sorted live
members (``consumers.assignment``), gives up the partitions it no longer owns (closing their view
and releasing their lock) and takes the ones it now owns once their lock is free, so a partition
moves only after its previous owner let go. Then it applies one batch per partition it holds, with
the same loop a single-view consumer runs (``ProjectionConsumer.step``).

Heartbeats run on a thread of their own, so a slow batch never makes a member look dead. A
membership change wakes the loop at once. ``run`` ends by leaving the group (SIGTERM: the others
take over at their next heartbeat); a member killed with ``kill -9`` is noticed by the coordinator.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from consumers.assignment import owned_by
from consumers.group_coordinator import GroupCoordinator
from consumers.partition_feed import PartitionFeed
from consumers.runner import ProjectionConsumer, measure_lag
from ledger.log_guard import LogReset
from ledger.partitions.base import PartitionedLog
from ledger.schema_registry import SchemaRegistry
from projections.base import Projection

ViewFactory = Callable[[int], Projection]


def default_member_id() -> str:
    """A member id unique to this process: host, pid and a random suffix."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@dataclass(slots=True)
class GroupStatus:
    """What one member of a group does now, and how far its partitions are behind."""

    group: str
    view: str
    member: str
    members: int
    owned: list[int]
    held: list[int]
    checkpoints: dict[int, int] = field(default_factory=dict)
    heads: dict[int, int] = field(default_factory=dict)
    lag_events: int = 0
    applied: int = 0
    rebalances: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "view": self.view,
            "member": self.member,
            "members": self.members,
            "owned": self.owned,
            "held": self.held,
            "checkpoints": {str(k): v for k, v in sorted(self.checkpoints.items())},
            "lag_events": self.lag_events,
            "applied": self.applied,
            "rebalances": self.rebalances,
        }


class GroupMember:
    """Consumes the partitions of one view that the group assigns to this member."""

    def __init__(
        self,
        partitions: PartitionedLog,
        make_view: ViewFactory,
        coordinator: GroupCoordinator,
        group: str,
        view: str,
        registry: SchemaRegistry | None = None,
        strategy: str = "range",
        batch_size: int = 500,
        poll_interval: float = 0.2,
        heartbeat_interval: float = 1.0,
        retry_backoff: float = 1.0,
        report: Callable[[GroupStatus], None] | None = None,
        report_every: float = 5.0,
    ):
        self.partitions = partitions
        self.make_view = make_view
        self.coordinator = coordinator
        self.group = group
        self.view = view
        self.registry = registry
        self.strategy = strategy
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.heartbeat_interval = heartbeat_interval
        self.retry_backoff = retry_backoff
        self.report = report
        self.report_every = report_every
        self.count = partitions.count
        self.consumers: dict[int, ProjectionConsumer] = {}
        self.applied_before: int = 0  # events applied by consumers of partitions given up since
        self.rebalances = 0
        self.errors = 0
        self.last_error: BaseException | None = None
        self._members: list[str] | None = None
        self._owned: frozenset[int] = frozenset()
        self._wake = threading.Event()
        self._beat_stop = threading.Event()
        self._beat: threading.Thread | None = None
        self._last_report = 0.0

    @property
    def member(self) -> str:
        return self.coordinator.member

    @property
    def applied(self) -> int:
        """Events this member applied so far, over every partition it held."""
        return self.applied_before + sum(c.applied for c in self.consumers.values())

    # -- membership ------------------------------------------------------------------------
    def beat(self) -> None:
        """One heartbeat; wakes the loop when the live members changed."""
        members = self.coordinator.heartbeat()
        if members != self._members:
            self._members = members
            self._wake.set()

    def _beat_loop(self) -> None:
        while not self._beat_stop.wait(self.heartbeat_interval):
            try:
                self.beat()
            except Exception as exc:  # noqa: BLE001 - a failed heartbeat is retried at the next one
                print(f"group {self.group}: heartbeat failed: {exc!r}", file=sys.stderr)

    def start(self) -> None:
        """Join the group: a first heartbeat now, then one every ``heartbeat_interval`` on a thread."""
        if self._beat is not None:
            return
        self.beat()
        self._beat_stop.clear()
        self._beat = threading.Thread(target=self._beat_loop, name=f"group-{self.group}-heartbeat", daemon=True)
        self._beat.start()

    def stop(self) -> None:
        """Leave the group at once: close every partition's view, free its locks, delete the member row."""
        self._beat_stop.set()
        if self._beat is not None:
            self._beat.join()
            self._beat = None
        for k in list(self.consumers):
            self._give_up(k, release=False)
        self.coordinator.leave()

    # -- one round -------------------------------------------------------------------------
    def rebalance(self) -> None:
        """Give up the partitions this member no longer owns or lost the lock of, then take the owned
        ones whose lock is free (a partition still held by its previous owner is tried next round)."""
        members = self._members
        owned = frozenset() if members is None else owned_by(self.member, members, self.count, self.strategy)
        if owned != self._owned:
            self._owned = owned
            self.rebalances += 1
        alive = self.coordinator.check() if self.consumers else True
        held = self.coordinator.held() if alive else frozenset()
        for k in sorted(self.consumers):
            if k not in owned or k not in held:
                self._give_up(k, release=k in held)
        for k in sorted(owned - set(self.consumers)):
            if self.coordinator.acquire(k):
                self._take(k)

    def _take(self, k: int) -> None:
        try:
            view = self.make_view(k)
        except Exception as exc:  # noqa: BLE001 - the view's store is down: let go and retry next round
            self.coordinator.release(k)
            self._failed(f"opening the view of partition {k}", exc)
            return
        feed = PartitionFeed(self.partitions.partition(k), k, self.registry)
        self.consumers[k] = ProjectionConsumer(feed, view, batch_size=self.batch_size)

    def _give_up(self, k: int, release: bool) -> None:
        consumer = self.consumers.pop(k)
        self.applied_before += consumer.applied
        with contextlib.suppress(Exception):
            consumer.projection.close()
        if release:
            self.coordinator.release(k)

    def _failed(self, what: str, exc: BaseException) -> None:
        self.errors += 1
        self.last_error = exc
        print(f"group {self.group} member {self.member}: {what}: {exc!r}", file=sys.stderr)

    def step(self) -> tuple[int, bool]:
        """Rebalance, then apply at most one batch per held partition: (events applied, any error)."""
        self.rebalance()
        applied, failed = 0, False
        for k in sorted(self.consumers):
            try:
                applied += self.consumers[k].step()
            except LogReset:
                raise  # the log was reset or replaced: retrying would apply the wrong events
            except Exception as exc:  # noqa: BLE001 - outage of the log or the view: back off and retry
                self._failed(f"partition {k}", exc)
                failed = True
        return applied, failed

    def caught_up(self) -> bool:
        """Every partition this member owns is held and at its partition's head."""
        if self._members is None or set(self.consumers) != self._owned:
            return False
        return all(c.projection.checkpoint() >= c.ledger.log.head() for c in self.consumers.values())

    # -- the loop --------------------------------------------------------------------------
    def run(
        self, stop: threading.Event | None = None, until_caught_up: bool = False, max_seconds: float | None = None
    ) -> GroupStatus:
        """Consume until ``stop`` is set (or once caught up / after ``max_seconds``), then leave the
        group; return the last status."""
        stop = stop or threading.Event()
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        self.start()
        status = self.status()
        try:
            while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
                try:
                    n, failed = self.step()
                except LogReset:
                    raise
                except Exception as exc:  # noqa: BLE001 - the coordinator or a view is down
                    self._failed("rebalance", exc)
                    n, failed = 0, True
                self._maybe_report()
                if failed:
                    stop.wait(self.retry_backoff)
                elif n == 0:
                    if until_caught_up and self.caught_up():
                        break
                    self._wake.wait(self.poll_interval)
                    self._wake.clear()
            status = self.status()
            self._send(status)
        finally:
            self.stop()
        return status

    def status(self) -> GroupStatus:
        """This member's assignment and the lag of the partitions it holds."""
        out = GroupStatus(
            self.group,
            self.view,
            self.member,
            len(self._members or []),
            sorted(self._owned),
            sorted(self.consumers),
            applied=self.applied,
            rebalances=self.rebalances,
        )
        for k, c in sorted(self.consumers.items()):
            try:
                lag = measure_lag(c.ledger, c.projection, c.applied)
            except LogReset:
                raise
            except Exception:  # noqa: BLE001 - the log or the view is down: the status says what is known
                continue
            out.checkpoints[k], out.heads[k] = lag.checkpoint, lag.head
            out.lag_events += lag.events
        return out

    def _maybe_report(self) -> None:
        if self.report is None:
            return
        now = time.monotonic()
        if now - self._last_report >= self.report_every:
            self._last_report = now
            try:
                self._send(self.status())
            except Exception as exc:  # noqa: BLE001 - reporting must never stop consumption
                print(f"group {self.group}: status report failed: {exc!r}", file=sys.stderr)

    def _send(self, status: GroupStatus) -> None:
        if self.report is not None:
            self.report(status)
