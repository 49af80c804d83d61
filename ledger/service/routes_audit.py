"""Audit routes: who created, changed, read, shared or was refused what, and when.

Owners and auditors of a cube may query its trail; admins may query the whole log. Entries are
content-free (texts and sealed payloads never appear); for a caller who may not read memories
(an auditor) metadata and other content fields are removed as well.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import Field

from ledger import events as ev
from ledger.access import ALLOWED, Action, Caller
from ledger.errors import InvalidRequest
from ledger.events import NewEvent
from ledger.schema_registry import default_registry
from ledger.service.auth import current_caller
from ledger.service.event_filter import CONTENT_KEYS
from ledger.service.models import ERRORS, CubeName
from ledger.service.params import AS_OF_DESCRIPTION, AS_OF_PATTERN, AsOf, resolve_as_of
from ledger.service.state import ServiceState, get_state
from ledger.timemachine import audit as audit_mod

router = APIRouter(prefix="/v1/audit", tags=["audit"], responses=ERRORS)

Bound = Annotated[
    str | None, Query(max_length=64, pattern=AS_OF_PATTERN, description=AS_OF_DESCRIPTION + " (inclusive)")
]
# an event type, ``<namespace>.*`` or ``*`` (the CLI takes any glob; over HTTP every value must name a type)
_TYPES = default_registry().types()
EVENT_TYPE_PATTERN = (
    "^(?:"
    + "|".join(re.escape(t) for t in _TYPES)
    + "|(?:"
    + "|".join(sorted({re.escape(t.split(".")[0]) for t in _TYPES}))
    + r")\.\*|\*)$"
)


def _clean(entry: dict[str, Any], full: bool) -> dict[str, Any]:
    if full:
        return entry
    details = {k: v for k, v in (entry.get("details") or {}).items() if k not in CONTENT_KEYS}
    return {**entry, "details": details}


@router.get("", summary="Audit trail of a cube or a memory (owner or auditor; the whole log for admins)")
def audit_trail(
    cube: Annotated[CubeName | None, Query()] = None,
    memory: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    actor: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    since: Bound = None,
    until: Bound = None,
    as_of: AsOf = None,
    event_type: Annotated[
        list[Annotated[str, Field(pattern=EVENT_TYPE_PATTERN)]] | None,
        Query(alias="type", max_length=50, description="event types, or <namespace>.* / *"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    caller: Caller = Depends(current_caller),
    state: ServiceState = Depends(get_state),
) -> dict[str, Any]:
    access = state.access
    if memory is not None:
        mcube = access.require_memory(caller, memory, Action.AUDIT, "audit")
        if cube is not None and cube != mcube:
            raise InvalidRequest(f"memory {memory} is not in cube {cube!r}")
        cube = mcube
    elif cube is not None:
        access.require_cube(caller, cube, Action.AUDIT, "audit")
    elif not caller.admin:
        raise InvalidRequest("name a cube or a memory (only admins may audit the whole log)")
    full = caller.admin or (cube is not None and bool(access.index.roles(cube, caller.name) & ALLOWED[Action.READ]))
    end = resolve_as_of(state.ledger, as_of)
    q = audit_mod.AuditQuery(
        memory=memory, cube=cube, actor=actor, since=since, until=until, types=event_type, as_of=end, limit=limit
    )
    try:
        entries = [e.to_dict() for e in audit_mod.audit(state.ledger, q)]
    except (ValueError, OverflowError) as exc:
        raise InvalidRequest(f"bad audit bound: {exc}") from None
    return {
        "cube": cube,
        "memory": memory,
        "entries": [_clean(e, full) for e in entries],
        "truncated": len(entries) >= limit,
    }


def _visible_streams(state: ServiceState, caller: Caller, cube: str) -> Callable[[str], bool] | None:
    """Which streams' events the caller may see in a knowledge answer: the memory's own cube, and
    other cubes on which it may audit or read (admins: every stream)."""
    if caller.admin:
        return None
    roles = state.access.index.roles
    wanted = ALLOWED[Action.AUDIT] | ALLOWED[Action.READ]
    return lambda stream: stream == cube or bool(roles(stream, caller.name) & wanted)


@router.get(
    "/knowledge/{memory_id}",
    summary="What the system knew about a memory at a time, and who had read it (owner or auditor)",
)
def knowledge(
    memory_id: str = Path(min_length=1, max_length=200),
    as_of: AsOf = None,
    caller: Caller = Depends(current_caller),
    state: ServiceState = Depends(get_state),
) -> dict[str, Any]:
    cube = state.access.require_memory(caller, memory_id, Action.AUDIT, "audit.knowledge")
    end = resolve_as_of(state.ledger, as_of)
    out = audit_mod.knowledge(state.ledger, memory_id, end, visible=_visible_streams(state, caller, cube))
    full = bool(state.access.index.roles(cube, caller.name) & ALLOWED[Action.READ])
    out["events"] = [_clean(e, full) for e in out.get("events", [])]
    out["reads"] = [_clean(e, full) for e in out.get("reads", [])]
    if out.get("state") is not None:
        if full:
            state.ledger.log.append(
                [
                    NewEvent(
                        cube,
                        ev.MEMORY_READ,
                        {"memory_ids": [memory_id], "operation": "audit.knowledge", "as_of": end},
                        caller.name,
                    )
                ]
            )
        else:
            out["state"] = {k: (None if k in CONTENT_KEYS else v) for k, v in out["state"].items()}
            out["redacted"] = sorted(CONTENT_KEYS & set(out["state"]))
    return out
