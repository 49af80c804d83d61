"""Shared query parameters and their resolution (as-of, offsets)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from ledger.api import Ledger
from ledger.errors import InvalidRequest

AsOf = Annotated[str | None, Query(max_length=64, description="offset (e.g. 41) or ISO-8601 time; default: head")]
Offset = Annotated[int, Query(ge=0, le=2**62, description="0-based log offset")]


def resolve_as_of(ledger: Ledger, as_of: str | None) -> int | None:
    """The offset an ``as_of`` parameter names (None: head), with a clear 4xx on nonsense."""
    if as_of is None:
        return None
    try:
        return ledger.resolve_as_of(as_of)
    except (ValueError, OverflowError) as exc:
        raise InvalidRequest(f"as_of must be an offset or an ISO-8601 time, not {as_of!r}") from exc
