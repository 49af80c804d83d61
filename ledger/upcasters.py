"""Upcasters: pure functions that raise a payload from schema version N to N+1."""

from __future__ import annotations

from typing import Any


def memory_added_v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
    """v1 stored the text as ``content``; v2 calls it ``text`` and adds metadata, tags and state."""
    return {
        "memory_id": payload["memory_id"],
        "text": payload["content"],
        "metadata": {},
        "tags": [],
        "state": "generated",
    }


UPCASTERS = {
    ("memory.added", 1): memory_added_v1_to_v2,
}
