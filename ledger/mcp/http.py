"""``memledger serve --mcp``: MCP over streamable HTTP at ``/mcp``, next to the REST API.

The same tokens and roles as the REST API, through the same code:

- the endpoint authenticates each request with the service's own ``current_caller`` (401 and an
  audited ``access.denied`` without a valid token, exactly like a REST route);
- every tool call is sent, in-process, through the REST routes themselves (an
  ``AsyncMemledgerClient`` over ``httpx.ASGITransport`` with the caller's token), so role checks,
  404-for-invisible ids, refusals and audit events are the REST API's; there is no second
  access-control path. The inner request carries ``X-Request-ID: mcp.<tool>.<random>``, which
  becomes the ``correlation_id`` of every event the call writes;
- the calls whose REST routes write nothing (listing cubes or branches, a branch diff, an audit
  trail, a lineage) are recorded by ``ledger.mcp.audit`` under the principal the REST API
  authenticated (``/v1/whoami``), with the same correlation id.

``/mcp?cube=C`` makes C the session's default cube (as ``memledger mcp --cube C`` does).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import httpx
from anyio.to_thread import run_sync
from fastapi import APIRouter, FastAPI
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from starlette.requests import Request
from starlette.routing import Route

from ledger.client.aio import AsyncMemledgerClient
from ledger.mcp.audit import record_read
from ledger.mcp.backend import Session, SessionFactory, reported
from ledger.mcp.server import build_server
from ledger.service.auth import api_key_scheme, bearer_scheme, current_caller
from ledger.service.errors import Unauthenticated, error_body
from ledger.service.responses import JSON
from ledger.service.state import ServiceState

PATH = "/mcp"
INTERNAL_BASE = "http://memledger.internal"  # the in-process REST API (never resolved: ASGI transport)


def _credentials(headers: Any) -> dict[str, str]:
    """The caller's credential headers, forwarded unchanged to the REST routes."""
    if headers is None:
        return {}
    return {k: headers[k] for k in ("authorization", "x-api-key") if headers.get(k)}


def _tool_name(ctx: Any) -> str:
    params = getattr(ctx.request_context, "params", None) or {}
    name = params.get("name") if isinstance(params, dict) else None
    return "".join(c for c in str(name or "resource") if c.isalnum() or c in "_.-")[:40] or "call"


def asgi_sessions(app: FastAPI, state: ServiceState) -> SessionFactory:
    """Sessions that run each call through ``app``'s REST routes with the request's credentials
    (and record the calls that write nothing there in ``state``'s ledger, as the token's principal)."""
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 0))

    @asynccontextmanager
    async def session(ctx: Any) -> AsyncIterator[Session]:
        request = ctx.request_context.request
        headers = {
            **_credentials(getattr(request, "headers", None)),
            "X-Request-ID": f"mcp.{_tool_name(ctx)}.{os.urandom(6).hex()}",
        }
        cube = request.query_params.get("cube") if isinstance(request, Request) else None
        client = AsyncMemledgerClient(INTERNAL_BASE, token="", transport=transport, extra_headers=headers)

        async def recorder(operation: str, ids: Sequence[str], cube: str | None, branch: str | None) -> None:
            principal = (await client.whoami())["principal"]  # who the REST API authenticated
            ledger = ledger_of(state, cube, ids)
            write = partial(record_read, ledger, principal, operation, ids, cube, branch, headers["X-Request-ID"])
            await run_sync(write)

        try:
            async with reported():
                yield Session(client, cube or None, recorder)
        finally:
            await client.close()

    return session


def ledger_of(state: ServiceState, cube: str | None, ids: Sequence[str]) -> Any:
    """The ledger a tool call's record belongs in: on a partitioned ledger, the partition of its cube
    (or of its first memory; partition 0 for calls about no cube, such as listing cubes)."""
    router = state.partitioned
    if router is None:
        return state.ledger
    if cube is not None:
        return router.states[router.pledger.partition_of(cube)].ledger
    if ids:
        return router.states[router.pledger.home_of(ids[0])].ledger
    return router.states[0].ledger


class Authenticated:
    """ASGI wrapper: the MCP endpoint answers only requests the REST API would authenticate."""

    def __init__(self, inner: Any, state: ServiceState):
        self.inner, self.state = inner, state

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            request = Request(scope, receive)
            try:
                await current_caller(request, await bearer_scheme(request), await api_key_scheme(request), self.state)
            except Unauthenticated as exc:
                response = JSON(
                    error_body("Unauthenticated", exc.message),
                    status_code=401,
                    headers={"WWW-Authenticate": 'Bearer realm="memledger"'},
                )
                await response(scope, receive, send)
                return
        await self.inner(scope, receive, send)


def mount_mcp(app: FastAPI, state: ServiceState, host: str = "127.0.0.1") -> None:
    """Serve MCP at ``/mcp`` of ``app`` (its session manager runs for the app's lifetime).

    ``host`` is where the service listens: on loopback the SDK's DNS-rebinding protection admits
    only loopback ``Host``/``Origin`` headers.
    """
    server = build_server(asgi_sessions(app, state))
    server.streamable_http_app(streamable_http_path=PATH, host=host)  # creates the session manager
    manager = server.session_manager
    endpoint = Authenticated(StreamableHTTPASGIApp(manager), state)
    app.router.routes.append(Route(PATH, endpoint=endpoint, methods=["GET", "POST", "DELETE"]))

    @asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        async with manager.run():
            yield

    app.include_router(APIRouter(lifespan=lifespan))
