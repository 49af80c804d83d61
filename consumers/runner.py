"""``ProjectionConsumer``: keeps one view caught up with the log, out of process.

The loop: hold the view's lease (``consumers.leases``), read the view's own checkpoint, fetch
the next batch of upcast events after it from the log, apply it (the projection writes rows and
checkpoint atomically), report lag, repeat; when caught up, wait for new events. Because the
position lives in the view and not in the consumer, a consumer killed at any instant resumes
exactly where the view's last committed batch ended: no loss and no double application. A
broker or database outage surfaces as an exception from the log; the loop backs off and
retries with the same checkpoint, which is again exactly-once.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ledger.events import now_us
from ledger.log_guard import LogReset, SeenPoint, check_point, view_ahead
from projections import gc_pause
from projections.base import Projection


@dataclass(slots=True)
class Lag:
    """How far a view is behind the log."""

    view: str
    checkpoint: int
    head: int
    events: int  # head - checkpoint
    seconds: float  # age of the oldest unapplied event (0 when caught up)
    applied: int  # events applied by this consumer so far
    active: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "view": self.view,
            "checkpoint": self.checkpoint,
            "head": self.head,
            "lag_events": self.events,
            "lag_seconds": round(self.seconds, 3),
            "applied": self.applied,
            "active": self.active,
        }


def measure_lag(ledger: Any, projection: Projection, applied: int = 0, active: bool = True) -> Lag:
    """Current lag of ``projection`` behind ``ledger``'s log."""
    head = ledger.log.head()
    cp = projection.checkpoint()
    view_ahead(ledger.log, cp, projection.name)  # a view ahead of its log is an error, never a negative lag
    seconds = 0.0
    if cp < head:
        nxt = next(iter(ledger.log.read(cp + 1, cp + 1)), None)
        if nxt is not None:
            seconds = max(0.0, (now_us() - nxt.ts_us) / 1e6)
    return Lag(projection.name, cp, head, head - cp, seconds, applied, active)


class ProjectionConsumer:
    """Runs one projection against a ledger's log under a lease."""

    def __init__(
        self,
        ledger: Any,
        projection: Projection,
        lease: Any = None,
        batch_size: int = 500,
        poll_interval: float = 0.2,
        report: Callable[[Lag], None] | None = None,
        report_every: float = 5.0,
        retry_backoff: float = 1.0,
        rebuild: bool = False,
    ):
        self.ledger = ledger
        self.projection = projection
        self.lease = lease
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.report = report
        self.report_every = report_every
        self.retry_backoff = retry_backoff
        self.rebuild_pending = rebuild  # reset the view once, and only while holding the lease
        self.applied = 0
        self.errors = 0
        self.last_error: BaseException | None = None
        self._last_report = 0.0
        self._last_sent: tuple[Any, ...] | None = None
        self._last: SeenPoint | None = None  # offset and hash of the last event this consumer applied

    def step(self) -> int:
        """Apply at most one batch; return the number of events applied (0: caught up)."""
        log = self.ledger.log
        cp = self.projection.checkpoint()
        head = log.head()
        view_ahead(log, cp, self.projection.name)
        if cp >= head:
            return 0
        self._check_continuity(head)
        end = min(head, cp + self.batch_size)
        batch = list(self.ledger.events(cp + 1, end))
        if not batch:
            return 0
        with gc_pause.folding():  # as catch_up does: no full collections while a batch folds
            self.projection.apply_batch(batch)
        gc_pause.collect_young()
        self.applied += len(batch)
        last = batch[-1]
        self._last = SeenPoint(last.offset, last.hash, f"consumer of view {self.projection.name!r}")
        guard = log.continuity_guard()
        if guard is not None:
            guard.saw(last.offset, last.hash)
        return len(batch)

    def _check_continuity(self, head: int) -> None:
        """Before applying new events: the log still holds what this consumer and its data directory saw."""
        guard = self.ledger.log.continuity_guard()
        if guard is not None:
            guard.check(self.ledger.log, [self._last] if self._last else None)
        elif self._last is not None:
            check_point(self.ledger.log, self._last, head)

    def run(
        self, stop: threading.Event | None = None, until_caught_up: bool = False, max_seconds: float | None = None
    ) -> Lag:
        """Consume until ``stop`` is set (or once caught up / after ``max_seconds``); return the final lag."""
        stop = stop or threading.Event()
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        active = False
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            try:
                active = self.lease.poll() if self.lease is not None else True
                if active and self.rebuild_pending:
                    self.projection.reset()  # never before the lease: a standby must not wipe the live view
                    self.rebuild_pending = False
                n = self.step() if active else 0
            except LogReset:
                raise  # the log was reset or replaced: retrying would apply the wrong events
            except Exception as exc:  # noqa: BLE001 - outage of the log or the view: back off and retry
                self.errors += 1
                self.last_error = exc
                print(f"consumer {self.projection.name}: {exc!r}; retrying in {self.retry_backoff}s", file=sys.stderr)
                stop.wait(self.retry_backoff)
                continue
            self._maybe_report(active)
            if n == 0:
                if until_caught_up and active:
                    break
                stop.wait(self.poll_interval)
        return self._final(active)

    def _maybe_report(self, active: bool, force: bool = False) -> None:
        if self.report is None:
            return
        now = time.monotonic()
        if force or now - self._last_report >= self.report_every:
            self._last_report = now
            try:
                self._send(measure_lag(self.ledger, self.projection, self.applied, active))
            except Exception as exc:  # noqa: BLE001 - reporting must never stop consumption
                print(f"consumer {self.projection.name}: lag report failed: {exc!r}", file=sys.stderr)

    def _send(self, lag: Lag) -> None:
        """Report ``lag`` unless it is exactly the last report (a caught-up --once ended with it twice)."""
        if self.report is None:
            return
        key = (lag.checkpoint, lag.head, lag.applied, lag.active, round(lag.seconds, 3))
        if key != self._last_sent:
            self._last_sent = key
            self.report(lag)

    def _final(self, active: bool) -> Lag:
        lag = measure_lag(self.ledger, self.projection, self.applied, active)
        self._send(lag)
        return lag
