"""Sending a ``Call``: headers, timeouts, retries and error mapping, for ``httpx.Client`` and
``httpx.AsyncClient`` alike.

Retries: a request that never reached the server (connection refused or timed out while
connecting) is always retried; one that may have reached it (read timeout, dropped connection,
502/503/504) only when repeating it cannot write twice: reads, searches and adds, which always
carry an idempotency key (``Call.retry_safe``). Backoff doubles from ``backoff`` up to ``max_backoff``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import orjson

from ledger.client import calls
from ledger.client.calls import Call
from ledger.client.errors import ServiceUnreachable, error_from_response
from ledger.client.models import JSON
from ledger.client.sse import SseParser
from ledger.errors import InvalidRequest

R = TypeVar("R")
USER_AGENT = "memledger-client/0.1"


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a call is repeated."""

    attempts: int = 3
    backoff: float = 0.2
    max_backoff: float = 2.0
    statuses: frozenset[int] = frozenset({502, 503, 504})

    def delay(self, attempt: int) -> float:
        return min(self.max_backoff, self.backoff * 2 ** (attempt - 1))

    def again(self, call: Call[Any], attempt: int, error: Exception | None = None) -> bool:
        """Whether to repeat ``call`` after its ``attempt``-th try failed (with ``error``, or a retryable status)."""
        if attempt >= self.attempts:
            return False
        never_sent = isinstance(error, httpx.ConnectError | httpx.ConnectTimeout)
        return never_sent or call.retry_safe


def _json(content: bytes | None) -> dict[str, str] | None:
    return None if content is None else {"Content-Type": "application/json"}


def headers(token: str | None) -> dict[str, str]:
    out = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    if token:
        out["Authorization"] = f"Bearer {token}"
    return out


def _unreachable(call: Call[Any], exc: Exception) -> ServiceUnreachable:
    detail = " ".join(str(exc).split())[:300] or type(exc).__name__
    return ServiceUnreachable(f"memledger service unreachable ({call.method} {call.path}): {detail}")


def encode(call: Call[Any]) -> bytes | None:
    """The JSON body of ``call``; ``InvalidRequest`` for what JSON cannot carry (NaN, Infinity, objects)."""
    if call.body is None:
        return None
    try:
        return json.dumps(call.body, allow_nan=False, ensure_ascii=False, separators=(",", ":")).encode()
    except (ValueError, TypeError) as exc:
        raise InvalidRequest(f"the request body is not valid JSON: {exc}") from None


def decode(call: Call[R], response: httpx.Response) -> R:
    """The result of a finished response, or the mapped exception for an error status."""
    if response.status_code >= 400:
        try:
            body = response.json()
        except ValueError:
            body = None
        raise error_from_response(response.status_code, body)
    if call.ndjson:
        return call.parse([orjson.loads(line) for line in response.content.splitlines() if line.strip()])
    return call.parse(orjson.loads(response.content) if response.content else None)


def send(client: httpx.Client, call: Call[R], retry: RetryPolicy) -> R:
    """Send ``call`` with retries; return its parsed result."""
    attempt, content = 0, encode(call)
    while True:
        attempt += 1
        try:
            response = client.request(
                call.method, call.path, params=call.params, content=content, headers=_json(content)
            )
        except httpx.TransportError as exc:
            if not retry.again(call, attempt, exc):
                raise _unreachable(call, exc) from None
            time.sleep(retry.delay(attempt))
            continue
        if response.status_code in retry.statuses and retry.again(call, attempt):
            time.sleep(retry.delay(attempt))
            continue
        return decode(call, response)


async def send_async(client: httpx.AsyncClient, call: Call[R], retry: RetryPolicy) -> R:
    """``send`` for an ``httpx.AsyncClient``."""
    attempt, content = 0, encode(call)
    while True:
        attempt += 1
        try:
            response = await client.request(
                call.method, call.path, params=call.params, content=content, headers=_json(content)
            )
        except httpx.TransportError as exc:
            if not retry.again(call, attempt, exc):
                raise _unreachable(call, exc) from None
            await asyncio.sleep(retry.delay(attempt))
            continue
        if response.status_code in retry.statuses and retry.again(call, attempt):
            await asyncio.sleep(retry.delay(attempt))
            continue
        return decode(call, response)


@dataclass
class StreamCursor:
    """Where a log stream stands: the next offset to ask for and how many events are still wanted."""

    next: int
    remaining: int | None
    failures: int = 0

    def call(self, follow: bool) -> Call[JSON]:
        return calls.log_stream(self.next, follow, self.remaining)

    def took(self, event: JSON) -> bool:
        """Record a delivered event; True when the wanted number is reached."""
        self.next, self.failures = int(event["offset"]) + 1, 0
        if self.remaining is not None:
            self.remaining -= 1
            return self.remaining <= 0
        return False


def stream(client: httpx.Client, start: int, follow: bool, limit: int | None, retry: RetryPolicy) -> Iterator[JSON]:
    """Events from ``start`` on; a dropped connection resumes after the last event delivered."""
    cursor = StreamCursor(start, limit)
    while True:
        call = cursor.call(follow)
        try:
            with client.stream("GET", call.path, params=call.params) as response:
                if response.status_code >= 400:
                    response.read()
                    decode(call, response)
                parser = SseParser()
                for line in response.iter_lines():
                    event = parser.feed(line)
                    if event is not None:
                        done = cursor.took(event)
                        yield event
                        if done:
                            return
            if not follow:
                return
            raise httpx.RemoteProtocolError("the server closed a followed stream")
        except httpx.TransportError as exc:
            cursor.failures += 1
            if cursor.failures >= retry.attempts:
                raise _unreachable(call, exc) from None
            time.sleep(retry.delay(cursor.failures))


async def stream_async(
    client: httpx.AsyncClient, start: int, follow: bool, limit: int | None, retry: RetryPolicy
) -> AsyncIterator[JSON]:
    """``stream`` for an ``httpx.AsyncClient``."""
    cursor = StreamCursor(start, limit)
    while True:
        call = cursor.call(follow)
        try:
            async with client.stream("GET", call.path, params=call.params) as response:
                if response.status_code >= 400:
                    await response.aread()
                    decode(call, response)
                parser = SseParser()
                async for line in response.aiter_lines():
                    event = parser.feed(line)
                    if event is not None:
                        done = cursor.took(event)
                        yield event
                        if done:
                            return
            if not follow:
                return
            raise httpx.RemoteProtocolError("the server closed a followed stream")
        except httpx.TransportError as exc:
            cursor.failures += 1
            if cursor.failures >= retry.attempts:
                raise _unreachable(call, exc) from None
            await asyncio.sleep(retry.delay(cursor.failures))
