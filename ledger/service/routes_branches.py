"""Branch routes: counterfactual forks of the log (create, list, drop, diff, merge) and memory
reads and writes on a branch.

Cube roles are those of main: writing a memory of cube C on a branch needs ``writer`` on C,
reading it needs ``reader``; a diff shows only memories of cubes the caller may read; a merge needs
``writer`` on every cube the branch wrote to. On top of that, the branch itself must consent
(``ledger.timemachine.branch_access``): writing to it or forking from it needs its creator, a ``writer`` or
``owner`` role granted on the branch, or an admin; merging, dropping (``cascade``: with the
branches forked from it) and granting need its creator, ``owner`` or an admin. Branch names,
fork points and grants are visible to every authenticated principal.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import Field

from ledger.access import Action, Caller
from ledger.errors import NotFound
from ledger.rules.names import MAX_NAME, NAME_PATTERN
from ledger.service.auth import current_caller
from ledger.service.models import (
    ERRORS,
    BranchName,
    JsonBool,
    MemoryAdd,
    MemoryUpdate,
    RequestBody,
    StateChange,
    Written,
)
from ledger.service.params import AS_OF_DESCRIPTION, AS_OF_PATTERN, AsOf, resolve_as_of
from ledger.service.routes_memories import MemoryPath, _check_text, _event_id
from ledger.service.state import ServiceState, get_state
from ledger.timemachine import branch_access as branch_access
from ledger.timemachine import branch_merge as merge_mod
from ledger.timemachine import branches as branches_mod

router = APIRouter(prefix="/v1/branches", tags=["branches"], responses=ERRORS)

BranchPath = Path(min_length=1, max_length=MAX_NAME, pattern=NAME_PATTERN, description="branch name")


class BranchCreate(RequestBody):
    name: Annotated[BranchName, Field(json_schema_extra={"not": {"enum": [branches_mod.MAIN]}})]
    at: str | None = Field(
        default=None,
        max_length=64,
        pattern=AS_OF_PATTERN,
        description="fork point: " + AS_OF_DESCRIPTION + "; default head",
    )
    from_branch: BranchName | None = Field(default=None, description="base branch (default main)")


class BranchMerge(RequestBody):
    strict: JsonBool = False


class BranchGrant(RequestBody):
    principal: str = Field(min_length=1, max_length=200)
    role: Literal["writer", "owner"]


RolePath = Path(pattern="^(writer|owner)$", description="branch role")


@contextmanager
def _branches(state: ServiceState, caller: Caller) -> Iterator[Any]:
    b = branches_mod.Branches(state.ledger, is_admin=lambda name: caller.admin and name == caller.name)
    try:
        yield b
    finally:
        b.close()


def _branch_cube_check(
    state: ServiceState, caller: Caller, cube: str, action: Action, operation: str, memory_id: str | None = None
) -> None:
    """Role check for a memory whose cube was found on the branch (404 when the caller has no role)."""
    if state.access.allowed(caller, cube, action):
        return
    if not state.access.visible(caller, cube):
        state.access.deny(caller.name, operation, cube=cube, memory_id=memory_id, reason="no role on the cube")
        raise NotFound(f"memory {memory_id} not found" if memory_id else f"cube {cube!r} not found")
    state.access.require_cube(caller, cube, action, operation)


@router.get("", summary="Every branch with its fork point, head and number of own events")
def list_branches(caller: Caller = Depends(current_caller), state: ServiceState = Depends(get_state)) -> dict:
    with _branches(state, caller) as b:
        return {"branches": b.list()}


@router.post("", status_code=201, summary="Fork a branch from main (or another branch) at an offset or time")
def create_branch(
    body: BranchCreate, caller: Caller = Depends(current_caller), state: ServiceState = Depends(get_state)
) -> dict[str, Any]:
    with _branches(state, caller) as b:
        # an unknown base, or a fork point the base does not have (a future offset; for a nested
        # branch also "before its first event"), is 404 like any offset that does not exist
        base = b.ledger(body.from_branch)
        at = resolve_as_of(base, body.at)
        if (base.head() if at is None else at) < 0 and body.from_branch not in (None, branches_mod.MAIN):
            raise NotFound(f"branch {body.from_branch!r} has no event at or before {body.at!r} to fork from")
        return b.create(body.name, body.at, caller.name, from_branch=body.from_branch).to_dict()


@router.delete("/{name}", summary="Drop a branch and its own events (its owner or an admin)")
def drop_branch(
    name: str = BranchPath,
    cascade: Annotated[bool, Query(description="also drop the branches forked from it")] = False,
    caller: Caller = Depends(current_caller),
    state: ServiceState = Depends(get_state),
) -> dict[str, Any]:
    with _branches(state, caller) as b:
        *nested, info = b.drop_tree(name, caller.name, cascade=cascade)
        return {**info.to_dict(), "nested": [n.name for n in nested]}


@router.post("/{name}/grants", status_code=201, summary="Grant a role on the branch (its owner or an admin)")
def grant_branch_role(
    body: BranchGrant,
    name: str = BranchPath,
    caller: Caller = Depends(current_caller),
    state: ServiceState = Depends(get_state),
) -> dict[str, Any]:
    exists = state.access.principal_exists
    if exists is not None and not exists(body.principal):
        raise NotFound(f"principal {body.principal!r} does not exist")
    with _branches(state, caller) as b:
        e = b.grant(name, body.principal, body.role, caller.name)
    return {
        "branch": name,
        "principal": body.principal,
        "role": body.role,
        "changed": e is not None,
        "offset": e.offset if e else None,
    }


@router.delete("/{name}/grants/{principal}/{role}", summary="Revoke a role on the branch (its owner); immediate")
def revoke_branch_role(
    name: str = BranchPath,
    principal: str = Path(min_length=1, max_length=200),
    role: str = RolePath,
    caller: Caller = Depends(current_caller),
    state: ServiceState = Depends(get_state),
) -> dict[str, Any]:
    with _branches(state, caller) as b:
        e = b.revoke(name, principal, role, caller.name)
    return {"branch": name, "principal": principal, "role": role, "offset": e.offset}


@router.get("/{name}/diff", summary="Memories added, changed or removed on the branch (readable cubes only)")
def branch_diff(
    name: str = BranchPath, caller: Caller = Depends(current_caller), state: ServiceState = Depends(get_state)
) -> dict[str, Any]:
    with _branches(state, caller) as b:
        entries = merge_mod.diff(b, name)
    out = []
    hidden = 0
    for d in entries:
        s = d.after or d.before
        if s is not None and state.access.allowed(caller, s.cube, Action.READ):
            out.append(d.to_dict())
        else:
            hidden += 1
    return {"branch": name, "changes": out, "hidden": hidden}


@router.post("/{name}/merge", summary="Replay the branch onto its base (creator; writer on every cube it wrote)")
def merge_branch(
    body: BranchMerge,
    name: str = BranchPath,
    caller: Caller = Depends(current_caller),
    state: ServiceState = Depends(get_state),
) -> dict[str, Any]:
    with _branches(state, caller) as b:
        info = b.info(name)
        b.access.require(info, caller.name, branch_access.BranchAction.MERGE)
        log = b.log(name)
        for cube in sorted({e.stream for e in log.own_events()}):
            if not state.access.allowed(caller, cube, Action.WRITE):
                state.access.require_cube(caller, cube, Action.WRITE, "branch.merge")
        result = merge_mod.merge(b, name, caller.name, strict=body.strict)
    state.access.index.refresh()
    return result.to_dict()


@router.get("/{name}/memories/{memory_id}", summary="A memory as seen on the branch (reader); audited")
def branch_get(
    name: str = BranchPath,
    memory_id: str = MemoryPath,
    as_of: AsOf = None,
    caller: Caller = Depends(current_caller),
    state: ServiceState = Depends(get_state),
) -> dict[str, Any]:
    with _branches(state, caller) as b:
        ledger = b.ledger(name)
        end = resolve_as_of(ledger, as_of)
        try:
            m = ledger.get(memory_id, as_of=end, record_read=False)
        except NotFound:
            state.access.deny(caller.name, "branch.memory.get", memory_id=memory_id, reason="unknown memory")
            raise
        _branch_cube_check(state, caller, m.cube, Action.READ, "branch.memory.get", memory_id)
        m = ledger.get(memory_id, as_of=end, actor=caller.name, record_read=True)
        return {**m.to_dict(), "branch": name}


@router.post("/{name}/memories", status_code=201, response_model=Written, summary="Add a memory on the branch")
def branch_add(
    body: MemoryAdd,
    name: str = BranchPath,
    caller: Caller = Depends(current_caller),
    state: ServiceState = Depends(get_state),
) -> dict[str, Any]:
    _check_text(state, body.text)
    state.access.require_cube(caller, body.cube, Action.WRITE, "branch.memory.add")
    with _branches(state, caller) as b:
        return (
            b.ledger(name)
            .add(
                body.cube,
                body.text,
                caller.name,
                metadata=body.metadata,
                tags=body.tags,
                subject=body.subject,
                event_id=_event_id(caller, body.idempotency_key),
                allow_duplicate=body.allow_duplicate,
            )
            .to_dict()
        )


def _branch_memory_cube(state: ServiceState, caller: Caller, ledger: Any, memory_id: str, operation: str) -> str:
    try:
        m = ledger.get(memory_id, record_read=False)
    except NotFound:
        state.access.deny(caller.name, operation, memory_id=memory_id, reason="unknown memory")
        raise
    _branch_cube_check(state, caller, m.cube, Action.WRITE, operation, memory_id)
    return m.cube


@router.put("/{name}/memories/{memory_id}", response_model=Written, summary="Update a memory on the branch")
def branch_update(
    body: MemoryUpdate,
    name: str = BranchPath,
    memory_id: str = MemoryPath,
    caller: Caller = Depends(current_caller),
    state: ServiceState = Depends(get_state),
) -> dict:
    _check_text(state, body.text)
    with _branches(state, caller) as b:
        ledger = b.ledger(name)
        _branch_memory_cube(state, caller, ledger, memory_id, "branch.memory.update")
        return ledger.update(
            memory_id,
            body.text,
            caller.name,
            metadata=body.metadata,
            expected_version=body.expected_version,
            reason=body.reason,
        ).to_dict()


@router.post(
    "/{name}/memories/{memory_id}/state",
    response_model=Written,
    summary="Move a memory through its lifecycle on the branch",
)
def branch_state(
    body: StateChange,
    name: str = BranchPath,
    memory_id: str = MemoryPath,
    caller: Caller = Depends(current_caller),
    state: ServiceState = Depends(get_state),
) -> dict:
    with _branches(state, caller) as b:
        ledger = b.ledger(name)
        _branch_memory_cube(state, caller, ledger, memory_id, "branch.memory.state")
        return ledger.change_state(
            memory_id, body.to, caller.name, reason=body.reason, expected_version=body.expected_version
        ).to_dict()
