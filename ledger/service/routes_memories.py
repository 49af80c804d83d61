"""Memory routes: add, update, get, history, lifecycle moves, merge, link (all as-of aware).

The cube of a memory is always looked up from the log, never taken from the request.
"""

from __future__ import annotations

import hashlib
from typing import Any

from fastapi import APIRouter, Depends, Path

from ledger.access import Action, Caller
from ledger.errors import InvalidRequest, StateError
from ledger.rules.content import BLANK_RULE, is_blank
from ledger.service.auth import current_caller
from ledger.service.models import (
    ERRORS,
    LinkRequest,
    MemoryAdd,
    MemoryUpdate,
    MergeRequest,
    StateChange,
    Written,
)
from ledger.service.params import AsOf, resolve_as_of
from ledger.service.state import ServiceState, get_state

router = APIRouter(prefix="/v1/memories", tags=["memories"], responses=ERRORS)

MemoryPath = Path(min_length=1, max_length=200, description="memory id")


def _check_text(state: ServiceState, text: str) -> None:
    limit = state.settings.max_text_chars
    if len(text) > limit:
        raise InvalidRequest(f"memory text is {len(text)} characters; this server's limit is {limit}")
    if is_blank(text):
        raise InvalidRequest(f"memory text must not be blank: {BLANK_RULE}")


def _event_id(caller: Caller, key: str | None) -> str | None:
    """Idempotency keys are namespaced per principal, so one principal can never hit another's."""
    if key is None:
        return None
    return hashlib.sha256(f"{caller.name}\x00{key}".encode()).hexdigest()[:32]


@router.post("", status_code=201, response_model=Written, summary="Add a memory to a cube (writer)")
def add_memory(
    body: MemoryAdd, caller: Caller = Depends(current_caller), state: ServiceState = Depends(get_state)
) -> dict[str, Any]:
    _check_text(state, body.text)
    state.access.require_cube(caller, body.cube, Action.WRITE, "memory.add")
    eid = _event_id(caller, body.idempotency_key)
    if eid is not None and (stored := state.ledger.log.get_by_id(eid)) is not None:
        if stored.stream != body.cube or stored.type != "memory.added":
            raise StateError("idempotency_key was already used for a different request")
        return {"id": stored.payload["memory_id"], "offset": stored.offset, "event_id": stored.event_id}
    w = state.ledger.add(
        body.cube,
        body.text,
        caller.name,
        metadata=body.metadata,
        tags=body.tags,
        subject=body.subject,
        event_id=eid,
        allow_duplicate=body.allow_duplicate,
    )
    return w.to_dict()


@router.get("/{memory_id}", summary="A memory as of an offset or time (reader); the read is audited")
def get_memory(
    memory_id: str = MemoryPath,
    as_of: AsOf = None,
    caller: Caller = Depends(current_caller),
    state: ServiceState = Depends(get_state),
) -> dict[str, Any]:
    state.access.require_memory(caller, memory_id, Action.READ, "memory.get")
    end = resolve_as_of(state.ledger, as_of)
    return state.ledger.get(memory_id, as_of=end, actor=caller.name, record_read=True).to_dict()


@router.get("/{memory_id}/history", summary="Every version of a memory (reader); the read is audited")
def memory_history(
    memory_id: str = MemoryPath,
    as_of: AsOf = None,
    caller: Caller = Depends(current_caller),
    state: ServiceState = Depends(get_state),
) -> dict[str, Any]:
    state.access.require_memory(caller, memory_id, Action.READ, "memory.history")
    end = resolve_as_of(state.ledger, as_of)
    versions = state.ledger.history(memory_id, as_of=end, actor=caller.name, record_read=True)
    return {"id": memory_id, "versions": [v.to_dict() for v in versions]}


@router.put("/{memory_id}", response_model=Written, summary="Write a new version of a memory (writer)")
def update_memory(
    body: MemoryUpdate,
    memory_id: str = MemoryPath,
    caller: Caller = Depends(current_caller),
    state: ServiceState = Depends(get_state),
) -> dict[str, Any]:
    _check_text(state, body.text)
    state.access.require_memory(caller, memory_id, Action.WRITE, "memory.update")
    return state.ledger.update(
        memory_id,
        body.text,
        caller.name,
        metadata=body.metadata,
        expected_version=body.expected_version,
        reason=body.reason,
    ).to_dict()


@router.post("/{memory_id}/state", response_model=Written, summary="Move a memory through its lifecycle (writer)")
def change_state(
    body: StateChange,
    memory_id: str = MemoryPath,
    caller: Caller = Depends(current_caller),
    state: ServiceState = Depends(get_state),
) -> dict[str, Any]:
    state.access.require_memory(caller, memory_id, Action.WRITE, "memory.state")
    return state.ledger.change_state(
        memory_id, body.to, caller.name, reason=body.reason, expected_version=body.expected_version
    ).to_dict()


@router.post(
    "/merge",
    status_code=201,
    response_model=Written,
    summary="Merge memories of one cube into a new memory (writer on their cube)",
)
def merge_memories(
    body: MergeRequest, caller: Caller = Depends(current_caller), state: ServiceState = Depends(get_state)
) -> dict[str, Any]:
    _check_text(state, body.text)
    for source in dict.fromkeys(body.sources):
        state.access.require_memory(caller, source, Action.WRITE, "memory.merge")
    return state.ledger.merge(
        body.sources, body.text, caller.name, reason=body.reason, metadata=body.metadata
    ).to_dict()


@router.post(
    "/{memory_id}/links",
    status_code=201,
    response_model=Written,
    summary="Link a memory to another (writer on the source, reader on the target)",
)
def link_memory(
    body: LinkRequest,
    memory_id: str = MemoryPath,
    caller: Caller = Depends(current_caller),
    state: ServiceState = Depends(get_state),
) -> dict[str, Any]:
    state.access.require_memory(caller, memory_id, Action.WRITE, "memory.link")
    state.access.require_memory(caller, body.target, Action.READ, "memory.link")
    return state.ledger.link(memory_id, body.target, body.relation, caller.name).to_dict()
