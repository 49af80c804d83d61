"""``PartitionFeed``: one partition of a partitioned log, shaped as the ledger a consumer reads.

``ProjectionConsumer`` reads ``ledger.log`` (head, continuity) and ``ledger.events`` (upcast
events); a feed gives it exactly that for one partition, so each partition of a view is consumed
by the same loop, checkpoint and continuity checks as a single-log view.
"""

from __future__ import annotations

from collections.abc import Iterator

from ledger.events import Event
from ledger.log import Log
from ledger.schema_registry import SchemaRegistry, default_registry


class PartitionFeed:
    """The events of partition ``index`` of a partitioned log, upcast by ``registry``."""

    def __init__(self, log: Log, index: int, registry: SchemaRegistry | None = None):
        self.log = log
        self.index = index
        self.registry = registry or default_registry()

    def events(self, start: int = 0, end: int | None = None) -> Iterator[Event]:
        """Events ``start..end`` (inclusive) of this partition, upcast to their latest schema version."""
        up = self.registry.upcast
        return (up(e) for e in self.log.read(start, end))

    def head(self) -> int:
        """This partition's head offset (-1: empty)."""
        return self.log.head()
