"""``create_app``: the FastAPI application over one data directory."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from ledger.access import AccessControl
from ledger.api import Ledger
from ledger.config import CONFIG_NAME
from ledger.errors import InvalidRequest, present
from ledger.memos.scheduler import Scheduler
from ledger.memos.scheduler_policy import SchedulerPolicy
from ledger.partitions.partitioned_ledger import partition_dir
from ledger.principals import PrincipalStore
from ledger.rules.filters import filter_json_schemas
from ledger.service import (
    routes_audit,
    routes_branches,
    routes_chat,
    routes_cube_admin,
    routes_cubes,
    routes_erasure,
    routes_governance,
    routes_log,
    routes_memories,
    routes_messages,
    routes_scheduler,
    routes_search,
    routes_system,
)
from ledger.service.auth import ANONYMOUS
from ledger.service.docs_pages import install_docs
from ledger.service.errors import install_error_handlers
from ledger.service.limits import BodyLimitMiddleware
from ledger.service.metrics import CountingLog, MetricsMiddleware, ServiceMetrics
from ledger.service.partition_routing import PartitionRouter
from ledger.service.ratelimit import AuditLimiter
from ledger.service.request_id import RequestIdMiddleware
from ledger.service.search_backend import search_backend
from ledger.service.settings import Settings
from ledger.service.state import ServiceState
from ledger.storage.file_modes import private_umask

log = logging.getLogger("memledger.service")

# the routers of every area, in the order the OpenAPI document lists them
ROUTERS = [
    routes_system.router,
    routes_cubes.router,
    routes_memories.router,
    routes_messages.router,
    routes_log.router,
    routes_search.router,
    routes_audit.router,
    routes_branches.router,
    routes_cube_admin.router,
    routes_chat.router,
    routes_scheduler.router,
    routes_governance.router,
    routes_erasure.router,
]

ANONYMOUS_WARNING = (
    "memledger serve: anonymous access is ON; requests without credentials act as principal "
    "'anonymous'. Never expose this beyond a trusted loopback setup."
)


def create_app(
    data_dir: str | Path,
    settings: Settings | None = None,
    ledger: Ledger | None = None,
    views: dict[str, Callable[[], int]] | None = None,
    follow_views: bool = False,
    scheduler_interval: float | None = None,
    mcp: bool = False,
    host: str = "127.0.0.1",
) -> FastAPI:
    """Build the service for ``data_dir`` (which must have been initialised with ``memledger init``).

    ``follow_views`` opens the search views at start-up and keeps them caught up in a background
    thread (what ``memledger serve`` does); otherwise they open on the first search.
    ``scheduler_interval`` (seconds) runs the memory scheduler in a background thread.
    ``mcp`` serves the Model Context Protocol at ``/mcp`` (``ledger.mcp.http``) for a service
    listening on ``host``.
    """
    settings = settings or Settings()
    private_umask()  # files the service creates in the data directory are private to its owner
    data = Path(data_dir)
    pledger = None
    if ledger is None:
        if not (data / CONFIG_NAME).exists():
            raise InvalidRequest(f"{data} is not a memledger data directory; run: memledger --data {data} init")
        from ledger.config import load_config
        from ledger.partitions.settings import partition_count

        if partition_count(load_config(data)) > 1:
            if scheduler_interval is not None:
                raise InvalidRequest("the scheduler needs a ledger of one partition; this ledger is partitioned")
            from ledger.factory import open_partitioned_memory

            pledger = open_partitioned_memory(data)
        else:
            from ledger.factory import open_ledger

            ledger = open_ledger(data)
    metrics = ServiceMetrics()
    principals = PrincipalStore(data)

    def principal_exists(name: str) -> bool:
        if name == ANONYMOUS:
            return settings.allow_anonymous
        p = principals.get(name)
        return p is not None and p.active

    limiter = AuditLimiter(settings.unauth_audit_per_minute)

    def state_of(led: Ledger, partition: int | None = None) -> ServiceState:
        led.log = CountingLog(led.log, metrics.events_appended)
        access = AccessControl(led.log, principal_exists=principal_exists)
        access.index.refresh()  # fold the roles once at start-up, not in the first request
        views_dir = None if partition is None else partition_dir(data, partition)
        return ServiceState(
            data_dir=data,
            ledger=led,
            principals=principals,
            access=access,
            settings=settings,
            metrics=metrics,
            unauth_limiter=limiter,
            views=dict(views or {}) if partition is None else {},
            partition=partition,
            views_dir=views_dir,
        )

    states: list[ServiceState]
    partitions = None
    if pledger is not None:
        states = [state_of(led, k) for k, led in enumerate(pledger.ledgers)]
        partitions = PartitionRouter(pledger, states)
        heads = pledger.heads
        metrics.watch(lambda: sum(h + 1 for h in heads()) - 1, {})
    else:
        states = [state_of(present(ledger, "the ledger"))]
        metrics.watch(states[0].ledger.head, states[0].views)
    state = states[0] if partitions is None else partitions.fanout
    if settings.allow_anonymous:
        log.warning(ANONYMOUS_WARNING)

    app = FastAPI(
        title="memledger",
        version="1",
        docs_url=None,  # served offline by ledger.service.docs_pages (no CDN)
        redoc_url=None,
        description=(
            "Event-sourced memory ledger. Authenticate with `Authorization: Bearer <token>` or "
            "`X-API-Key: <token>` (tokens from `memledger principal create`). Every event is attributed to "
            "the authenticated principal."
        ),
    )
    app.state.memledger = state
    if partitions is not None:
        app.state.memledger_partitions = partitions
    install_error_handlers(app)
    install_docs(app)
    for router in ROUTERS:
        app.include_router(router)
    _add_filter_schemas(app)
    if mcp:
        from ledger.mcp.http import mount_mcp

        mount_mcp(app, state, host=host)
    if follow_views:
        for st in states:
            backend = search_backend(st)
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
    """Run ``ledger.memos.scheduler`` every ``interval`` seconds in a daemon thread (stopped at shutdown)."""
    import threading

    if interval <= 0:
        raise InvalidRequest("the scheduler interval must be positive")
    config = state.ledger.config
    sched = Scheduler(
        state.ledger, SchedulerPolicy.from_dict(config.section("scheduler") if config is not None else None)
    )
    stop = threading.Event()
    thread = threading.Thread(target=sched.run_loop, args=(stop, interval), name="memledger-scheduler", daemon=True)
    state.extras.update(scheduler=sched, scheduler_interval=interval)
    thread.start()

    def shutdown() -> None:
        stop.set()
        thread.join(timeout=30)

    app.router.add_event_handler("shutdown", shutdown)


def _add_filter_schemas(app: FastAPI) -> None:
    """The filter grammar's named schemas (``ledger.rules.filters``) join the OpenAPI components,
    where the request bodies that take a ``where`` filter refer to them."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            schema.setdefault("components", {}).setdefault("schemas", {}).update(filter_json_schemas())
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
