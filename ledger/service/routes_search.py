"""Search routes: hybrid search over the caller's readable cubes, as of an offset, on a branch.

Only cubes the caller may read are searched: named cubes are checked (and a refusal audited);
without ``cube`` every cube the caller can read is searched. Each search is audited as
``memory.read`` (operation ``search``, with the query) on every searched cube.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import Field, StrictBool, StrictFloat, StrictInt, StrictStr

from ledger.access import ALLOWED, Action, Caller
from ledger.errors import InvalidRequest, present
from ledger.rules.content import BLANK_RULE, NONBLANK_PATTERN, is_blank
from ledger.rules.filters import MAX_KEYS, parse_filter
from ledger.service.auth import current_caller
from ledger.service.models import (
    ERRORS,
    JSON_INT,
    BranchName,
    CubeName,
    Filter,
    JsonBool,
    RequestBody,
    State,
)
from ledger.service.params import AS_OF_DESCRIPTION, AS_OF_PATTERN, AsOf, resolve_as_of
from ledger.service.search_backend import search_backend
from ledger.service.state import ServiceState, get_state

router = APIRouter(prefix="/v1", tags=["search"], responses=ERRORS)

MAX_QUERY = 10_000


# the older metadata filter: top-level keys equal to scalars (what the filter grammar takes for $eq)
EqualityFilter = Annotated[
    dict[str, StrictStr | StrictInt | StrictFloat | StrictBool | None],
    Field(max_length=MAX_KEYS, description=f"at most {MAX_KEYS} keys, each equal to a string, number, boolean or null"),
]


class SearchRequest(RequestBody):
    query: str = Field(min_length=1, max_length=MAX_QUERY, pattern=NONBLANK_PATTERN)
    cubes: list[CubeName] | None = Field(default=None, max_length=100)
    k: Annotated[int, Field(ge=1, le=1000), JSON_INT] = 10
    as_of: str | None = Field(default=None, max_length=64, pattern=AS_OF_PATTERN, description=AS_OF_DESCRIPTION)
    branch: BranchName | None = Field(default=None, description="a branch, or main (the default)")
    states: list[State] | None = Field(default=None, max_length=5)
    all_states: JsonBool = False
    metadata: EqualityFilter | None = Field(
        default=None, description='older equality-only filter: {"k": v} is the same as where {"metadata.k": v}'
    )
    where: Filter | None = Field(
        default=None,
        description="filter (ledger/rules/filters.py) applied inside the views before ranking: "
        "k hits whenever k matching memories match the query",
    )
    min_score: StrictFloat | None = Field(  # a JSON number (an integer too), never true or "1"
        default=None,
        ge=-1e6,
        le=1e6,
        description="drop hits whose fused score is lower (the score is relative: each retriever's best "
        "hit contributes its weight, 1.0 by default; see docs/projections.md)",
    )


def _search(state: ServiceState, caller: Caller, req: SearchRequest) -> dict[str, Any]:
    if is_blank(req.query):
        raise InvalidRequest(f"query must not be blank: {BLANK_RULE}")
    parse_filter(req.where, "where")  # refused before any view opens
    if state.partitioned is not None:
        from ledger.service import partition_fanout

        return partition_fanout.search(state.partitioned, caller, req, _search_ledger)
    return _search_ledger(state, caller, req)


def _search_ledger(state: ServiceState, caller: Caller, req: SearchRequest) -> dict[str, Any]:
    """Search ``state``'s ledger (of one partition, or one partition of a partitioned ledger)."""
    if req.cubes:
        cubes = list(dict.fromkeys(req.cubes))
        for cube in cubes:
            state.access.require_cube(caller, cube, Action.READ, "search")
    else:
        state.access.index.refresh()
        cubes = [
            c for c, roles in state.access.index.cubes_of(caller.name).items() if set(roles) & ALLOWED[Action.READ]
        ]
    if not cubes:
        return {"query": req.query, "as_of": None, "branch": req.branch, "hits": []}
    backend = search_backend(state)
    if req.branch is not None and req.branch != "main":
        hits = _search_branch(state, backend, caller, req, cubes)
        as_of: int | str | None = req.as_of
    else:
        as_of = resolve_as_of(state.ledger, req.as_of)
        with backend.lock:
            hits = backend.views().search(
                req.query,
                cube=cubes,
                k=req.k,
                as_of=as_of,
                states=req.states,
                metadata=req.metadata,
                all_states=req.all_states,
                actor=caller.name,
                record_read=True,
                where=req.where,
                min_score=req.min_score,
            )
    hits = [h for h in hits if h.memory.cube in cubes]
    return {"query": req.query, "as_of": as_of, "branch": req.branch, "hits": [h.to_dict() for h in hits]}


def _search_branch(
    state: ServiceState, backend: Any, caller: Caller, req: SearchRequest, cubes: list[str]
) -> list[Any]:
    """Search on a branch (``ledger.timemachine.branch_search``): main's views with the branch laid over them."""
    from ledger.timemachine.branch_search import search_branch
    from ledger.timemachine.branches import Branches

    branches = Branches(state.ledger)
    try:
        resolve_as_of(branches.ledger(req.branch), req.as_of)  # 404 for an unknown branch or a future offset
        with backend.lock:
            return search_branch(
                backend.views(),
                branches,
                present(req.branch, "the branch of a branch search"),
                req.query,
                cube=cubes,
                k=req.k,
                as_of=req.as_of,
                states=req.states,
                metadata=req.metadata,
                all_states=req.all_states,
                actor=caller.name,
                record_read=True,
                where=req.where,
                min_score=req.min_score,
            )
    except (ValueError, OverflowError) as exc:
        raise InvalidRequest(f"as_of must be an offset or an ISO-8601 time, not {req.as_of!r}") from exc
    finally:
        branches.close()


@router.get("/search", summary="Hybrid search (keyword + vector + graph) of readable cubes; audited")
def search_get(
    q: Annotated[str, Query(min_length=1, max_length=MAX_QUERY, pattern=NONBLANK_PATTERN)],
    cube: Annotated[
        list[CubeName] | None, Query(max_length=100, description="repeatable; default: every readable cube")
    ] = None,
    k: Annotated[int, Query(ge=1, le=1000)] = 10,
    min_score: Annotated[float | None, Query(ge=-1e6, le=1e6, description="relevance cutoff (see POST)")] = None,
    as_of: AsOf = None,
    branch: Annotated[BranchName | None, Query(description="a branch, or main (the default)")] = None,
    state_filter: Annotated[list[State] | None, Query(alias="state")] = None,
    all_states: bool = False,
    caller: Caller = Depends(current_caller),
    state: ServiceState = Depends(get_state),
) -> dict[str, Any]:
    states = list(dict.fromkeys(state_filter)) if state_filter is not None else None  # repeats are harmless
    req = SearchRequest(
        query=q, cubes=cube, k=k, as_of=as_of, branch=branch, states=states, all_states=all_states, min_score=min_score
    )
    return _search(state, caller, req)


@router.post("/search", summary="Hybrid search with a where filter and a score cutoff (same rules as GET)")
def search_post(
    body: SearchRequest, caller: Caller = Depends(current_caller), state: ServiceState = Depends(get_state)
) -> dict[str, Any]:
    return _search(state, caller, body)
