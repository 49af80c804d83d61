"""Hybrid logical clock of a partitioned-ledger handle: the ``ts_us`` of every batch it appends.

A batch appended to a partition gets ``max(wall clock, partition's last ts + 1, handle's newest seen
ts + 1)`` microseconds:

* strictly increasing within the partition (the backend hands the clock the partition's last time
  while it holds the partition's head, so concurrent writers of one partition take turns);
* above every time this handle has seen, in any partition: every event it wrote or read; so an
  event the handle wrote after it wrote or read another is stamped later, and the as-of-time cut
  at the later one (``vector_at``) contains the earlier one;
* the wall clock whenever that is ahead (the logical part only advances past a clock that is
  behind, by a microsecond per step, as in Kulkarni et al.'s HLC with the counter folded into
  the microseconds).

The events of one batch share its stamp, so no time cut splits an atomic batch.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator

from ledger.events import Event, now_us


class HybridClock:
    """One handle's clock, shared by its partitions and safe across threads."""

    def __init__(self, wall: Callable[[], int] = now_us):
        self._wall = wall
        self._seen = 0
        self._lock = threading.Lock()

    @property
    def seen(self) -> int:
        """The newest time this handle has seen (written, read or stamped)."""
        return self._seen

    def stamp(self, last_ts_us: int) -> int:
        """The time of a batch appended after a partition's last time ``last_ts_us``."""
        with self._lock:
            ts = max(self._wall(), last_ts_us + 1, self._seen + 1)
            self._seen = ts
            return ts

    __call__ = stamp  # a ``ledger.chain.Stamp``

    def observe(self, ts_us: int) -> None:
        """Remember that the handle has seen an event of time ``ts_us``."""
        if ts_us > self._seen:
            with self._lock:
                if ts_us > self._seen:
                    self._seen = ts_us

    def observing(self, events: Iterable[Event]) -> Iterator[Event]:
        """``events``, each observed as it passes."""
        for e in events:
            self.observe(e.ts_us)
            yield e
