"""The client implementations the contract tests run against: the embedded client on a data
directory, ``MemledgerClient`` against a real ``memledger serve`` on loopback, and
``AsyncMemledgerClient`` against the same server (driven from a blocking portal). ``*_with_admin``
yield the principal ``alice`` and the admin principal ``root`` on the same ledger."""

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
    for alice, _root in embedded_with_admin(tmp):
        yield alice


def embedded_with_admin(tmp: Path) -> Iterator[tuple[Any, Any]]:
    data, _ = init_data_dir(tmp / "embedded")
    (data / "memledger.toml").write_text(NO_VECTORS)
    PrincipalStore(data).create("bob")
    PrincipalStore(data).create("root", admin=True)
    with EmbeddedClient(data, actor="alice") as client:
        # the same ledger object (closed with alice's client), acting as the admin principal
        yield client, EmbeddedClient(data, actor="root", ledger=client.ledger)


def served(tmp: Path, flavour: str) -> Iterator[Any]:
    for alice, _root in served_with_admin(tmp, flavour):
        yield alice


def served_with_admin(tmp: Path, flavour: str) -> Iterator[tuple[Any, Any]]:
    server = LiveServer.start(tmp / "served", config=NO_VECTORS)
    try:
        token = server.principal("alice")
        server.principal("bob")
        root = server.principal("root", admin=True)
        if flavour == "http":
            with MemledgerClient(server.url, token=token) as client, MemledgerClient(server.url, token=root) as admin:
                yield client, admin
            return
        with start_blocking_portal() as portal:
            aclient = portal.call(lambda: _make_async(server.url, token))
            aroot = portal.call(lambda: _make_async(server.url, root))
            try:
                yield BlockingAsyncClient(portal, aclient), BlockingAsyncClient(portal, aroot)
            finally:
                portal.call(aclient.close)
                portal.call(aroot.close)
    finally:
        server.stop()


async def _make_async(url: str, token: str) -> AsyncMemledgerClient:
    return AsyncMemledgerClient(url, token=token)
