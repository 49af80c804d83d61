"""Service settings: limits and switches chosen when the app is created."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Settings:
    """Knobs of one service instance. Defaults are the safe choice."""

    allow_anonymous: bool = False  # unauthenticated requests act as principal "anonymous"
    public_metrics: bool = False  # /metrics without credentials (for a Prometheus scraper)
    max_body_bytes: int = 2_000_000  # request bodies above this get 413
    max_text_chars: int = 200_000  # memory text limit of the HTTP API (the core allows 1,000,000)
    max_page: int = 1000  # events or memories per page
    max_scan: int = 20_000  # log events examined per /v1/log page (filtering by access)
    sse_poll_seconds: float = 0.2
    sse_keepalive_seconds: float = 15.0
    unauth_audit_per_minute: int = 60  # access.denied events for unauthenticated requests, per client host
