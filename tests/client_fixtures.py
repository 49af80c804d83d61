"""The client implementations the contract tests run against: the embedded client on a data
directory, ``MemledgerClient`` against a real ``memledger serve`` on loopback, and
``AsyncMemledgerClient`` against the same server (driven from a blocking portal)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from anyio.from_thread import BlockingPortal, start_blocking_portal

from ledger.client import AsyncMemledgerClient, EmbeddedClient, MemledgerClient
from ledger.config import init_data_dir
from ledger.principals import PrincipalStore
from tests.live_server import LiveServer

NO_VECTORS = '[views]\nvector = "none"\n'
_names = itertools.count(1)


def fresh(prefix: str = "c") -> str:
    """A cube (or branch) name no other test of the run uses."""
    return f"{prefix}{next(_names)}"


class BlockingAsyncClient:
    """``AsyncMemledgerClient`` behind the blocking method signatures (each call awaited in a portal)."""

    def __init__(self, portal: BlockingPortal, client: AsyncMemledgerClient):
        self._portal, self._client = portal, client

    def events(self, start: int = 0, follow: bool = False, limit: int | None = None) -> Iterator[dict[str, Any]]:
        async def collect() -> list[dict[str, Any]]:
            return [e async for e in self._client.events(start, follow, limit)]

        return iter(self._portal.call(collect))

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._client, name)
        return lambda *args, **kwargs: self._portal.call(lambda: method(*args, **kwargs))


def embedded(tmp: Path) -> Iterator[Any]:
    data, _ = init_data_dir(tmp / "embedded")
    (data / "memledger.toml").write_text(NO_VECTORS)
    PrincipalStore(data).create("bob")
    with EmbeddedClient(data, actor="alice") as client:
        yield client


def served(tmp: Path, flavour: str) -> Iterator[Any]:
    server = LiveServer.start(tmp / "served", config=NO_VECTORS)
    try:
        token = server.principal("alice")
        server.principal("bob")
        if flavour == "http":
            with MemledgerClient(server.url, token=token) as client:
                yield client
            return
        with start_blocking_portal() as portal:
            aclient = portal.call(lambda: _make_async(server.url, token))
            try:
                yield BlockingAsyncClient(portal, aclient)
            finally:
                portal.call(aclient.close)
    finally:
        server.stop()


async def _make_async(url: str, token: str) -> AsyncMemledgerClient:
    return AsyncMemledgerClient(url, token=token)
