"""Which log events a caller may see, and in what form.

- admins see every event as stored (they operate the service, like someone with the data directory);
- a principal who may read a cube (owner, writer, reader) sees its events unredacted;
- every memory payload is sealed, so besides the event as stored (whose hash covers the
  ciphertext) a caller who may read it also gets ``opened``: the decrypted ``{"text", "metadata"}``
  (``null`` once erased or forgotten);
- an auditor of a cube sees its events with content fields redacted (see ``CONTENT_KEYS``);
- events of cubes without a role, and of the ``_system`` stream, are invisible to non-admins.
"""

from __future__ import annotations

from typing import Any

from ledger.access import ALLOWED, AccessControl, Action, Caller
from ledger.events import Event
from ledger.memory_state import Opener

# payload keys that carry memory content (texts, metadata, sealed ciphertext, chat content)
CONTENT_KEYS = frozenset({"text", "content", "metadata", "sealed", "answer", "prompt", "messages", "snippet", "output"})


def redact(d: dict[str, Any]) -> dict[str, Any]:
    """An event dict with its content payload fields replaced by null, listed under ``redacted``."""
    payload = d.get("payload") or {}
    hidden = sorted(k for k in payload if k in CONTENT_KEYS)
    if not hidden:
        return d
    clean = {k: (None if k in CONTENT_KEYS else v) for k, v in payload.items()}
    return {**d, "payload": clean, "redacted": hidden}


def shown(event: Event, full: bool, opener: Opener | None) -> dict[str, Any]:
    """An event as a caller sees it: as stored plus ``opened`` content (``full``), or redacted."""
    d = event.to_dict()
    if not full:
        return redact(d)
    sealed = event.payload.get("sealed")
    if isinstance(sealed, dict) and opener is not None:
        d["opened"] = opener(sealed)
    return d


class EventFilter:
    """Per-request visibility of events for one caller (roles are re-read on ``refresh``)."""

    def __init__(self, caller: Caller, access: AccessControl, opener: Opener | None = None):
        self.caller = caller
        self.access = access
        self.opener = opener
        self._cache: dict[str, str] = {}

    def refresh(self) -> None:
        self.access.index.refresh()
        self._cache.clear()

    def mode(self, stream: str) -> str:
        """``full``, ``redacted`` or ``hidden`` for events of ``stream``."""
        m = self._cache.get(stream)
        if m is None:
            if self.caller.admin:
                m = "full"
            else:
                roles = self.access.index.roles(stream, self.caller.name)
                m = (
                    "full"
                    if roles & ALLOWED[Action.READ]
                    else ("redacted" if roles & ALLOWED[Action.AUDIT] else "hidden")
                )
            self._cache[stream] = m
        return m

    def view(self, event: Event) -> dict[str, Any] | None:
        """The event as this caller may see it, or None."""
        m = self.mode(event.stream)
        if m == "hidden":
            return None
        return shown(event, m == "full", self.opener)
