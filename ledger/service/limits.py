"""Request body size limit: 413 before the body is parsed, for declared and chunked bodies."""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException


class BodyLimitMiddleware:
    """Pure ASGI middleware refusing bodies above ``max_bytes``."""

    def __init__(self, app: Any, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared < 0 or declared > self.max_bytes:
                    await _reject(send, self.max_bytes, declared)
                    return
        seen = 0

        async def limited_receive() -> dict[str, Any]:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise HTTPException(413, f"request body exceeds {self.max_bytes} bytes")
            return message

        await self.app(scope, limited_receive, send)


async def _reject(send: Any, limit: int, declared: int) -> None:
    import orjson

    what = "is not a valid Content-Length" if declared < 0 else f"of {declared} bytes exceeds {limit} bytes"
    body = orjson.dumps(
        {"error": {"type": "PayloadTooLarge" if declared >= 0 else "BadRequest", "message": f"request body {what}"}}
    )
    await send(
        {
            "type": "http.response.start",
            "status": 413 if declared >= 0 else 400,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
