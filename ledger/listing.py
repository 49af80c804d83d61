"""Listing a cube's memories (mem0's ``get_all``): filtered, in a stable order, a page at a time.

Order: by ``created_offset`` (the offset of the event that created the memory), then by id, so a
memory created later never lands on a page already read, and a page boundary is one position in
that order. The cursor of the next page is opaque: URL-safe base64 of the position, the cube and a
digest of the filter, with a checksum; a cursor of another cube or filter, or one that was altered,
is refused with one line (``BadCursor``: HTTP 409, CLI exit 2).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ledger.errors import InvalidRequest, StateError
from ledger.memory_state import MemoryState
from ledger.rules.filters import Filter, record_of

MAX_LIMIT = 1000
MAX_CURSOR = 1000  # characters; a real cursor is far shorter
_VERSION = 1


class BadCursor(StateError):
    """A cursor that names no position of this listing: malformed, altered, or made for another cube
    or filter. A conflict between the cursor and the request (HTTP 409), not a schema error: any
    string may be sent as a cursor, and only the listing that made it can tell."""


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a listing: its memories and the cursor of the next page (None: the last page)."""

    cube: str
    as_of: int
    items: list[MemoryState]
    next_cursor: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "cube": self.cube,
            "as_of": self.as_of,
            "memories": [m.to_dict() for m in self.items],
            "next_cursor": self.next_cursor,
            "next_after": self.next_cursor,  # the older name of the same cursor
        }


def check_limit(limit: Any) -> int:
    """A page size: an integer from 1 to ``MAX_LIMIT``."""
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidRequest(f"limit must be an integer between 1 and {MAX_LIMIT}, not {limit!r}")
    return limit


def filter_digest(source: dict[str, Any] | None) -> str:
    """A short digest of a filter (canonical JSON), binding a cursor to the filter it was made for."""
    text = json.dumps(source or {}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.blake2b(text.encode(), digest_size=6).hexdigest()


def _checksum(body: bytes) -> str:
    return hashlib.blake2b(body, digest_size=6, person=b"memledger-cur").hexdigest()


def encode_cursor(cube: str, digest: str, created_offset: int, memory_id: str) -> str:
    """The cursor of the position after (``created_offset``, ``memory_id``)."""
    body = json.dumps([_VERSION, cube, digest, created_offset, memory_id], separators=(",", ":")).encode()
    raw = json.dumps([body.decode(), _checksum(body)], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, cube: str, digest: str) -> tuple[int, str]:
    """The position a cursor names; a malformed cursor, or one of another cube or filter, is refused."""
    bad = "bad cursor: pass the next_cursor of the previous page, with the same cube and filter"
    if not isinstance(cursor, str) or not cursor or len(cursor) > MAX_CURSOR:
        raise BadCursor(bad)
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        body, check = json.loads(raw)
        if not isinstance(body, str) or check != _checksum(body.encode()):
            raise ValueError("checksum")
        version, c, d, offset, memory_id = json.loads(body)
    except (ValueError, TypeError, UnicodeDecodeError):
        raise BadCursor(bad) from None
    if version != _VERSION or not isinstance(offset, int) or not isinstance(memory_id, str):
        raise BadCursor(bad)
    if c != cube:
        raise BadCursor(f"bad cursor: it continues a listing of cube {c!r}, not {cube!r}")
    if d != digest:
        raise BadCursor("bad cursor: it continues a listing with another filter")
    return offset, memory_id


def order_key(m: MemoryState) -> tuple[int, str]:
    """The listing order: creation offset, then id."""
    return (m.created_offset, m.memory_id)


def page_of(
    cube: str,
    as_of: int,
    memories: Iterable[MemoryState],
    flt: Filter,
    limit: int,
    after: str | None,
) -> Page:
    """The page of ``memories`` matching ``flt`` after the cursor ``after`` (None: the first page)."""
    check_limit(limit)
    digest = filter_digest(flt.source)
    start = decode_cursor(after, cube, digest) if after is not None else None
    chosen = sorted(
        (m for m in memories if (start is None or order_key(m) > start) and flt.matches(record_of(m))), key=order_key
    )
    items = chosen[:limit]
    more = len(chosen) > limit
    cursor = encode_cursor(cube, digest, *order_key(items[-1])) if more else None
    return Page(cube, as_of, items, cursor)
