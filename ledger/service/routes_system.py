"""Operational routes: health, Prometheus metrics, the caller's identity, principal administration."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from ledger.access import Caller
from ledger.errors import NotFound
from ledger.rules.names import MAX_PRINCIPAL, PRINCIPAL_PATTERN
from ledger.service.auth import admin_caller, current_caller
from ledger.service.models import ERRORS, PrincipalCreate
from ledger.service.state import ServiceState, get_state

router = APIRouter(tags=["system"], responses=ERRORS)

PrincipalPath = Path(min_length=1, max_length=MAX_PRINCIPAL, pattern=PRINCIPAL_PATTERN, description="principal name")


@router.get("/healthz", summary="Liveness and log reachability (no credentials needed)")
def healthz(state: ServiceState = Depends(get_state)) -> dict[str, Any]:
    state.ledger.head()
    return {"status": "ok"}


@router.get(
    "/metrics",
    summary="Prometheus metrics (credentials unless served with --public-metrics)",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}},
)
async def metrics(request: Request, state: ServiceState = Depends(get_state)) -> Response:
    if not state.settings.public_metrics:
        from ledger.service.auth import api_key_scheme, bearer_scheme

        await current_caller(request, await bearer_scheme(request), await api_key_scheme(request), state)
    body = await run_in_threadpool(generate_latest, state.metrics.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


@router.get("/v1/whoami", summary="The authenticated principal and its roles")
def whoami(caller: Caller = Depends(current_caller), state: ServiceState = Depends(get_state)) -> dict[str, Any]:
    state.access.index.refresh()
    return {"principal": caller.name, "admin": caller.admin, "cubes": state.access.index.cubes_of(caller.name)}


@router.get("/v1/principals", summary="Every principal (admin)")
def list_principals(caller: Caller = Depends(admin_caller), state: ServiceState = Depends(get_state)) -> dict[str, Any]:
    return {"principals": [p.public() for p in state.principals.list()]}


@router.post("/v1/principals", status_code=201, summary="Create a principal; the token is shown once (admin)")
def create_principal(
    body: PrincipalCreate, caller: Caller = Depends(admin_caller), state: ServiceState = Depends(get_state)
) -> dict[str, Any]:
    p, token = state.principals.create(body.name, admin=body.admin)
    return {**p.public(), "token": token}


@router.delete("/v1/principals/{name}", summary="Revoke a principal's token at once (admin)")
def revoke_principal(
    name: str = PrincipalPath, caller: Caller = Depends(admin_caller), state: ServiceState = Depends(get_state)
) -> dict[str, Any]:
    if state.principals.get(name) is None:
        raise NotFound(f"principal {name!r} does not exist")
    return state.principals.revoke(name).public()


@router.post("/v1/principals/{name}/rotate", summary="Issue a new token for a principal, shown once (admin)")
def rotate_principal(
    name: str = PrincipalPath, caller: Caller = Depends(admin_caller), state: ServiceState = Depends(get_state)
) -> dict[str, Any]:
    p, token = state.principals.rotate(name)
    return {**p.public(), "token": token}
