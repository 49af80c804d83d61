"""Cube administration routes backed by ``ledger.memos.cubes`` / ``ledger.memos.cube_export``: metadata and
visibility updates, sharing (``cube.shared``) and the verifiable export (owner only).

The export is a JSON-lines stream (header first, then every event of the cube with its Merkle
inclusion proof) that ``memledger cube import`` verifies offline; it is recorded as a
``memory.read`` (operation ``export``) by the owner.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Path
from pydantic import ConfigDict, Field
from starlette.responses import StreamingResponse

from ledger import events as ev
from ledger.access import Action, Caller
from ledger.errors import InvalidRequest, NotFound, StateError
from ledger.events import NewEvent
from ledger.memos import cube_export as export_mod
from ledger.memos import cubes as cubes_mod
from ledger.rules.names import MAX_NAME, NAME_PATTERN
from ledger.service.auth import current_caller
from ledger.service.models import ERRORS, JsonBool, Metadata, PrincipalName, RequestBody
from ledger.service.params import AsOf, resolve_as_of
from ledger.service.state import ServiceState, get_state

router = APIRouter(prefix="/v1/cubes", tags=["cubes"], responses=ERRORS)

CubePath = Path(min_length=1, max_length=MAX_NAME, pattern=NAME_PATTERN, description="cube name")


class CubeUpdate(RequestBody):
    """At least one field, none of them null (the schema says so: ``minProperties`` 1, no nullable field)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    # not Optional: an explicit null is refused (None is only the "not given" default)
    visibility: Literal["private", "shared"] = None  # type: ignore[assignment]
    embedder: Annotated[str, Field(min_length=1, max_length=500)] = None  # type: ignore[assignment]
    llm: Annotated[str, Field(min_length=1, max_length=500)] = None  # type: ignore[assignment]
    metadata: Metadata = None  # type: ignore[assignment]


class ShareRequest(RequestBody):
    principal: PrincipalName
    unshare: JsonBool = False


@router.patch("/{cube}", summary="Change a cube's visibility, models or metadata (owner)")
def update_cube(
    body: CubeUpdate,
    cube: str = CubePath,
    caller: Caller = Depends(current_caller),
    state: ServiceState = Depends(get_state),
) -> dict[str, Any]:
    state.access.require_cube(caller, cube, Action.MANAGE, "cube.update")
    payload: dict[str, Any] = {"cube": cube, **body.model_dump(exclude_none=True)}
    if len(payload) == 1:
        raise InvalidRequest("nothing to update: give visibility, embedder, llm or metadata")
    _append(state, cube, cubes_mod.CUBE_UPDATED, payload, caller)
    return cubes_mod.get_cube(state.ledger, cube).to_dict()


@router.post("/{cube}/share", summary="Share a private cube with a principal as reader, or withdraw it (owner)")
def share_cube(
    body: ShareRequest,
    cube: str = CubePath,
    caller: Caller = Depends(current_caller),
    state: ServiceState = Depends(get_state),
) -> dict[str, Any]:
    state.access.require_cube(caller, cube, Action.MANAGE, "cube.share")
    info = cubes_mod.get_cube(state.ledger, cube)
    if body.principal == info.owner:
        raise InvalidRequest(f"{body.principal!r} owns cube {cube!r} already")
    if body.unshare:
        if body.principal not in info.shared_with:
            raise StateError(f"cube {cube!r} is not shared with {body.principal!r}")
    else:
        exists = state.access.principal_exists
        if exists is not None and not exists(body.principal):
            raise NotFound(f"principal {body.principal!r} does not exist")
        if body.principal in info.shared_with:
            return info.to_dict()
    payload = {"cube": cube, "principal": body.principal, "action": "unshare" if body.unshare else "share"}
    _append(state, cube, cubes_mod.CUBE_SHARED, payload, caller)
    return cubes_mod.get_cube(state.ledger, cube).to_dict()


def _append(state: ServiceState, cube: str, event_type: str, payload: dict[str, Any], caller: Caller) -> None:
    """Write a cube event as the caller (not as the cube's creator), then refresh the roles."""
    state.ledger.log.append([NewEvent(cube, event_type, payload, caller.name)])
    state.access.index.refresh()


@router.get(
    "/{cube}/export",
    summary="Verifiable export of the cube as JSON lines (owner)",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}}, "description": "header, then events"}},
)
def export_cube(
    cube: str = CubePath,
    as_of: AsOf = None,
    caller: Caller = Depends(current_caller),
    state: ServiceState = Depends(get_state),
) -> StreamingResponse:
    state.access.require_cube(caller, cube, Action.MANAGE, "cube.export")
    end = resolve_as_of(state.ledger, as_of)
    records = list(export_mod.export_cube(state.ledger, cube, end))
    state.ledger.log.append(
        [NewEvent(cube, ev.MEMORY_READ, {"memory_ids": [], "operation": "export", "as_of": end}, caller.name)]
    )

    def lines() -> Iterator[bytes]:
        for rec in records:
            yield orjson.dumps(rec) + b"\n"

    filename = re.sub(r"[^A-Za-z0-9._-]", "_", cube)[:100]
    return StreamingResponse(
        lines(),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": f'attachment; filename="{filename}.jsonl"'},
    )
