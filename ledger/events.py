"""The event envelope: what a writer proposes (``NewEvent``) and what the log stores (``Event``)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from ledger.canonical import canonical_bytes

# Event types known to the core. Schemas for each live in ``schemas/<type>/v<N>.json``.
CUBE_CREATED = "cube.created"
MEMORY_ADDED = "memory.added"
MEMORY_UPDATED = "memory.updated"
MEMORY_MERGED = "memory.merged"
MEMORY_STATE_CHANGED = "memory.state_changed"
MEMORY_LINKED = "memory.linked"
MEMORY_TAGGED = "memory.tagged"
MEMORY_READ = "memory.read"
MEMORY_RESTORED = "memory.restored"
MEMORY_DELETED = "memory.deleted"
MEMORY_ERASED = "memory.erased"
MEMORY_REDACTED = "memory.redacted"
ACCESS_GRANTED = "access.granted"
ACCESS_REVOKED = "access.revoked"
ACCESS_DENIED = "access.denied"
SUBJECT_FORGOTTEN = "subject.forgotten"
BRANCH_CREATED = "branch.created"
BRANCH_DROPPED = "branch.dropped"
BRANCH_MERGED = "branch.merged"
SCHEDULER_DECIDED = "scheduler.decided"
CHECKPOINT_SIGNED = "checkpoint.signed"
HOLD_PLACED = "hold.placed"
HOLD_RELEASED = "hold.released"
HOLD_REFUSED = "hold.refused"
MESSAGE_ADDED = "message.added"
EXTRACTION_DECIDED = "extraction.decided"

SYSTEM_STREAM = "_system"


def new_event_id() -> str:
    """A fresh 128-bit event id in hex: 64 bits of nanosecond time, then 64 random bits.

    Time-ordered ids (as UUIDv7 does) keep the unique index on event ids append-mostly, which
    makes large batch appends markedly cheaper than random ids would.
    """
    return f"{time.time_ns():016x}{os.urandom(8).hex()}"


def now_us() -> int:
    """Current UTC time in microseconds since the epoch."""
    return int(datetime.now(UTC).timestamp() * 1_000_000)


@lru_cache(maxsize=4096)
def us_to_iso(ts_us: int) -> str:
    """Render microseconds since the epoch as an ISO-8601 UTC string (memoised: events of one
    append share their time, and folds render it for every event)."""
    return datetime.fromtimestamp(ts_us / 1_000_000, tz=UTC).isoformat().replace("+00:00", "Z")


def iso_to_us(text: str) -> int:
    """Parse an ISO-8601 time (``Z`` or offset; naive means UTC) into microseconds since the epoch."""
    s = text.strip()
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(s)
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return int(dt.timestamp() * 1_000_000)
    except (ValueError, OverflowError, OSError) as exc:
        from ledger.errors import InvalidRequest

        raise InvalidRequest(f"not an ISO-8601 time: {text!r}") from exc


@dataclass(slots=True)
class NewEvent:
    """An event proposed for appending. ``event_id`` makes retries idempotent."""

    stream: str
    type: str
    payload: dict[str, Any]
    actor: str
    schema_version: int | None = None  # None: the latest version of ``type``
    event_id: str = field(default_factory=new_event_id)
    causation_id: str | None = None
    correlation_id: str | None = None


@dataclass(frozen=True, slots=True)
class Event:
    """An event as stored: immutable, ordered by ``offset`` and hash-chained by ``hash``."""

    offset: int
    stream: str
    version: int
    event_id: str
    type: str
    schema_version: int
    ts_us: int
    actor: str
    causation_id: str | None
    correlation_id: str | None
    payload: dict[str, Any]
    prev_hash: str
    hash: str

    @property
    def time(self) -> str:
        """The event's timestamp as ISO-8601 UTC."""
        return us_to_iso(self.ts_us)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the whole envelope (the form of ``memledger log``)."""
        return {
            "offset": self.offset,
            "stream": self.stream,
            "version": self.version,
            "event_id": self.event_id,
            "type": self.type,
            "schema_version": self.schema_version,
            "time": self.time,
            "ts_us": self.ts_us,
            "actor": self.actor,
            "causation_id": self.causation_id,
            "correlation_id": self.correlation_id,
            "payload": self.payload,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Event:
        """Inverse of :meth:`to_dict`."""
        return Event(
            offset=int(d["offset"]),
            stream=d["stream"],
            version=int(d["version"]),
            event_id=d["event_id"],
            type=d["type"],
            schema_version=int(d["schema_version"]),
            ts_us=int(d["ts_us"]),
            actor=d["actor"],
            causation_id=d.get("causation_id"),
            correlation_id=d.get("correlation_id"),
            payload=d["payload"],
            prev_hash=d["prev_hash"],
            hash=d["hash"],
        )

    def payload_bytes(self) -> bytes:
        """Canonical bytes of the payload (what the hash covers)."""
        return canonical_bytes(self.payload)
