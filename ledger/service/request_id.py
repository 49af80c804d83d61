"""Request ids: every response carries ``X-Request-ID``, and every event written while serving a
request carries it as ``correlation_id`` (unless the writer set one), so an auditor can go from
an HTTP access log line to the events it caused and back.

A client may send its own ``X-Request-ID`` (1-100 of ``A-Z a-z 0-9 . _ : -``); otherwise one is
generated. It labels events; it never changes who they are attributed to.
"""

from __future__ import annotations

import os
import re
from contextvars import ContextVar
from typing import Any

CURRENT: ContextVar[str | None] = ContextVar("memledger_request_id", default=None)
_VALID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")


def current_request_id() -> str | None:
    """The id of the request being served in this context, if any."""
    return CURRENT.get()


class RequestIdMiddleware:
    """Pure ASGI middleware: picks the request id, exposes it to handlers and echoes it back."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"x-request-id"), None)
        rid = given if given is not None and _VALID.match(given) else "req_" + os.urandom(8).hex()
        token = CURRENT.set(rid)

        async def send_wrapper(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", rid.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            CURRENT.reset(token)
