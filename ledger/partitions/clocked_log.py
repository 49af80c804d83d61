"""A partition as its partitioned ledger hands it out: the backend's log with the handle's clock.

Every event that passes through (appended, or read by any call) is observed by the shared
``HybridClock``, so the handle's next stamp in any partition is later than everything it has seen.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from ledger.errors import InvalidRequest
from ledger.events import Event, NewEvent
from ledger.log import DelegatingLog, Log, LogBase
from ledger.partitions.hlc import HybridClock


class ClockedLog(DelegatingLog):
    """``inner`` (a ``LogBase`` backend) stamping its appends with ``clock`` and observing its reads."""

    def __init__(self, inner: Log, clock: HybridClock):
        if not isinstance(inner, LogBase):
            raise InvalidRequest(f"a partition must be a LogBase backend (it takes the ledger's clock), not {inner!r}")
        super().__init__(inner)
        inner.clock = clock
        self.hlc = clock

    def append(self, events: Sequence[NewEvent], expected_versions: Mapping[str, int] | None = None) -> list[Event]:
        out = self.inner.append(events, expected_versions)
        if out:
            self.hlc.observe(max(e.ts_us for e in out))  # a retry returns stored (older) events
        return out

    def read(self, start: int = 0, end: int | None = None) -> Iterator[Event]:
        return self.hlc.observing(self.inner.read(start, end))

    def read_stream(self, stream: str, start_version: int = 1, end_offset: int | None = None) -> Iterator[Event]:
        return self.hlc.observing(self.inner.read_stream(stream, start_version, end_offset))

    def read_refs(self, ref: str, end_offset: int | None = None) -> Iterator[Event]:
        return self.hlc.observing(self.inner.read_refs(ref, end_offset))

    def get_by_id(self, event_id: str) -> Event | None:
        e = self.inner.get_by_id(event_id)
        if e is not None:
            self.hlc.observe(e.ts_us)
        return e

    def subscribe(self, start: int = 0, poll_interval: float = 0.2, stop: object = None) -> Iterator[Event]:
        return self.hlc.observing(self.inner.subscribe(start, poll_interval, stop))

    def read_filtered(
        self,
        start: int = 0,
        end: int | None = None,
        actor: str | None = None,
        types: Sequence[str] | None = None,
        stream: str | None = None,
        limit: int | None = None,
    ) -> Iterator[Event]:
        return self.hlc.observing(self.inner.read_filtered(start, end, actor, types, stream, limit))
