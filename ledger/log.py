"""The ``Log`` port: what every log backend (SQLite, PostgreSQL, Kafka, branches) provides.

Offsets are 0-based and gap-free; ``head()`` is the offset of the last event (-1 when empty).
Ranges are inclusive at both ends, so "as of offset N" means events 0..N.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ledger.events import Event, NewEvent

if TYPE_CHECKING:
    from ledger.chain import VerifyResult
    from ledger.log_guard import LogGuard

ANY_VERSION = -1  # expected_version meaning "no check"


@runtime_checkable
class Log(Protocol):
    """An append-only, hash-chained, totally ordered event log."""

    def append(self, events: Sequence[NewEvent], expected_versions: Mapping[str, int] | None = None) -> list[Event]:
        """Validate and append ``events`` atomically (all or none).

        ``expected_versions`` maps a stream to the version it must be at before the batch
        (0: the stream must not exist yet). A mismatch raises ``ConcurrencyConflict``; an
        invalid payload raises ``SchemaViolation``; in both cases nothing is written.
        Re-appending events whose ids are already stored with the same content returns the
        stored events (idempotent retry); different content raises ``IdempotencyConflict``.
        """
        ...

    def read(self, start: int = 0, end: int | None = None) -> Iterator[Event]:
        """Events with ``start <= offset <= end`` (``end`` None: up to head), in order."""
        ...

    def read_stream(self, stream: str, start_version: int = 1, end_offset: int | None = None) -> Iterator[Event]:
        """Events of one stream from ``start_version``, up to ``end_offset`` if given."""
        ...

    def read_refs(self, ref: str, end_offset: int | None = None) -> Iterator[Event]:
        """Events whose payload references the memory (or subject) id ``ref``."""
        ...

    def get_by_id(self, event_id: str) -> Event | None:
        """The event with this id, if stored."""
        ...

    def head(self) -> int:
        """Offset of the last event, -1 when the log is empty."""
        ...

    def head_hash(self) -> str:
        """Hash of the last event (the genesis hash when empty)."""
        ...

    def stream_version(self, stream: str) -> int:
        """Current version of ``stream`` (0 when it has no events)."""
        ...

    def offset_at(self, ts_us: int) -> int:
        """The last offset whose timestamp is at or before ``ts_us`` (-1 if none)."""
        ...

    def subscribe(self, start: int = 0, poll_interval: float = 0.2, stop: object = None) -> Iterator[Event]:
        """Catch-up subscription: yield events from ``start`` on, then wait for new ones.

        ``stop`` is an optional ``threading.Event``; the iterator ends once it is set.
        """
        ...

    def verify(self) -> VerifyResult:
        """Recompute the hash chain (and any index reads depend on) from what is stored."""
        ...

    def close(self) -> None:
        """Release connections and files."""
        ...

    # Capabilities every log has through ``LogBase`` (defaults a backend may make cheaper):

    def hashes(self, start: int = 0, end: int | None = None) -> Iterator[str]:
        """Hex hashes of events ``start..end`` in offset order."""
        ...

    def streams(self) -> list[str]:
        """Every stream that has events."""
        ...

    def stream_version_at(self, stream: str, offset: int) -> int:
        """Version of ``stream`` counting only events at or below ``offset``."""
        ...

    def read_filtered(
        self,
        start: int = 0,
        end: int | None = None,
        actor: str | None = None,
        types: Sequence[str] | None = None,
        stream: str | None = None,
        limit: int | None = None,
    ) -> Iterator[Event]:
        """Events in ``start..end`` of one actor, some types and one stream."""
        ...

    def storage_path(self) -> Path | None:
        """The local file holding the log, if any."""
        ...

    def lease(self, view: str, data_dir: str | Path) -> Lease:
        """The lease deciding which consumer of ``view`` works."""
        ...

    def continuity_guard(self) -> LogGuard | None:
        """The guard that notices this log was reset or replaced (shared logs opened for a data directory)."""
        ...


class Lease(Protocol):
    """Exclusive right to apply one view (which consumer of a group works; see ``consumers``)."""

    description: str

    def poll(self) -> bool:
        """Keep the lease alive; True while this consumer holds it."""
        ...

    def release(self) -> None:
        """Give the lease up (a standby takes over)."""
        ...


class LogBase:
    """Optional capabilities of a ``Log``, with defaults every backend may improve on.

    As ``eventsourcing`` layers its recorders, a backend states what it can do by overriding:
    the defaults are correct on any ``Log`` (built on ``read``/``read_stream``), a backend
    replaces them with a cheaper query where it has one (SQL filters, an index on streams, a
    hash-only scan). Callers use these methods directly; nothing is looked up with ``getattr``.
    """

    def read(self, start: int = 0, end: int | None = None) -> Iterator[Event]:
        raise NotImplementedError

    def read_stream(self, stream: str, start_version: int = 1, end_offset: int | None = None) -> Iterator[Event]:
        raise NotImplementedError

    def hashes(self, start: int = 0, end: int | None = None) -> Iterator[str]:
        """Hex hashes of events ``start..end`` in offset order (Merkle trees need nothing else)."""
        return (e.hash for e in self.read(start, end))

    def streams(self) -> list[str]:
        """Every stream (cube, and ``_system``) that has events."""
        return sorted({e.stream for e in self.read()})

    def stream_version_at(self, stream: str, offset: int) -> int:
        """Version of ``stream`` counting only events at or below ``offset`` (branch fork points)."""
        if offset < 0:
            return 0
        last = 0
        for e in self.read_stream(stream, 1, offset):
            last = e.version
        return last

    def read_filtered(
        self,
        start: int = 0,
        end: int | None = None,
        actor: str | None = None,
        types: Sequence[str] | None = None,
        stream: str | None = None,
        limit: int | None = None,
    ) -> Iterator[Event]:
        """Events in ``start..end`` of one actor, some types and one stream (audit queries)."""
        wanted = set(types) if types else None
        n = 0
        for e in self.read(start, end):
            if (
                (actor is None or e.actor == actor)
                and (wanted is None or e.type in wanted)
                and (stream is None or e.stream == stream)
            ):
                yield e
                n += 1
                if limit is not None and n >= limit:
                    return

    def storage_path(self) -> Path | None:
        """The local file that holds the log, if it is one (None for a server-backed log)."""
        return None

    def lease(self, view: str, data_dir: str | Path) -> Lease:
        """The lease that decides which consumer of ``view`` works: a file lock in ``data_dir``
        by default (consumers on one machine); server-backed logs lease through their server."""
        from ledger.backends.file_lease import FileLease

        return FileLease(data_dir, view)

    reset_guard: LogGuard | None = None  # set by ledger.factory for shared logs opened for a data directory
    # The time source of appends, ``stamp(last_ts_us) -> ts_us`` (None: the wall clock, never going
    # back). A partitioned ledger sets its hybrid logical clock on each partition (``ledger.partitions``).
    clock: Callable[[int], int] | None = None

    def continuity_guard(self) -> LogGuard | None:
        """The guard that notices this log was reset or replaced; None when nothing is remembered."""
        return self.reset_guard


class DelegatingLog(LogBase):
    """A ``Log`` that passes every call to ``inner`` (a base for wrappers that change a few calls,
    such as the service's counting log); ``inner`` is the wrapped log."""

    def __init__(self, inner: Log):
        self.inner = inner

    def append(self, events: Sequence[NewEvent], expected_versions: Mapping[str, int] | None = None) -> list[Event]:
        return self.inner.append(events, expected_versions)

    def read(self, start: int = 0, end: int | None = None) -> Iterator[Event]:
        return self.inner.read(start, end)

    def read_stream(self, stream: str, start_version: int = 1, end_offset: int | None = None) -> Iterator[Event]:
        return self.inner.read_stream(stream, start_version, end_offset)

    def read_refs(self, ref: str, end_offset: int | None = None) -> Iterator[Event]:
        return self.inner.read_refs(ref, end_offset)

    def get_by_id(self, event_id: str) -> Event | None:
        return self.inner.get_by_id(event_id)

    def head(self) -> int:
        return self.inner.head()

    def head_hash(self) -> str:
        return self.inner.head_hash()

    def stream_version(self, stream: str) -> int:
        return self.inner.stream_version(stream)

    def offset_at(self, ts_us: int) -> int:
        return self.inner.offset_at(ts_us)

    def subscribe(self, start: int = 0, poll_interval: float = 0.2, stop: object = None) -> Iterator[Event]:
        return self.inner.subscribe(start, poll_interval, stop)

    def verify(self) -> VerifyResult:
        return self.inner.verify()

    def close(self) -> None:
        self.inner.close()

    def hashes(self, start: int = 0, end: int | None = None) -> Iterator[str]:
        return self.inner.hashes(start, end)

    def streams(self) -> list[str]:
        return self.inner.streams()

    def stream_version_at(self, stream: str, offset: int) -> int:
        return self.inner.stream_version_at(stream, offset)

    def read_filtered(
        self,
        start: int = 0,
        end: int | None = None,
        actor: str | None = None,
        types: Sequence[str] | None = None,
        stream: str | None = None,
        limit: int | None = None,
    ) -> Iterator[Event]:
        return self.inner.read_filtered(start, end, actor, types, stream, limit)

    def storage_path(self) -> Path | None:
        return self.inner.storage_path()

    def lease(self, view: str, data_dir: str | Path) -> Lease:
        return self.inner.lease(view, data_dir)

    def continuity_guard(self) -> LogGuard | None:
        return self.inner.continuity_guard()


def refs_of(payload: Mapping[str, object]) -> set[str]:
    """The memory and subject ids an event payload references (for the ref index): its own memory
    (or ingested message), link ends, sources, memories it was derived from, and the key components of a sealed payload
    (so erasing a subject finds every payload sealed under its key, derived ones included)."""
    refs: set[str] = set()
    get = payload.get
    for key in ("memory_id", "message_id", "source", "target", "subject"):
        v = get(key)
        if v.__class__ is str:
            refs.add(v)
    for key in ("sources", "memory_ids", "derived_from"):
        v = get(key)
        if isinstance(v, list):
            refs.update(x for x in v if isinstance(x, str))
    sealed = get("sealed")
    if isinstance(sealed, dict):
        if isinstance(sealed.get("subject"), str):  # v1: one subject
            refs.add(sealed["subject"])
        keys = sealed.get("keys")  # v2: every key component (subjects, ...) the payload needs
        if isinstance(keys, list):
            refs.update(k["id"] for k in keys if isinstance(k, dict) and isinstance(k.get("id"), str))
    return refs


def poll_subscribe(
    read: Callable[[int], Iterator[Event]], start: int, wait: Callable[[], None], stop: object = None
) -> Iterator[Event]:
    """The catch-up subscription loop every backend shares: yield ``read(next)`` until it is
    exhausted, then ``wait()`` (a sleep, or a backend's notification) and read again; end once
    ``stop`` (a ``threading.Event``) is set."""
    nxt = start
    while stop is None or not stop.is_set():  # type: ignore[attr-defined]
        got = False
        for ev in read(nxt):
            yield ev
            nxt = ev.offset + 1
            got = True
            if stop is not None and stop.is_set():  # type: ignore[attr-defined]
                return
        if not got:
            wait()
