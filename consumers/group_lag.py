"""How far each partition of a group's view is behind its partition, and who applies it now."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from consumers.group_member import ViewFactory
from ledger.log_guard import view_ahead
from ledger.partitions.base import PartitionedLog


@dataclass(frozen=True, slots=True)
class PartitionLag:
    """One partition of a view: its checkpoint, its partition's head, and its current holder."""

    partition: int
    checkpoint: int
    head: int
    holder: str | None

    @property
    def events(self) -> int:
        return self.head - self.checkpoint

    def to_dict(self) -> dict[str, Any]:
        return {
            "partition": self.partition,
            "checkpoint": self.checkpoint,
            "head": self.head,
            "lag_events": self.events,
            "holder": self.holder,
        }


def group_lag(plog: PartitionedLog, make_view: ViewFactory, holders: Mapping[int, str]) -> list[PartitionLag]:
    """Each partition's lag, reading each view's checkpoint (a view ahead of its partition is an error)."""
    out = []
    for k in range(plog.count):
        log = plog.partition(k)
        head = log.head()  # before the checkpoint: a view never gets ahead of a log that only grows
        view = make_view(k)
        try:
            cp = view.checkpoint()
        finally:
            with contextlib.suppress(Exception):
                view.close()
        view_ahead(log, cp, f"{getattr(view, 'name', 'view')} (partition {k})")
        out.append(PartitionLag(k, cp, head, holders.get(k)))
    return out
