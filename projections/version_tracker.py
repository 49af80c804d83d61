"""Memory versions for out-of-process views: which version each event opens and which it closes.

External views (Elasticsearch, Neo4j) cannot share the embedded views' SQLite tables, so they
derive versions the same way from the one definition of memory state
(``ledger.memory_state.apply_event``). The state of a memory before a batch is folded from the
log itself (``read_refs`` up to the offset before the batch), never from the view, so a batch
that was half written when a process died is recomputed identically on redelivery: every write
it produces is a deterministic, idempotent function of the log.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ledger import events as ev
from ledger.events import Event
from ledger.memory_state import MemoryState, Opener, apply_event

CACHE_LIMIT = 200_000


@dataclass(frozen=True, slots=True)
class LogSource:
    """What a tracker reads: a ``log`` (one partition's, for a partition's view), the ledger's
    ``registry`` (upcasting) and ``opener`` (sealed payloads)."""

    log: Any
    registry: Any
    opener: Opener | None


@dataclass(slots=True)
class VersionChange:
    """One memory changed by one event: the new version, and the version it closed (if any)."""

    memory_id: str
    offset: int  # valid_from of the new version = valid_to of the closed one
    state: MemoryState
    closed_from: int | None  # valid_from of the version this change closed


def version_id(memory_id: str, valid_from: int) -> str:
    """Deterministic id of one memory version (same id on every replay)."""
    return f"{memory_id}@{valid_from}"


def touched_memories(events: Iterable[Event]) -> set[str]:
    """Ids of memories whose state the events may change."""
    out: set[str] = set()
    for e in events:
        p = e.payload
        if isinstance(p.get("memory_id"), str):
            out.add(p["memory_id"])
        if e.type == ev.MEMORY_MERGED:
            out.update(x for x in p.get("sources", []) if isinstance(x, str))
    return out


class VersionTracker:
    """Turns event batches into version changes, loading prior states from the log.

    ``source`` is a ``ledger.api.Ledger`` (its ``log``, ``registry`` for upcasting and
    ``opener`` for sealed payloads). States of recently applied memories are cached while
    batches arrive back to back; the cache is dropped whenever continuity is not certain.
    """

    def __init__(self, source: object, opener: Opener | None = None):
        self.source = source
        self.opener = opener if opener is not None else getattr(source, "opener", None)
        self._cache: dict[str, MemoryState] = {}
        self._cache_at = -2  # offset the cache reflects; -2: nothing cached
        self._pending: tuple[int, int, dict[str, MemoryState]] | None = None

    def invalidate(self) -> None:
        """Forget cached states (after a failed write or a reset)."""
        self._cache.clear()
        self._cache_at = -2
        self._pending = None

    def _load(self, memory_ids: Iterable[str], upto: int) -> dict[str, MemoryState]:
        states: dict[str, MemoryState] = {}
        if upto < 0:
            return states
        log = self.source.log  # type: ignore[attr-defined]
        upcast = self.source.registry.upcast  # type: ignore[attr-defined]
        missing = []
        for mid in memory_ids:
            if self._cache_at == upto and mid in self._cache:
                states[mid] = self._cache[mid]
            else:
                missing.append(mid)
        for mid in missing:
            local: dict[str, MemoryState] = {}
            for e in log.read_refs(mid, end_offset=upto):
                apply_event(local, upcast(e), self.opener)
            if mid in local:
                states[mid] = local[mid]
        return states

    def changes(self, events: Sequence[Event]) -> list[VersionChange]:
        """Version changes of ``events`` (upcast, offset order, all after the view's checkpoint)."""
        if not events:
            return []
        touched = touched_memories(events)
        states = self._load(touched, events[0].offset - 1)
        out: list[VersionChange] = []
        for e in events:
            before = {mid: states[mid].updated_offset for mid in touched_memories([e]) if mid in states}
            for mid in apply_event(states, e, self.opener):
                if mid in states:
                    out.append(VersionChange(mid, e.offset, states[mid], before.get(mid)))
        self._pending = (events[0].offset - 1, events[-1].offset, states)
        return out

    def committed(self) -> None:
        """The view durably wrote the last ``changes`` batch: cache its states for the next one."""
        pending, self._pending = self._pending, None
        if pending is None:
            return
        before, after, states = pending
        if self._cache_at != before or len(self._cache) > CACHE_LIMIT:
            self._cache.clear()
        self._cache.update(states)
        self._cache_at = after
