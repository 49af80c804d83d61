"""Legal holds: while a hold covers a cube, a data subject or a memory, nothing it covers may be
deleted, erased, forgotten, redacted or expired by retention.

Holds are events in their own stream (``_holds``): ``hold.placed`` / ``hold.released``, and
``hold.refused`` for every refused attempt (the audit record of it: who tried what, blocked by
which holds). An operation checks the holds and appends its own events with the ``_holds``
stream's version as an expected version, so a hold placed between the check and the write makes
the write fail with a concurrency conflict (and the operation checks again) rather than slip by.

A memory is covered by a hold on its id, on its cube, or on any data subject its content is
sealed under. Forgetting a subject is refused when a hold covers the subject or any memory sealed
under its key; erasing a memory, when a hold covers it or a memory derived from it (both would
become unreadable).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ledger import events as ev
from ledger.errors import ConcurrencyConflict, InvalidRequest, LegalHold, NotFound
from ledger.events import NewEvent
from ledger.log import Log
from ledger.memory_state import MemoryState
from ledger.rules.content import is_blank
from ledger.rules.names import check_name

HOLDS_STREAM = "_holds"
SCOPES = ("cube", "subject", "memory_id")
OPERATIONS = ("delete", "erase", "forget", "redact", "retention")
MAX_REASON = 2000


@dataclass(frozen=True, slots=True)
class Hold:
    """One active legal hold."""

    hold_id: str
    scope: str  # "cube" | "subject" | "memory_id"
    target: str
    reason: str
    placed_by: str
    placed_at: str
    offset: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "hold_id": self.hold_id,
            "scope": "memory" if self.scope == "memory_id" else self.scope,
            "target": self.target,
            "reason": self.reason,
            "placed_by": self.placed_by,
            "placed_at": self.placed_at,
            "offset": self.offset,
        }


@dataclass(frozen=True, slots=True)
class Holds:
    """The active holds as of some version of the ``_holds`` stream."""

    active: dict[str, Hold]
    version: int  # the ``_holds`` stream's version they were read at (an expected version for writers)

    def covering(
        self,
        memories: Iterable[MemoryState] = (),
        cubes: Iterable[str] = (),
        subjects: Iterable[str] = (),
        memory_ids: Iterable[str] = (),
    ) -> list[Hold]:
        """The holds that cover any of ``memories`` (by id, cube or subject), ``cubes``, ``subjects``
        or ``memory_ids``."""
        if not self.active:
            return []
        by = {(h.scope, h.target): h for h in self.active.values()}
        hit: dict[str, Hold] = {}

        def check(scope: str, target: str | None) -> None:
            if target is not None and (h := by.get((scope, target))) is not None:
                hit[h.hold_id] = h

        for m in memories:
            check("memory_id", m.memory_id)
            check("cube", m.cube)
            for s in m.subjects:
                check("subject", s)
        for c in cubes:
            check("cube", c)
        for s in subjects:
            check("subject", s)
        for mid in memory_ids:
            check("memory_id", mid)
        return sorted(hit.values(), key=lambda h: h.offset)


def read_holds(log: Log, end_offset: int | None = None) -> Holds:
    """Fold the ``_holds`` stream (up to ``end_offset``) into the active holds."""
    active: dict[str, Hold] = {}
    version = 0
    for e in log.read_stream(HOLDS_STREAM, 1, end_offset):
        version = e.version
        p = e.payload
        if e.type == ev.HOLD_PLACED:
            scope = next(k for k in SCOPES if k in p)
            active[p["hold_id"]] = Hold(p["hold_id"], scope, p[scope], p["reason"], e.actor, e.time, e.offset)
        elif e.type == ev.HOLD_RELEASED:
            active.pop(p["hold_id"], None)
    return Holds(active, version)


def _reason(reason: Any, required: bool) -> str | None:
    if reason is None and not required:
        return None
    if not isinstance(reason, str) or is_blank(reason) or len(reason) > MAX_REASON:
        raise InvalidRequest(f"a hold needs a reason: a non-blank string of at most {MAX_REASON} characters")
    return reason


def place_hold(
    log: Log,
    actor: str,
    reason: str,
    cube: str | None = None,
    subject: str | None = None,
    memory_id: str | None = None,
    hold_id: str | None = None,
) -> Hold:
    """Place a hold on exactly one of a cube, a data subject or a memory (``hold_id``: the id to
    record, by default a new one; a partitioned ledger records one hold in several partitions)."""
    given = {k: v for k, v in (("cube", cube), ("subject", subject), ("memory_id", memory_id)) if v is not None}
    if len(given) != 1:
        raise InvalidRequest("a hold covers exactly one of --cube, --subject or --memory")
    scope, target = next(iter(given.items()))
    if scope == "memory_id":
        if not isinstance(target, str) or not target or len(target) > 200:
            raise InvalidRequest("a memory id is a non-empty string of at most 200 characters")
    else:
        check_name(target, "cube name" if scope == "cube" else "data subject")
    _reason(reason, True)
    if not actor:
        raise InvalidRequest("a hold needs the actor who places it")
    hold_id = hold_id or "hold_" + os.urandom(8).hex()
    e = log.append(
        [NewEvent(HOLDS_STREAM, ev.HOLD_PLACED, {"hold_id": hold_id, scope: target, "reason": reason}, actor)]
    )[0]
    return Hold(hold_id, scope, target, reason, actor, e.time, e.offset)


def release_hold(log: Log, hold_id: str, actor: str, reason: str | None = None) -> int:
    """End a hold; returns the offset of the ``hold.released`` event."""
    _reason(reason, False)
    for _ in range(20):
        holds = read_holds(log)
        if hold_id not in holds.active:
            raise NotFound(f"no active hold {hold_id!r}")
        payload: dict[str, Any] = {"hold_id": hold_id}
        if reason:
            payload["reason"] = reason
        try:
            return log.append(
                [NewEvent(HOLDS_STREAM, ev.HOLD_RELEASED, payload, actor)], {HOLDS_STREAM: holds.version}
            )[0].offset
        except ConcurrencyConflict:
            continue
    raise InvalidRequest(f"could not release hold {hold_id}: the holds kept changing")


def refuse(
    log: Log,
    holds: Sequence[Hold],
    operation: str,
    actor: str,
    memory_ids: Sequence[str] = (),
    cube: str | None = None,
    subject: str | None = None,
) -> LegalHold:
    """Record the refused attempt (``hold.refused``) and return the error to raise."""
    ids = [h.hold_id for h in holds]
    payload: dict[str, Any] = {"operation": operation, "hold_ids": ids}
    if memory_ids:
        payload["memory_ids"] = list(dict.fromkeys(memory_ids))
    if cube is not None:
        payload["cube"] = cube
    if subject is not None:
        payload["subject"] = subject
    log.append([NewEvent(HOLDS_STREAM, ev.HOLD_REFUSED, payload, actor or "anonymous")])
    what = ", ".join(f"{h.hold_id} ({h.to_dict()['scope']} {h.target}: {h.reason})" for h in holds)
    return LegalHold(f"{operation} refused: under legal hold {what}; the attempt was recorded", ids)
