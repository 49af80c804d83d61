"""Exceptions raised by the ledger core. Every error carries a clear, user-facing message."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


class LedgerError(Exception):
    """Base class of every error memledger raises on purpose."""


class SchemaViolation(LedgerError):
    """An event does not validate against its declared schema; nothing was written."""

    def __init__(self, event_type: str, schema_version: int, detail: str, index: int | None = None):
        where = f" (event #{index} of the batch)" if index is not None else ""
        super().__init__(f"{event_type} v{schema_version} rejected{where}: {detail}")
        self.event_type = event_type
        self.schema_version = schema_version
        self.detail = detail
        self.index = index


class UnknownEventType(SchemaViolation):
    """The event's type or schema version has no schema in the registry."""


class ConcurrencyConflict(LedgerError):
    """A stream's current version differs from the version the writer expected."""

    def __init__(self, stream: str, expected: int, actual: int):
        super().__init__(
            f"concurrency conflict on stream {stream!r}: expected version {expected}, but it is at version {actual}"
        )
        self.stream = stream
        self.expected = expected
        self.actual = actual


class IdempotencyConflict(LedgerError):
    """An event id was reused for an event with different content."""

    def __init__(self, event_id: str, detail: str = "content differs from the stored event"):
        super().__init__(f"event id {event_id!r} already used: {detail}")
        self.event_id = event_id


class NotFound(LedgerError):
    """A memory, cube, branch or offset that does not exist."""


class InvalidRequest(LedgerError):
    """Malformed input (bad offset, bad time, empty text, ...)."""


class StateError(LedgerError):
    """An operation that is illegal in the current state (e.g. writing a frozen memory)."""


class LegalHold(StateError):
    """A legal hold covers what the operation would delete, erase or change; the refusal was recorded."""

    def __init__(self, message: str, hold_ids: list[str]):
        super().__init__(message)
        self.hold_ids = hold_ids


class AccessDenied(LedgerError):
    """The principal lacks the role an operation needs."""


class BackendUnavailable(LedgerError):
    """A server the ledger needs (PostgreSQL, Kafka, Elasticsearch, Neo4j, a model endpoint) cannot be
    reached or failed mid-request; nothing was half-applied, and the same call may succeed later
    (HTTP 503, CLI exit 2)."""


def unavailable_on(*exceptions: type[BaseException], what: str) -> Callable[[F], F]:
    """Decorate an adapter method so the vendor client's connection errors surface as one
    ``BackendUnavailable`` naming ``what`` (e.g. "Elasticsearch at http://..."), never a traceback."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except LedgerError:
                raise
            except exceptions as exc:
                where = what.format(self=args[0]) if args else what
                detail = " ".join(str(exc).split())[:300] or type(exc).__name__
                raise BackendUnavailable(f"{where} is unavailable: {detail}") from None

        return inner  # type: ignore[return-value]

    return wrap


class InternalError(LedgerError):
    """A broken invariant of memledger itself (a bug, reported as such, never skipped)."""


T = TypeVar("T")


def present(value: T | None, what: str) -> T:
    """``value``, which the caller's invariants guarantee is not None; ``InternalError`` if it is."""
    if value is None:
        raise InternalError(f"internal error: {what} is missing")
    return value
