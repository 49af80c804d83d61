"""Server-sent events of ``/v1/log/stream``, parsed line by line (one parser for sync and async)."""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from ledger.client.errors import AuthenticationFailed
from ledger.client.models import JSON


@dataclass
class SseParser:
    """Feeds lines, returns each complete event's JSON ``data`` (comments and ``retry`` are skipped).

    A final ``event: unauthenticated`` (the token was revoked or rotated) raises
    ``AuthenticationFailed``.
    """

    _event: str = ""
    _data: list[str] = field(default_factory=list)

    def feed(self, line: str) -> JSON | None:
        line = line.rstrip("\r\n")
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        return None

    def _dispatch(self) -> JSON | None:
        event, data = self._event, "\n".join(self._data)
        self._event, self._data = "", []
        if not data:
            return None
        body = orjson.loads(data)
        if event == "unauthenticated":
            message = body.get("error", {}).get("message", "") if isinstance(body, dict) else ""
            raise AuthenticationFailed(message or "the stream's token is no longer valid")
        return body if isinstance(body, dict) else None
