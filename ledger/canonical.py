"""Canonical encoding and hashing of events.

The canonical form is UTF-8 JSON with sorted keys and no insignificant white space, as
produced by orjson with ``OPT_SORT_KEYS``. Every backend hashes exactly these bytes, so a
chain computed by one implementation can be checked by any other.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

GENESIS_HASH = "0" * 64
_OPTS = orjson.OPT_SORT_KEYS


def canonical_bytes(obj: Any) -> bytes:
    """Return the canonical JSON encoding of ``obj``."""
    return orjson.dumps(obj, option=_OPTS)


def chain_hash(
    prev_hash: str,
    offset: int,
    stream: str,
    version: int,
    event_id: str,
    event_type: str,
    schema_version: int,
    ts_us: int,
    actor: str,
    causation_id: str | None,
    correlation_id: str | None,
    payload_bytes: bytes,
) -> str:
    """SHA-256 (hex) of one event's canonical header, its canonical payload and the previous hash."""
    header = orjson.dumps(
        [
            offset,
            stream,
            version,
            event_id,
            event_type,
            schema_version,
            ts_us,
            actor,
            causation_id,
            correlation_id,
            prev_hash,
        ]
    )
    h = hashlib.sha256(header)
    h.update(b"\n")
    h.update(payload_bytes)
    return h.hexdigest()
