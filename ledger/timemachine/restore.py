"""Restore a memory, or a whole cube, to its state at an earlier offset.

A restore never rewrites history: it appends one compensating ``memory.restored`` event per
memory whose current state differs from its state at the target offset, naming the actor and
the offset, so the restore is itself in the audit trail. Sealed (data-subject) content is
restored by copying its ciphertext, so a restore can never bring back a forgotten subject's
data. Frozen memories are read-only and are never restored; explicit links
(``memory.linked``) are edges, not memory state, and are left as they are.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ledger import events as ev
from ledger.api import Ledger
from ledger.errors import ConcurrencyConflict, InvalidRequest, NotFound, StateError
from ledger.events import Event, NewEvent
from ledger.memory_state import MemoryState, apply_event, scope_of

_CONTENT = (ev.MEMORY_ADDED, ev.MEMORY_UPDATED, ev.MEMORY_MERGED, ev.MEMORY_RESTORED)


@dataclass
class Snapshot:
    """Every memory's state (gone ones included) and the content payload that produced it."""

    states: dict[str, MemoryState] = field(default_factory=dict)
    content: dict[str, dict[str, Any]] = field(default_factory=dict)  # memory id -> {"text"|"sealed": ...}


def snapshot(events: Iterable[Event], ledger: Ledger) -> Snapshot:
    """Fold (upcast) ``events``, remembering each memory's last content payload."""
    snap = Snapshot()
    for e in events:
        e = ledger.registry.upcast(e)
        apply_event(snap.states, e, ledger.opener)
        if e.type in _CONTENT:
            mid = e.payload["memory_id"]
            for key in ("text", "sealed"):
                if key in e.payload:
                    snap.content[mid] = {key: e.payload[key]}
    return snap


def _same(now: MemoryState | None, then: MemoryState | None, now_c: Any, then_c: Any) -> bool:
    now_exists = now is not None and now.exists
    then_exists = then is not None and then.exists
    if not now_exists and not then_exists:
        return True
    if now_exists != then_exists or now is None or then is None:
        return False
    return now_c == then_c and now.metadata == then.metadata and now.tags == then.tags and now.state == then.state


def compensation(memory_id: str, to_offset: int, now: Snapshot, then: Snapshot) -> dict[str, Any] | None:
    """The ``memory.restored`` payload that brings ``memory_id`` from ``now`` to ``then`` (None: no change)."""
    cur, old = now.states.get(memory_id), then.states.get(memory_id)
    if _same(cur, old, now.content.get(memory_id), then.content.get(memory_id)):
        return None
    if cur is not None and cur.exists and cur.state == "frozen":
        raise StateError(f"memory {memory_id} is frozen (read-only) and cannot be restored")
    if old is None or not old.exists:
        return {"memory_id": memory_id, "to_offset": to_offset, "exists": False}
    content = then.content.get(memory_id)
    if content is None:
        raise InvalidRequest(f"memory {memory_id} has no content at offset {to_offset}")
    payload: dict[str, Any] = {
        "memory_id": memory_id,
        "to_offset": to_offset,
        "exists": True,
        **content,
        "tags": list(old.tags),
        "state": old.state,
    }
    if "text" in content:
        payload["metadata"] = dict(old.metadata)
    elif scope := scope_of(old.metadata):
        payload["metadata"] = scope  # a sealed payload's scope ids, in plaintext as when it was written
    return payload


@dataclass
class RestoreResult:
    """What a restore appended (nothing when everything already matched the target state)."""

    to_offset: int
    events: list[Event]
    restored: list[str]
    unchanged: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "to_offset": self.to_offset,
            "restored": self.restored,
            "unchanged": self.unchanged,
            "offsets": [e.offset for e in self.events],
            "correlation_id": self.events[0].correlation_id if self.events else None,
        }


def _target(ledger: Ledger, to: int | str) -> int:
    if to is None:
        raise InvalidRequest("restore needs a target offset or time (--to)")
    return ledger.resolve_as_of(to)


def restore_memory(ledger: Ledger, memory_id: str, to: int | str, actor: str, attempts: int = 20) -> RestoreResult:
    """Bring one memory back to its state at ``to`` (an offset or ISO time) with a compensating event."""
    to_offset = _target(ledger, to)
    for _ in range(attempts):
        head = ledger.head()
        now = snapshot(ledger.log.read_refs(memory_id, head), ledger)
        cur = now.states.get(memory_id)
        if cur is None:
            raise NotFound(f"memory {memory_id} not found")
        if cur.erased:
            raise StateError(f"memory {memory_id} was erased; an erased memory cannot be restored")
        then = snapshot(ledger.log.read_refs(memory_id, to_offset), ledger)
        payload = compensation(memory_id, to_offset, now, then)
        if payload is None:
            return RestoreResult(to_offset, [], [], [memory_id])
        cube_version = _stream_version_at(ledger, cur.cube, head)
        try:
            written = ledger.log.append(
                [NewEvent(cur.cube, ev.MEMORY_RESTORED, payload, actor)], {cur.cube: cube_version}
            )
        except ConcurrencyConflict:
            continue  # the cube moved since we looked: look again
        return RestoreResult(to_offset, written, [memory_id], [])
    raise ConcurrencyConflict(f"restore of memory {memory_id}", 0, -1)


def restore_cube(ledger: Ledger, cube: str, to: int | str, actor: str, attempts: int = 20) -> RestoreResult:
    """Bring every memory of ``cube`` back to its state at ``to``, in one atomic batch."""
    to_offset = _target(ledger, to)
    if ledger.log.stream_version(cube) == 0:
        raise NotFound(f"cube {cube!r} not found")
    for _ in range(attempts):
        head = ledger.head()
        version = _stream_version_at(ledger, cube, head)
        now = snapshot(ledger.log.read_stream(cube, 1, head), ledger)
        then = snapshot(ledger.log.read_stream(cube, 1, to_offset), ledger)
        correlation = "restore-" + os.urandom(8).hex()
        batch, restored, unchanged, frozen = [], [], [], []
        for mid in sorted(set(now.states) | set(then.states)):
            if (gone := now.states.get(mid)) is not None and gone.erased:
                unchanged.append(mid)  # erased for good: nothing to bring back
                continue
            try:
                payload = compensation(mid, to_offset, now, then)
            except StateError:
                frozen.append(mid)
                continue
            if payload is None:
                unchanged.append(mid)
                continue
            restored.append(mid)
            batch.append(NewEvent(cube, ev.MEMORY_RESTORED, payload, actor, correlation_id=correlation))
        if frozen:
            raise StateError(
                f"cannot restore cube {cube!r}: frozen (read-only) memories changed since offset "
                f"{to_offset}: {', '.join(frozen)}; nothing was written"
            )
        if not batch:
            return RestoreResult(to_offset, [], [], unchanged)
        try:
            written = ledger.log.append(batch, {cube: version})
        except ConcurrencyConflict:
            continue
        return RestoreResult(to_offset, written, restored, unchanged)
    raise ConcurrencyConflict(f"restore of cube {cube}", 0, -1)


def _stream_version_at(ledger: Ledger, stream: str, offset: int) -> int:
    from ledger.timemachine.branch_log import stream_version_at

    return stream_version_at(ledger.log, stream, offset)
