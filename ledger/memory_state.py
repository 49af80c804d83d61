"""Folding memory events into memory state: the one definition every view agrees with."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from ledger import events as ev
from ledger.events import Event

# Opens a sealed payload: returns {"text": ..., "metadata": ...} or None when the key is gone.
Opener = Callable[[dict[str, Any]], "dict[str, Any] | None"]

CONTENT_EVENTS = frozenset({ev.MEMORY_ADDED, ev.MEMORY_UPDATED, ev.MEMORY_MERGED, ev.MEMORY_RESTORED})
MEMORY_EVENTS = CONTENT_EVENTS | {ev.MEMORY_STATE_CHANGED, ev.MEMORY_TAGGED}


@dataclass(slots=True)
class MemoryState:
    """One memory as of some offset."""

    memory_id: str
    cube: str
    text: str | None
    metadata: dict[str, Any]
    tags: list[str]
    state: str
    version: int  # number of events that changed this memory
    created_offset: int
    updated_offset: int
    created_at: str
    updated_at: str
    created_by: str
    updated_by: str
    subject: str | None = None
    sealed: bool = False
    forgotten: bool = False
    sources: list[str] = field(default_factory=list)
    merged_into: str | None = None
    exists: bool = True
    event_offsets: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.memory_id, "cube": self.cube, "text": self.text, "metadata": self.metadata,
            "tags": self.tags, "state": self.state, "version": self.version,
            "created_offset": self.created_offset, "updated_offset": self.updated_offset,
            "created_at": self.created_at, "updated_at": self.updated_at,
            "created_by": self.created_by, "updated_by": self.updated_by, "subject": self.subject,
            "sealed": self.sealed, "forgotten": self.forgotten, "sources": self.sources,
            "merged_into": self.merged_into, "exists": self.exists, "provenance": self.event_offsets,
        }


def _content(payload: dict[str, Any], opener: Opener | None) -> tuple[str | None, dict[str, Any] | None, bool, bool]:
    """(text, metadata or None if unchanged, sealed, forgotten) of a content payload."""
    if "text" in payload:
        return payload["text"], payload.get("metadata"), False, False
    sealed = payload.get("sealed")
    if sealed is None:
        return None, payload.get("metadata"), False, False
    opened = opener(sealed) if opener else None
    if opened is None:
        return None, payload.get("metadata"), True, True
    return opened.get("text"), opened.get("metadata", payload.get("metadata")), True, False


def apply_event(states: dict[str, MemoryState], event: Event, opener: Opener | None = None) -> list[str]:
    """Apply one (upcast) event to ``states`` in place; return the ids of memories it changed."""
    t, p = event.type, event.payload
    if t == ev.MEMORY_ADDED or t == ev.MEMORY_MERGED:
        mid = p["memory_id"]
        text, meta, sealed, forgotten = _content(p, opener)
        states[mid] = MemoryState(
            memory_id=mid, cube=event.stream, text=text, metadata=dict(meta or {}), tags=list(p.get("tags", [])),
            state=p.get("state", "generated"), version=1, created_offset=event.offset, updated_offset=event.offset,
            created_at=event.time, updated_at=event.time, created_by=event.actor, updated_by=event.actor,
            subject=p.get("subject") or (p.get("sealed") or {}).get("subject"), sealed=sealed, forgotten=forgotten,
            sources=list(p.get("sources", [])), event_offsets=[event.offset],
        )
        changed = [mid]
        if t == ev.MEMORY_MERGED:
            for src in p["sources"]:
                s = states.get(src)
                if s is not None:
                    states[src] = _touch(s, event, state="merged", merged_into=mid)
                    changed.append(src)
        return changed
    if t in (ev.MEMORY_UPDATED, ev.MEMORY_RESTORED, ev.MEMORY_STATE_CHANGED, ev.MEMORY_TAGGED):
        mid = p["memory_id"]
        s = states.get(mid)
        if s is None and t != ev.MEMORY_RESTORED:
            return []
        if t == ev.MEMORY_UPDATED:
            text, meta, sealed, forgotten = _content(p, opener)
            states[mid] = _touch(s, event, text=text, metadata=dict(meta) if meta is not None else s.metadata,
                                 sealed=sealed, forgotten=forgotten)
        elif t == ev.MEMORY_STATE_CHANGED:
            states[mid] = _touch(s, event, state=p["to"])
        elif t == ev.MEMORY_TAGGED:
            tags = [x for x in s.tags if x not in set(p.get("remove", []))]
            tags += [x for x in p.get("add", []) if x not in tags]
            states[mid] = _touch(s, event, tags=tags)
        else:  # restored
            if not p.get("exists", True):
                if s is not None:
                    states[mid] = _touch(s, event, exists=False)
                return [mid]
            text, meta, sealed, forgotten = _content(p, opener)
            if s is None:
                s = MemoryState(mid, event.stream, None, {}, [], "generated", 0, event.offset, event.offset,
                                event.time, event.time, event.actor, event.actor)
            states[mid] = _touch(s, event, text=text, metadata=dict(meta or {}), tags=list(p.get("tags", s.tags)),
                                 state=p.get("state", s.state), sealed=sealed, forgotten=forgotten, exists=True)
        return [mid]
    return []


def _touch(s: MemoryState, event: Event, **changes: Any) -> MemoryState:
    return replace(s, version=s.version + 1, updated_offset=event.offset, updated_at=event.time,
                   updated_by=event.actor, event_offsets=[*s.event_offsets, event.offset], **changes)


def fold(events: Iterable[Event], opener: Opener | None = None) -> dict[str, MemoryState]:
    """Fold events (in offset order) into the state of every memory they touch."""
    states: dict[str, MemoryState] = {}
    for e in events:
        apply_event(states, e, opener)
    return states


def history(memory_id: str, events: Iterable[Event], opener: Opener | None = None) -> list[MemoryState]:
    """Every version of one memory, oldest first (one entry per event that changed it)."""
    states: dict[str, MemoryState] = {}
    versions: list[MemoryState] = []
    for e in events:
        if memory_id in apply_event(states, e, opener) and memory_id in states:
            versions.append(states[memory_id])
    return versions
