"""What the MCP tools call: a client API (async) and the session's default cube.

Over stdio the API is the ``EmbeddedClient`` of a data directory, run in a worker thread; over
HTTP it is an ``AsyncMemledgerClient`` that sends each tool call through the service's own REST
routes in-process, with the caller's token, so authentication, roles, refusals and audit events
are exactly the REST API's (``ledger.mcp.http``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

import anyio
from anyio.to_thread import run_sync
from mcp.server.mcpserver.exceptions import ResourceError, ToolError

from ledger.client.calls import Point
from ledger.client.embedded import EmbeddedClient
from ledger.client.models import JSON, Hit, Memory, Page, Written
from ledger.client.partitioned_embedded import PartitionedEmbeddedClient
from ledger.errors import InvalidRequest, LedgerError
from ledger.mcp.audit import Recorder, record_read


class LedgerCallError(ToolError, ResourceError):
    """A ``LedgerError`` of a tool call or resource read, reported to the model as its one-line
    message (the SDK hides the text of any other exception as a crash)."""


@asynccontextmanager
async def reported() -> AsyncIterator[None]:
    """Turn ``LedgerError`` into ``LedgerCallError`` (bad input, unknown id, refusal: the model should read why)."""
    try:
        yield
    except LedgerError as exc:
        raise LedgerCallError(f"{type(exc).__name__}: {exc}") from None


class ClientAPI(Protocol):
    """The client methods the tools use (``AsyncMemledgerClient`` has them; so does ``Threaded``)."""

    async def add(
        self,
        cube: str,
        text: str,
        metadata: JSON | None = None,
        tags: Sequence[str] | None = None,
        subject: str | None = None,
        idempotency_key: str | None = None,
        branch: str | None = None,
    ) -> Written: ...

    async def update(
        self,
        memory_id: str,
        text: str,
        metadata: JSON | None = None,
        expected_version: int | None = None,
        reason: str | None = None,
        branch: str | None = None,
    ) -> Written: ...

    async def get(self, memory_id: str, as_of: Point | None = None, branch: str | None = None) -> Memory: ...

    async def history(self, memory_id: str, as_of: Point | None = None) -> list[Memory]: ...

    async def change_state(
        self, memory_id: str, to: str, reason: str | None = None, expected_version: int | None = None
    ) -> Written: ...

    async def list_memories(
        self,
        cube: str,
        as_of: Point | None = None,
        state: str | None = None,
        limit: int = 100,
        after: str | None = None,
        where: JSON | None = None,
    ) -> Page: ...

    async def search(
        self,
        query: str,
        cubes: Sequence[str] | None = None,
        k: int = 10,
        as_of: Point | None = None,
        branch: str | None = None,
        states: Sequence[str] | None = None,
        all_states: bool = False,
        metadata: JSON | None = None,
        where: JSON | None = None,
        min_score: float | None = None,
    ) -> list[Hit]: ...

    async def audit(
        self,
        cube: str | None = None,
        memory: str | None = None,
        actor: str | None = None,
        since: Point | None = None,
        until: Point | None = None,
        types: Sequence[str] | None = None,
        as_of: Point | None = None,
        limit: int = 1000,
    ) -> list[JSON]: ...

    async def cubes(self) -> list[JSON]: ...

    async def branches(self) -> list[JSON]: ...

    async def create_branch(self, name: str, at: Point | None = None, from_branch: str | None = None) -> JSON: ...

    async def branch_diff(self, name: str) -> list[JSON]: ...

    async def delete(
        self, memory_id: str, reason: str | None = None, expected_version: int | None = None
    ) -> Written: ...

    async def erase(self, memory_id: str, reason: str) -> JSON: ...

    async def lineage(self, memory_id: str, as_of: Point | None = None, depth: int = 10) -> JSON: ...

    async def ingest(
        self,
        cube: str,
        messages: Sequence[JSON],
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        session_id: str | None = None,
        subject: str | None = None,
        batch_id: str | None = None,
    ) -> JSON: ...

    async def messages_status(self, cube: str) -> JSON: ...

    async def whoami(self) -> JSON: ...


@dataclass(frozen=True)
class Session:
    """One tool call's view of the ledger: the API, the default cube (None: every call names one)
    and the recorder of the calls that write nothing through the API (``ledger.mcp.audit``)."""

    api: ClientAPI
    default_cube: str | None
    recorder: Recorder

    async def record(
        self, operation: str, memory_ids: Sequence[str] = (), cube: str | None = None, branch: str | None = None
    ) -> None:
        """Append the audit record of this call (``memory.read``, the principal as actor)."""
        await self.recorder(operation, memory_ids, cube, branch)

    def cube(self, cube: str | None) -> str:
        """``cube``, or the default cube; a one-line error when there is neither."""
        if cube:
            return cube
        if self.default_cube:
            return self.default_cube
        raise InvalidRequest(
            "name a cube: this MCP server has no default cube (start it with --cube C, or add ?cube=C to its URL)"
        )

    def cubes(self, cubes: Sequence[str] | None) -> list[str] | None:
        """The cubes to search: those named, else the default cube, else every readable cube (None)."""
        if cubes:
            return list(cubes)
        return [self.default_cube] if self.default_cube else None


# what the tools are given: the request's context in, a session for the duration of the call out
SessionFactory = Callable[[Any], AbstractAsyncContextManager[Session]]


class Threaded:
    """``EmbeddedClient`` with awaitable methods: each call runs in a worker thread, one at a time
    (the embedded views are one set of objects), so a slow search never blocks the stdio loop."""

    def __init__(self, client: EmbeddedClient | PartitionedEmbeddedClient):
        self.client = client
        self._limiter = anyio.CapacityLimiter(1)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.client, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await self.run(partial(method, *args, **kwargs))

        return call

    async def run(self, fn: Callable[[], Any]) -> Any:
        """``fn()`` in the worker thread, after the calls before it."""
        return await run_sync(fn, limiter=self._limiter)


def embedded_sessions(client: EmbeddedClient | PartitionedEmbeddedClient, default_cube: str | None) -> SessionFactory:
    """Sessions over one embedded client (stdio: one user, one actor)."""
    api: Any = Threaded(client)

    async def recorder(operation: str, ids: Sequence[str], cube: str | None, branch: str | None) -> None:
        ledger = client.record_ledger(cube, ids)
        await api.run(partial(record_read, ledger, client.actor, operation, ids, cube, branch))

    @asynccontextmanager
    async def session(ctx: Any) -> AsyncIterator[Session]:
        async with reported():
            yield Session(api, default_cube, recorder)

    return session
