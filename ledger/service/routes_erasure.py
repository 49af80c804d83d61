"""Deletion, erasure, redaction and lineage routes (``ledger.governance.erase``, ``redact``,
``ledger.timemachine.lineage``).

Roles: deleting one memory needs ``writer`` on its cube; bulk deletes, erasures and redactions
need ``owner`` (or an admin principal). Lineage needs ``reader`` on the memory's cube and lists
only the related memories of cubes the caller may read. Every operation is an event attributed to
the caller; a refusal under a legal hold is recorded too (HTTP 409).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import Field

from ledger.access import Action, Caller
from ledger.governance import erase as erase_mod
from ledger.governance import redact as redact_mod
from ledger.service.auth import current_caller
from ledger.service.models import ERRORS, JSON_INT, Filter, Reason, RequestBody, RequiredReason, Version
from ledger.service.params import AsOf, resolve_as_of
from ledger.service.routes_cubes import CubePath
from ledger.service.routes_memories import MemoryPath
from ledger.service.state import ServiceState, get_state
from ledger.timemachine import lineage as lineage_mod

router = APIRouter(prefix="/v1", tags=["erasure"], responses=ERRORS)


class DeleteRequest(RequestBody):
    reason: Reason | None = Field(default=None)
    expected_version: Version | None = None


class BulkDeleteRequest(RequestBody):
    where: Filter | None = Field(default=None, description="filter (ledger.rules.filters); none: the whole cube")
    reason: Reason | None = Field(default=None)


class EraseRequest(RequestBody):
    reason: RequiredReason = Field(description="why (recorded; never the text)")


class BulkEraseRequest(RequestBody):
    where: Filter | None = Field(default=None, description="filter; none: every memory of the cube")
    reason: RequiredReason


class Span(RequestBody):
    start: Annotated[int, Field(ge=0, le=1_000_000), JSON_INT]
    length: Annotated[int, Field(ge=1, le=1_000_000), JSON_INT]


class RedactRequest(RequestBody):
    spans: list[Span] = Field(min_length=1, max_length=redact_mod.MAX_SPANS, description="character offsets")
    reason: RequiredReason


def _require_owner(state: ServiceState, caller: Caller, memory_id: str, operation: str) -> str:
    # MANAGE: the owner role, or any admin principal on an existing cube (``AccessControl.allowed``)
    return state.access.require_memory(caller, memory_id, Action.MANAGE, operation)


@router.delete("/memories/{memory_id}", summary="Delete a memory: a tombstone (writer); restore can undo it")
def delete_memory(
    body: DeleteRequest | None = None,
    memory_id: str = MemoryPath,
    caller: Caller = Depends(current_caller),
    state: ServiceState = Depends(get_state),
) -> dict[str, Any]:
    state.access.require_memory(caller, memory_id, Action.WRITE, "memory.delete")
    body = body or DeleteRequest()
    return state.ledger.delete(memory_id, caller.name, body.reason, body.expected_version).to_dict()


@router.post("/cubes/{cube}/delete", summary="Delete every memory of a cube matching a filter, atomically (owner)")
def delete_where(
    body: BulkDeleteRequest,
    cube: str = CubePath,
    caller: Caller = Depends(current_caller),
    state: ServiceState = Depends(get_state),
) -> dict[str, Any]:
    if not caller.admin:
        state.access.require_cube(caller, cube, Action.MANAGE, "cube.delete")
    return state.ledger.delete_where(cube, caller.name, body.where, body.reason).to_dict()


@router.post("/memories/{memory_id}/erase", summary="Erase a memory for good: delete it, destroy its keys (owner)")
def erase_memory(
    body: EraseRequest,
    memory_id: str = MemoryPath,
    caller: Caller = Depends(current_caller),
    state: ServiceState = Depends(get_state),
) -> dict[str, Any]:
    _require_owner(state, caller, memory_id, "memory.erase")
    return erase_mod.erase(state.ledger, [memory_id], caller.name, body.reason, data_dir=state.data_dir).to_dict()


@router.post("/cubes/{cube}/erase", summary="Erase every memory of a cube matching a filter (owner)")
def erase_where(
    body: BulkEraseRequest,
    cube: str = CubePath,
    caller: Caller = Depends(current_caller),
    state: ServiceState = Depends(get_state),
) -> dict[str, Any]:
    if not caller.admin:
        state.access.require_cube(caller, cube, Action.MANAGE, "cube.erase")
    report = erase_mod.erase_where(state.ledger, cube, caller.name, body.reason, body.where, data_dir=state.data_dir)
    return report.to_dict()


@router.post("/memories/{memory_id}/redact", summary="Mask spans of a memory; erase its earlier versions (owner)")
def redact_memory(
    body: RedactRequest,
    memory_id: str = MemoryPath,
    caller: Caller = Depends(current_caller),
    state: ServiceState = Depends(get_state),
) -> dict[str, Any]:
    _require_owner(state, caller, memory_id, "memory.redact")
    spans = [(s.start, s.start + s.length) for s in body.spans]
    report = redact_mod.redact(state.ledger, memory_id, spans, caller.name, body.reason, data_dir=state.data_dir)
    return report.to_dict()


@router.get("/memories/{memory_id}/lineage", summary="Sources and descendants of a memory (reader)")
def memory_lineage(
    memory_id: str = MemoryPath,
    as_of: AsOf = None,
    depth: int = Query(default=10, ge=1, le=lineage_mod.MAX_DEPTH),
    caller: Caller = Depends(current_caller),
    state: ServiceState = Depends(get_state),
) -> dict[str, Any]:
    state.access.require_memory(caller, memory_id, Action.READ, "memory.lineage")
    end = resolve_as_of(state.ledger, as_of)
    out = lineage_mod.lineage(state.ledger, memory_id, None if as_of is None else end, depth)
    if not caller.admin:  # only the memories of cubes the caller may read
        out.sources = [e for e in out.sources if state.access.allowed(caller, e.cube, Action.READ)]
        out.descendants = [e for e in out.descendants if state.access.allowed(caller, e.cube, Action.READ)]
    return out.to_dict()
