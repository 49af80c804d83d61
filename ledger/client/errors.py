"""The service's error bodies, raised again as the exception classes the embedded API raises.

``{"error": {"type": "NotFound", "message": ...}}`` with status 404 becomes ``ledger.errors.NotFound``
with the same message: code written against the embedded ``Ledger`` catches the same classes from
the client. The class is chosen by the body's ``type`` (the name of the ``LedgerError`` the server
raised), else by the status code.
"""

from __future__ import annotations

from typing import Any

from ledger.errors import (
    AccessDenied,
    BackendUnavailable,
    InternalError,
    InvalidRequest,
    LedgerError,
    LegalHold,
    NotFound,
    StateError,
)


class AuthenticationFailed(AccessDenied):
    """No valid token: missing, wrong, revoked or rotated (HTTP 401)."""


class ServiceUnreachable(BackendUnavailable):
    """The service could not be reached, or did not answer in time, after every retry."""


# error types of the HTTP layer that are not LedgerError classes
_HTTP_TYPES: dict[str, type[LedgerError]] = {
    "Unauthenticated": AuthenticationFailed,
    "MalformedJSON": InvalidRequest,
    "MethodNotAllowed": InvalidRequest,
    "PayloadTooLarge": InvalidRequest,
    "BadRequest": InvalidRequest,
}
_BY_STATUS: dict[int, type[LedgerError]] = {
    400: InvalidRequest,
    401: AuthenticationFailed,
    403: AccessDenied,
    404: NotFound,
    405: InvalidRequest,
    409: StateError,
    413: InvalidRequest,
    422: InvalidRequest,
    500: InternalError,
    502: BackendUnavailable,
    503: BackendUnavailable,
    504: BackendUnavailable,
}


def _ledger_classes() -> dict[str, type[LedgerError]]:
    """Every ``LedgerError`` subclass by name (the classes the server may name in ``type``)."""
    import ledger.timemachine.branch_merge  # noqa: F401 - defines MergeConflict

    out: dict[str, type[LedgerError]] = {}
    todo: list[type[LedgerError]] = [LedgerError]
    while todo:
        cls = todo.pop()
        out.setdefault(cls.__name__, cls)
        todo.extend(cls.__subclasses__())
    return out


def _instance(cls: type[LedgerError], message: str) -> LedgerError:
    """An instance of ``cls`` carrying ``message`` (bypassing constructors that build their own)."""
    exc = cls.__new__(cls)
    Exception.__init__(exc, message)
    return exc


def error_from_response(status: int, body: Any) -> LedgerError:
    """The exception for an error response (``status`` >= 400) and its decoded JSON ``body``."""
    detail = body.get("error") if isinstance(body, dict) else None
    kind = str(detail.get("type", "")) if isinstance(detail, dict) else ""
    message = str(detail.get("message", "")) if isinstance(detail, dict) else ""
    cls = (
        _HTTP_TYPES.get(kind)
        or _ledger_classes().get(kind)
        or _BY_STATUS.get(status)
        or (BackendUnavailable if status >= 500 else InvalidRequest)
    )
    details = detail.get("details") if isinstance(detail, dict) else None
    exc = _instance(cls, _one_line(message or f"HTTP {status}", details))
    exc.status = status  # type: ignore[attr-defined]
    exc.details = details  # type: ignore[attr-defined]
    if isinstance(exc, LegalHold):  # the holds that refused, as the embedded API names them
        exc.hold_ids = [str(h) for h in details.get("hold_ids", [])] if isinstance(details, dict) else []
    return exc


def _one_line(message: str, details: Any) -> str:
    """The message with the first schema errors appended (``body.text: must not be blank: ...``)."""
    if not isinstance(details, list):
        return message
    parts = []
    for d in details[:3]:
        if isinstance(d, dict) and d.get("msg"):
            loc = ".".join(str(x) for x in d.get("loc") or [])
            parts.append(f"{loc}: {d['msg']}" if loc else str(d["msg"]))
    return " ".join(f"{message}: {'; '.join(parts)}".split()) if parts else message
