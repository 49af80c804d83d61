"""Mapping of errors to JSON responses: bad input is always a 4xx, never a 5xx.

Every error body has the form ``{"error": {"type": ..., "message": ..., "details": ...}}``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from ledger.errors import (
    AccessDenied,
    BackendUnavailable,
    ConcurrencyConflict,
    IdempotencyConflict,
    InternalError,
    InvalidRequest,
    LedgerError,
    LegalHold,
    NotFound,
    SchemaViolation,
    StateError,
)
from ledger.service.responses import JSON
from ledger.timemachine.branch_merge import MergeConflict

# the first class an error is an instance of decides its status (subclasses before their bases)
STATUS: list[tuple[type[LedgerError], int]] = [
    (NotFound, 404),
    (AccessDenied, 403),
    (MergeConflict, 409),
    (ConcurrencyConflict, 409),
    (IdempotencyConflict, 409),
    (StateError, 409),
    (SchemaViolation, 422),
    (InvalidRequest, 422),
    (BackendUnavailable, 503),
    (InternalError, 500),
]


def status_of(exc: LedgerError) -> int:
    """HTTP status of a ledger error (400 for any other ``LedgerError``)."""
    for cls, code in STATUS:
        if isinstance(exc, cls):
            return code
    return 400


def error_body(kind: str, message: str, details: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"type": kind, "message": message}
    if details is not None:
        body["details"] = details
    return {"error": body}


class Unauthenticated(Exception):
    """No valid credentials on a request that needs them."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def _pattern_message(pattern: str, value: Any) -> str:
    """A one-line reason for a pattern mismatch, naming the rule broken (never the long pattern itself)."""
    from ledger.rules.content import BLANK_RULE, NONBLANK_PATTERN
    from ledger.rules.names import NAME_PATTERN, PRINCIPAL_PATTERN, name_problem, principal_problem

    if pattern == NAME_PATTERN:
        return f"not a valid name: {name_problem(value, max_length=10**9) or 'it does not match the name grammar'}"
    if pattern == PRINCIPAL_PATTERN:
        return f"not a valid principal name: {principal_problem(value) or 'it does not match the grammar'}"
    if pattern == NONBLANK_PATTERN:
        return f"must not be blank: {BLANK_RULE}"
    return f"String should match pattern {pattern[:200]!r}"


def _clean_validation_errors(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for e in errors[:20]:
        msg = str(e.get("msg", ""))
        if e.get("type") == "string_pattern_mismatch":
            msg = _pattern_message(str((e.get("ctx") or {}).get("pattern", "")), e.get("input"))
        out.append({"loc": [str(x) for x in e.get("loc", ())], "msg": msg[:500], "type": str(e.get("type", ""))})
    return out


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that turn exceptions into clear JSON errors."""

    @app.exception_handler(LedgerError)
    async def ledger_error(request: Request, exc: LedgerError) -> JSON:
        details = {"hold_ids": exc.hold_ids} if isinstance(exc, LegalHold) else None
        return JSON(error_body(type(exc).__name__, str(exc), details), status_code=status_of(exc))

    @app.exception_handler(Unauthenticated)
    async def unauthenticated(request: Request, exc: Unauthenticated) -> JSON:
        return JSON(
            error_body("Unauthenticated", exc.message),
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="memledger"'},
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSON:
        errors = list(exc.errors())
        if any(e.get("type") == "json_invalid" for e in errors):
            return JSON(
                error_body("MalformedJSON", "the request body is not valid JSON", _clean_validation_errors(errors)),
                status_code=400,
            )
        return JSON(
            error_body("InvalidRequest", "the request does not match the API schema", _clean_validation_errors(errors)),
            status_code=422,
        )

    @app.exception_handler(ValidationError)
    async def model_error(request: Request, exc: ValidationError) -> JSON:
        # a model built inside a handler (e.g. from query parameters) rejected its input
        return JSON(
            error_body(
                "InvalidRequest",
                "the request does not match the API schema",
                _clean_validation_errors([dict(e) for e in exc.errors()]),
            ),
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSON:
        kinds = {404: "NotFound", 405: "MethodNotAllowed", 413: "PayloadTooLarge", 400: "BadRequest"}
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(request)) or headers.get("Allow", "")
        return JSON(
            error_body(kinds.get(exc.status_code, "HTTPError"), str(exc.detail)),
            status_code=exc.status_code,
            headers=headers or None,
        )


def allowed_methods(request: Request) -> list[str]:
    """Every method the API documents for the request's path (Starlette's 405 names one route's only).

    Read from the OpenAPI document: the paths whose template matches, the most specific first (a
    literal segment wins over a parameter, as in OpenAPI: ``/v1/memories/merge`` is the merge, not
    a memory id). Paths outside the document keep the methods Starlette named.
    """
    parts = request.scope.get("path", "").rstrip("/").split("/")
    best: tuple[int, set[str]] = (-1, set())
    for template, item in request.app.openapi().get("paths", {}).items():
        tparts = template.rstrip("/").split("/")
        if len(tparts) != len(parts):
            continue
        if not all(t == p or (t.startswith("{") and t.endswith("}") and p) for t, p in zip(tparts, parts, strict=True)):
            continue
        literal = sum(not t.startswith("{") for t in tparts)
        methods = {m.upper() for m in item if m in HTTP_METHODS}
        if literal > best[0]:
            best = (literal, methods)
        elif literal == best[0]:
            best[1].update(methods)
    return sorted(best[1])


HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})
