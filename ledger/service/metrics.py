"""Prometheus metrics of one service instance (its own registry, so apps never collide).

- ``memledger_events_appended_total{type}``: events this process appended (``rate()`` = append rate);
- ``memledger_log_events``: events in the log (head + 1), read at scrape time, counting every writer;
- ``memledger_projection_lag_events{view}``: log head minus the view's checkpoint;
- ``memledger_http_request_duration_seconds{method,route,status}``: request latencies. Label values
  are bounded whatever clients send: methods outside the standard set are ``other``, paths that
  match no route are ``unmatched`` (never the raw path), statuses outside the standard codes ``other``;
- ``memledger_unaudited_denials_total``: unauthenticated refusals beyond the audit rate limit.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from http import HTTPStatus
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ledger.events import Event, NewEvent
from ledger.log import DelegatingLog, Log
from ledger.service.request_id import current_request_id

# RFC 9110 methods and PATCH (RFC 5789); any other method a client invents is counted as "other"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})
STATUSES = frozenset(str(int(code)) for code in HTTPStatus)
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ServiceMetrics:
    """Counters and histograms, plus scrape-time gauges from the log and views."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.events_appended = Counter(
            "memledger_events_appended", "Events appended by this service process", ["type"], registry=self.registry
        )
        self.request_seconds = Histogram(
            "memledger_http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.unaudited_denials = Counter(
            "memledger_unaudited_denials",
            "Unauthenticated refusals not written to the log (audit rate limit)",
            registry=self.registry,
        )

    def watch(self, head: Callable[[], int], views: Mapping[str, Callable[[], int]]) -> None:
        """Report the log size and each view's lag at scrape time."""
        self.registry.register(_LogCollector(head, views))


class _LogCollector(Collector):
    def __init__(self, head: Callable[[], int], views: Mapping[str, Callable[[], int]]):
        self.head = head
        self.views = views

    def collect(self) -> Iterator[Metric]:
        head = self.head()
        yield GaugeMetricFamily("memledger_log_events", "Events in the log (head offset + 1)", value=head + 1)
        lag = GaugeMetricFamily(
            "memledger_projection_lag_events", "Log head minus the view checkpoint", labels=["view"]
        )
        views: dict[str, Callable[[], int]] = {}
        for _ in range(3):  # the view set may register its views while we read the mapping
            try:
                views = dict(self.views)
                break
            except RuntimeError:
                continue
        for name, checkpoint in sorted(views.items()):
            try:
                lag.add_metric([name], max(0, head - checkpoint()))
            except Exception:  # noqa: BLE001 - a broken view must not break the scrape
                lag.add_metric([name], float("nan"))
        yield lag


class CountingLog(DelegatingLog):
    """Wraps a ``Log``: counts appended events per type and stamps the current request id as the
    ``correlation_id`` of events that have none; everything else is delegated."""

    def __init__(self, inner: Log, counter: Counter):
        super().__init__(inner)
        self._counter = counter

    def append(self, events: Sequence[NewEvent], expected_versions: Mapping[str, int] | None = None) -> list[Event]:
        rid = current_request_id()
        if rid is not None:
            events = [replace(e, correlation_id=rid) if e.correlation_id is None else e for e in events]
        written = self.inner.append(events, expected_versions)
        for e in written:
            self._counter.labels(e.type).inc()
        return written


class MetricsMiddleware:
    """Pure ASGI middleware timing every request by its route template (not its raw path)."""

    def __init__(self, app: Any, metrics: ServiceMetrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.request_seconds.labels(*request_labels(scope, status["code"])).observe(
                time.perf_counter() - start
            )


def request_labels(scope: dict[str, Any], status: int) -> tuple[str, str, str]:
    """Bounded (method, route, status) labels of a request: nothing a client sends becomes a label as is."""
    method = scope.get("method", "")
    route = getattr(scope.get("route"), "path", None)
    code = str(status)
    return (
        method if method in METHODS else "other",
        route if isinstance(route, str) else "unmatched",
        code if code in STATUSES else "other",
    )
