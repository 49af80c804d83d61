"""Cube routes: create, list, describe, memories, audit trail (events), grants and revocations."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import Field

from ledger import events as ev
from ledger.access import ALLOWED, Action, Caller
from ledger.errors import ConcurrencyConflict, NotFound, StateError
from ledger.listing import MAX_CURSOR, MAX_LIMIT
from ledger.rules.names import MAX_NAME, MAX_PRINCIPAL, NAME_PATTERN, PRINCIPAL_PATTERN
from ledger.service import partition_fanout
from ledger.service.auth import current_caller
from ledger.service.event_filter import shown
from ledger.service.models import (
    ERRORS,
    JSON_INT,
    BranchName,
    CubeCreate,
    Filter,
    GrantRequest,
    RequestBody,
    Role,
    State,
)
from ledger.service.params import AS_OF_DESCRIPTION, AS_OF_PATTERN, AsOf, Offset, resolve_as_of
from ledger.service.search_backend import search_backend
from ledger.service.state import ServiceState, get_state

router = APIRouter(prefix="/v1/cubes", tags=["cubes"], responses=ERRORS)

CubePath = Path(min_length=1, max_length=MAX_NAME, pattern=NAME_PATTERN, description="cube name")
PrincipalPath = Path(min_length=1, max_length=MAX_PRINCIPAL, pattern=PRINCIPAL_PATTERN, description="principal name")


def _require_visible(state: ServiceState, caller: Caller, cube: str, operation: str) -> None:
    if not state.access.visible(caller, cube):
        state.access.deny(
            caller.name,
            operation,
            cube=cube,
            reason="no role on the cube" if state.access.index.cube_exists(cube) else "unknown cube",
        )
        raise NotFound(f"cube {cube!r} not found")


@router.post("", status_code=201, summary="Create a cube; the caller becomes its owner")
def create_cube(
    body: CubeCreate, caller: Caller = Depends(current_caller), state: ServiceState = Depends(get_state)
) -> dict[str, Any]:
    try:
        e = state.ledger.create_cube(body.cube, owner=caller.name, visibility=body.visibility, metadata=body.metadata)
    except ConcurrencyConflict:
        raise StateError(f"cube name {body.cube!r} is taken") from None
    state.access.index.refresh()
    return {"cube": body.cube, "owner": caller.name, "offset": e.offset, "event_id": e.event_id}


@router.get("", summary="Cubes on which the caller holds a role")
def list_cubes(caller: Caller = Depends(current_caller), state: ServiceState = Depends(get_state)) -> dict[str, Any]:
    if state.partitioned is not None:
        return partition_fanout.list_cubes(state.partitioned, caller)
    state.access.index.refresh()
    return {"cubes": [{"cube": c, "roles": r} for c, r in state.access.index.cubes_of(caller.name).items()]}


@router.get("/{cube}", summary="A cube's creation record, version and the caller's roles (any role)")
def describe_cube(
    cube: str = CubePath, caller: Caller = Depends(current_caller), state: ServiceState = Depends(get_state)
) -> dict[str, Any]:
    _require_visible(state, caller, cube, "cube.describe")
    created = next(iter(state.ledger.log.read_stream(cube, 1)), None)
    info: dict[str, Any] = {
        "cube": cube,
        "version": state.ledger.log.stream_version(cube),
        "roles": sorted(state.access.index.roles(cube, caller.name)),
        **state.access.index.sharing(cube),
    }
    if created is not None and created.type == ev.CUBE_CREATED:
        info.update(owner=created.payload.get("owner"), created_at=created.time, created_offset=created.offset)
    return info


CURSOR_DESCRIPTION = "the next_cursor of the previous page (opaque; bound to the cube and the filter)"


class ListRequest(RequestBody):
    """A listing (mem0's get_all): a filter, a point in time and a page."""

    where: Filter | None = Field(default=None, description="filter (ledger/rules/filters.py); none: every memory")
    as_of: str | None = Field(default=None, max_length=64, pattern=AS_OF_PATTERN, description=AS_OF_DESCRIPTION)
    limit: Annotated[int, Field(ge=1, le=MAX_LIMIT), JSON_INT] = 100
    after: str | None = Field(default=None, min_length=1, max_length=MAX_CURSOR, description=CURSOR_DESCRIPTION)
    branch: BranchName | None = Field(
        default=None, description="list on this branch (its as_of is an offset of the branch); default main"
    )


def _list(state: ServiceState, caller: Caller, cube: str, req: ListRequest) -> dict[str, Any]:
    state.access.require_cube(caller, cube, Action.READ, "cube.memories")
    if req.branch is not None and req.branch != "main":
        return _list_branch(state, caller, cube, req, req.branch)
    end = resolve_as_of(state.ledger, req.as_of)
    backend = search_backend(state)
    with backend.lock:  # answered by the record view (its scope index), not a fold of the cube
        page = backend.views().list_memories(
            cube, where=req.where, as_of=end, limit=req.limit, after=req.after, actor=caller.name, record_read=True
        )
    return page.to_dict()


def _list_branch(state: ServiceState, caller: Caller, cube: str, req: ListRequest, branch: str) -> dict[str, Any]:
    """A listing on a branch: a fold of the branch's events of the cube (main's up to the fork, then
    the branch's own), audited on the branch like a branch search."""
    from ledger.timemachine.branches import Branches

    branches = Branches(state.ledger)
    try:
        ledger = branches.ledger(branch)  # 404 for an unknown branch
        page = ledger.list_memories(
            cube, req.where, req.as_of, req.limit, req.after, actor=caller.name, record_read=True
        )
        return {**page.to_dict(), "branch": branch}
    finally:
        branches.close()


@router.get(
    "/{cube}/memories", summary="The cube's memories as of an offset or time, a page at a time (reader); audited"
)
def cube_memories(
    cube: str = CubePath,
    as_of: AsOf = None,
    state_filter: Annotated[State | None, Query(alias="state")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    after: Annotated[str | None, Query(min_length=1, max_length=MAX_CURSOR, description=CURSOR_DESCRIPTION)] = None,
    caller: Caller = Depends(current_caller),
    state: ServiceState = Depends(get_state),
) -> dict[str, Any]:
    where = None if state_filter is None else {"state": state_filter}
    return _list(state, caller, cube, ListRequest(where=where, as_of=as_of, limit=limit, after=after))


@router.post("/{cube}/list", summary="The cube's memories matching a filter, as of a point, a page at a time (reader)")
def list_memories(
    body: ListRequest,
    cube: str = CubePath,
    caller: Caller = Depends(current_caller),
    state: ServiceState = Depends(get_state),
) -> dict[str, Any]:
    return _list(state, caller, cube, body)


@router.get("/{cube}/events", summary="The cube's audit trail: its events (auditor: content redacted)")
def cube_events(
    cube: str = CubePath,
    start: Annotated[int, Query(alias="from", ge=0, le=2**62)] = 0,
    to: Offset | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    event_type: Annotated[str | None, Query(alias="type", max_length=100)] = None,
    caller: Caller = Depends(current_caller),
    state: ServiceState = Depends(get_state),
) -> dict[str, Any]:
    roles = state.access.index.roles(cube, caller.name) if state.access.visible(caller, cube) else frozenset()
    if not roles & ALLOWED[Action.READ]:
        state.access.require_cube(caller, cube, Action.AUDIT, "cube.events")
    full = bool(roles & ALLOWED[Action.READ])
    out: list[dict[str, Any]] = []  # from > to is an empty range: an empty page
    next_from = None
    for e in state.ledger.log.read_stream(cube, 1, to):
        if e.offset < start or (event_type is not None and e.type != event_type):
            continue
        if len(out) == limit:
            next_from = e.offset
            break
        out.append(shown(state.ledger.registry.upcast(e), full, state.ledger.opener))
    return {"cube": cube, "redacted": not full, "events": out, "next_from": next_from}


@router.get("/{cube}/grants", summary="Who holds which role on the cube (owner or auditor)")
def list_grants(
    cube: str = CubePath, caller: Caller = Depends(current_caller), state: ServiceState = Depends(get_state)
) -> dict[str, Any]:
    if not state.access.allowed(caller, cube, Action.MANAGE):
        state.access.require_cube(caller, cube, Action.AUDIT, "cube.grants")
    return {"cube": cube, "grants": state.access.index.grants(cube), **state.access.index.sharing(cube)}


@router.post("/{cube}/grants", status_code=201, summary="Grant a role on the cube (owner)")
def grant(
    body: GrantRequest,
    cube: str = CubePath,
    caller: Caller = Depends(current_caller),
    state: ServiceState = Depends(get_state),
) -> dict[str, Any]:
    e = state.access.grant(caller, cube, body.principal, body.role)
    return {
        "cube": cube,
        "principal": body.principal,
        "role": body.role,
        "changed": e is not None,
        "offset": e.offset if e is not None else None,
    }


@router.delete("/{cube}/grants/{principal}/{role}", summary="Revoke a role on the cube (owner); immediate")
def revoke(
    role: Role,
    cube: str = CubePath,
    principal: str = PrincipalPath,
    caller: Caller = Depends(current_caller),
    state: ServiceState = Depends(get_state),
) -> dict[str, Any]:
    e = state.access.revoke(caller, cube, principal, role)
    return {"cube": cube, "principal": principal, "role": role, "offset": e.offset}
