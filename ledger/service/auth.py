"""Authentication: ``Authorization: Bearer <token>`` or ``X-API-Key: <token>``.

The caller is always the principal that owns the token; nothing in a request body can
change who an event is attributed to. An unauthenticated request is refused with 401 and
audited as ``access.denied`` (at most ``unauth_audit_per_minute`` events per client host, so
an anonymous flood cannot grow the log without bound; the excess is counted in metrics).
"""

from __future__ import annotations

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from ledger.access import Caller
from ledger.service.errors import Unauthenticated
from ledger.service.state import ServiceState, get_state

bearer_scheme = HTTPBearer(auto_error=False, description="API token from `memledger principal create`")
api_key_scheme = APIKeyHeader(name="X-API-Key", auto_error=False, description="the same token as a header")

ANONYMOUS = "anonymous"


def _audit_unauthenticated(state: ServiceState, request: Request, reason: str) -> None:
    host = request.client.host if request.client else "unknown"
    if state.unauth_limiter.allow(host):
        state.access.deny(ANONYMOUS, f"{request.method} {request.url.path}"[:200], reason=f"{reason} (from {host})")
    else:
        state.metrics.unaudited_denials.inc()


def presented_token(bearer: HTTPAuthorizationCredentials | None, api_key: str | None) -> str | None:
    """The token a request presents (``Authorization: Bearer`` first, then ``X-API-Key``)."""
    return bearer.credentials if bearer is not None else api_key


async def request_token(
    bearer: HTTPAuthorizationCredentials | None = Security(bearer_scheme),
    api_key: str | None = Security(api_key_scheme),
) -> str | None:
    """FastAPI dependency: the token the request presents, if any (for re-checks during long responses)."""
    return presented_token(bearer, api_key)


def still_authenticated(state: ServiceState, caller: Caller, token: str | None) -> bool:
    """Whether ``token`` still authenticates ``caller`` (False once it is revoked or rotated)."""
    if not token:
        return caller.name == ANONYMOUS and state.settings.allow_anonymous
    principal = state.principals.authenticate(token)
    return principal is not None and principal.name == caller.name


async def current_caller(
    request: Request,
    bearer: HTTPAuthorizationCredentials | None = Security(bearer_scheme),
    api_key: str | None = Security(api_key_scheme),
    state: ServiceState = Depends(get_state),
) -> Caller:
    """FastAPI dependency: the authenticated caller (401 and an audit event otherwise)."""
    token = presented_token(bearer, api_key)
    if token:
        principal = await run_in_threadpool(state.principals.authenticate, token)
        if principal is not None:
            return Caller(principal.name, principal.admin)
        await run_in_threadpool(_audit_unauthenticated, state, request, "invalid or revoked credentials")
        raise Unauthenticated("invalid or revoked credentials")
    if state.settings.allow_anonymous:
        return Caller(ANONYMOUS, False)
    await run_in_threadpool(_audit_unauthenticated, state, request, "no credentials")
    raise Unauthenticated("authentication required: send 'Authorization: Bearer <token>' or 'X-API-Key: <token>'")


async def admin_caller(caller: Caller = Depends(current_caller), state: ServiceState = Depends(get_state)) -> Caller:
    """FastAPI dependency: an authenticated admin principal (403 and an audit event otherwise)."""
    if not caller.admin:
        from ledger.errors import AccessDenied

        await run_in_threadpool(state.access.deny, caller.name, "admin operation", None, None, "not an admin principal")
        raise AccessDenied(f"{caller.name!r} is not an admin principal")
    return caller
