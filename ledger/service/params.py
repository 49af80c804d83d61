"""Shared query parameters and their resolution (as-of, offsets).

``as_of`` is an offset (``-1``: before the first event) or an ISO-8601 time: a calendar date,
optionally with a time (``T`` or a space; ``HH:MM``, seconds and up to 6 fractional digits) and
a zone (``Z`` or ``±HH:MM``; none means UTC). ``AS_OF_PATTERN`` states exactly that, is the
``pattern`` of every ``as_of`` in the OpenAPI schema and is what ``resolve_as_of`` checks, so a
value the schema accepts always parses. An offset beyond the head names no state of the log yet:
404, like any other id that does not exist.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Query

from ledger.api import Ledger
from ledger.errors import InvalidRequest, NotFound
from ledger.rules.timepoints import OFFSET_PATTERN, TIME_PATTERN

AS_OF_PATTERN = f"^(?:{OFFSET_PATTERN}|{TIME_PATTERN})$"
AS_OF_RE = re.compile(AS_OF_PATTERN)
AS_OF_DESCRIPTION = "offset (e.g. 41; -1: before the first event) or ISO-8601 time (e.g. 2026-11-25T10:00:00Z)"

AsOf = Annotated[
    str | None, Query(max_length=64, pattern=AS_OF_PATTERN, description=AS_OF_DESCRIPTION + "; default: head")
]
Offset = Annotated[int, Query(ge=0, le=2**62, description="0-based log offset")]


def resolve_as_of(ledger: Ledger, as_of: str | None) -> int | None:
    """The offset an ``as_of`` parameter names (None: head), with a clear 4xx on nonsense."""
    if as_of is None:
        return None
    if not AS_OF_RE.fullmatch(as_of):
        raise InvalidRequest(f"as_of must be an offset or an ISO-8601 time, not {as_of!r}")
    if re.fullmatch(OFFSET_PATTERN, as_of) and int(as_of) > (head := ledger.head()):
        raise NotFound(f"offset {as_of} does not exist yet (the head of the log is {head})")
    try:
        return ledger.resolve_as_of(as_of)
    except (ValueError, OverflowError) as exc:
        raise InvalidRequest(f"as_of must be an offset or an ISO-8601 time, not {as_of!r}") from exc
