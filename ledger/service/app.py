"""``create_app``: the FastAPI application over one data directory."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI

from ledger.access import AccessControl
from ledger.api import Ledger
from ledger.config import CONFIG_NAME
from ledger.errors import InvalidRequest
from ledger.file_modes import private_umask
from ledger.principals import PrincipalStore
from ledger.service.auth import ANONYMOUS
from ledger.service.errors import install_error_handlers
from ledger.service.limits import BodyLimitMiddleware
from ledger.service.metrics import CountingLog, MetricsMiddleware, ServiceMetrics
from ledger.service.ratelimit import AuditLimiter
from ledger.service.request_id import RequestIdMiddleware
from ledger.service.settings import Settings
from ledger.service.state import ServiceState

log = logging.getLogger("memledger.service")

# Route modules, one per area. Optional ones (features other parts of memledger provide) are
# included when importable, so the API grows as those parts land.
ROUTE_MODULES = [
    "ledger.service.routes_system",
    "ledger.service.routes_cubes",
    "ledger.service.routes_memories",
    "ledger.service.routes_log",
]
OPTIONAL_ROUTE_MODULES: list[str] = [
    "ledger.service.routes_search",
    "ledger.service.routes_audit",
    "ledger.service.routes_branches",
    "ledger.service.routes_cube_admin",
    "ledger.service.routes_chat",
    "ledger.service.routes_scheduler",
    "ledger.service.routes_governance",
]

ANONYMOUS_WARNING = ("memledger serve: anonymous access is ON; requests without credentials act as principal "
                     "'anonymous'. Never expose this beyond a trusted loopback setup.")


def create_app(data_dir: str | Path, settings: Settings | None = None, ledger: Ledger | None = None,
               views: dict[str, Callable[[], int]] | None = None, follow_views: bool = False,
               scheduler_interval: float | None = None) -> FastAPI:
    """Build the service for ``data_dir`` (which must have been initialised with ``memledger init``).

    ``follow_views`` opens the search views at start-up and keeps them caught up in a background
    thread (what ``memledger serve`` does); otherwise they open on the first search.
    ``scheduler_interval`` (seconds) runs the memory scheduler in a background thread.
    """
    settings = settings or Settings()
    private_umask()  # files the service creates in the data directory are private to its owner
    data = Path(data_dir)
    if ledger is None:
        if not (data / CONFIG_NAME).exists():
            raise InvalidRequest(f"{data} is not a memledger data directory; run: memledger --data {data} init")
        from ledger.factory import open_ledger

        ledger = open_ledger(data)
    metrics = ServiceMetrics()
    ledger.log = CountingLog(ledger.log, metrics.events_appended)  # type: ignore[assignment]
    principals = PrincipalStore(data)

    def principal_exists(name: str) -> bool:
        if name == ANONYMOUS:
            return settings.allow_anonymous
        p = principals.get(name)
        return p is not None and p.active

    access = AccessControl(ledger.log, principal_exists=principal_exists)
    access.index.refresh()  # fold the roles once at start-up, not in the first request
    state = ServiceState(data_dir=data, ledger=ledger, principals=principals, access=access, settings=settings,
                         metrics=metrics, unauth_limiter=AuditLimiter(settings.unauth_audit_per_minute),
                         views=dict(views or {}))
    metrics.watch(ledger.head, state.views)
    if settings.allow_anonymous:
        log.warning(ANONYMOUS_WARNING)

    app = FastAPI(title="memledger", version="1", description=(
        "Event-sourced memory ledger. Authenticate with `Authorization: Bearer <token>` or "
        "`X-API-Key: <token>` (tokens from `memledger principal create`). Every event is attributed to "
        "the authenticated principal."))
    app.state.memledger = state
    install_error_handlers(app)
    for name in ROUTE_MODULES:
        app.include_router(importlib.import_module(name).router)
    for name in OPTIONAL_ROUTE_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            log.info("optional routes %s not available: %s", name, exc)
            continue
        app.include_router(module.router)
        state.extras.setdefault("optional_routes", []).append(name)
    if follow_views and "ledger.service.routes_search" in state.extras.get("optional_routes", []):
        from ledger.service.search_backend import search_backend

        backend = search_backend(state)
        backend.views()
        backend.start_follower()
        app.router.add_event_handler("shutdown", backend.close)
    if scheduler_interval is not None:
        _start_scheduler(app, state, scheduler_interval)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(RequestIdMiddleware)
    return app


def _start_scheduler(app: FastAPI, state: ServiceState, interval: float) -> None:
    """Run ``ledger.scheduler`` every ``interval`` seconds in a daemon thread (stopped at shutdown)."""
    import threading

    if interval <= 0:
        raise InvalidRequest("the scheduler interval must be positive")
    if "ledger.service.routes_scheduler" not in state.extras.get("optional_routes", []):
        raise InvalidRequest("this installation has no memory scheduler (ledger.scheduler)")
    scheduler_mod = importlib.import_module("ledger.scheduler")
    policy_cls = importlib.import_module("ledger.scheduler_policy").SchedulerPolicy
    config = getattr(state.ledger, "config", None)
    sched = scheduler_mod.Scheduler(state.ledger, policy_cls.from_dict(
        config.section("scheduler") if config is not None else None))
    stop = threading.Event()
    thread = threading.Thread(target=sched.run_loop, args=(stop, interval), name="memledger-scheduler", daemon=True)
    state.extras.update(scheduler=sched, scheduler_interval=interval)
    thread.start()

    def shutdown() -> None:
        stop.set()
        thread.join(timeout=30)

    app.router.add_event_handler("shutdown", shutdown)
