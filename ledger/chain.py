"""Backend-neutral append pipeline (validate → seal into the hash chain) and chain verification."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from ledger.canonical import GENESIS_HASH, canonical_bytes, chain_hash
from ledger.errors import ConcurrencyConflict, IdempotencyConflict, InvalidRequest, SchemaViolation
from ledger.events import Event, NewEvent, now_us
from ledger.log import ANY_VERSION
from ledger.schema_registry import SchemaRegistry

MAX_BATCH = 1_000_000

# The time of the next batch given the log's last one (see ``ledger.partitions.hlc``).
Stamp = Callable[[int], int]


@dataclass(slots=True)
class PreparedEvent:
    """A validated event with its canonical payload, not yet placed in the chain."""

    new: NewEvent
    schema_version: int
    payload_bytes: bytes


def prepare(registry: SchemaRegistry, events: Sequence[NewEvent]) -> list[PreparedEvent]:
    """Validate every event of a batch; raise on the first invalid one (nothing is written)."""
    if len(events) > MAX_BATCH:
        raise InvalidRequest(f"batch of {len(events)} events exceeds the limit of {MAX_BATCH}")
    out: list[PreparedEvent] = []
    seen: set[str] = set()
    validate = registry.validate
    latest = registry.latest
    for i, ev in enumerate(events):
        if type(ev) is not NewEvent:
            raise InvalidRequest(f"event #{i} is a {type(ev).__name__}, not a NewEvent")
        s, t, a, eid = ev.stream, ev.type, ev.actor, ev.event_id
        if not (
            type(s) is str
            and type(t) is str
            and type(a) is str
            and type(eid) is str
            and 0 < len(s) <= 200
            and 0 < len(t) <= 200
            and 0 < len(a) <= 200
            and 0 < len(eid) <= 200
        ):
            _envelope_error(ev, i)
        if not (
            s.isascii()
            and t.isascii()
            and a.isascii()
            and eid.isascii()
            and _ascii_or_none(ev.causation_id)
            and _ascii_or_none(ev.correlation_id)
        ):
            _envelope_text_error(ev, i)  # raises if a field cannot be encoded (a lone surrogate)
        if eid in seen:
            raise IdempotencyConflict(eid, "used twice in one batch")
        seen.add(eid)
        version = ev.schema_version or latest(t)
        validate(t, version, ev.payload, i)
        try:
            payload_bytes = canonical_bytes(ev.payload)
        except TypeError as exc:
            raise SchemaViolation(t, version, f"payload is not JSON-encodable: {exc}", i) from None
        out.append(PreparedEvent(ev, version, payload_bytes))
    return out


def _envelope_error(ev: NewEvent, index: int) -> None:
    for name in ("stream", "type", "actor", "event_id"):
        value = getattr(ev, name)
        if not isinstance(value, str) or not value or len(value) > 200:
            detail = f"envelope field {name!r} must be a non-empty string of at most 200 characters"
            raise SchemaViolation(str(ev.type), ev.schema_version or 0, detail, index)


def _ascii_or_none(value: object) -> bool:
    return value is None or not isinstance(value, str) or value.isascii()


def _envelope_text_error(ev: NewEvent, index: int) -> None:
    for name in ("stream", "type", "actor", "event_id", "causation_id", "correlation_id"):
        value = getattr(ev, name)
        try:
            value.encode("utf-8") if isinstance(value, str) else None
        except UnicodeEncodeError:
            detail = f"envelope field {name!r} is not valid UTF-8 text: {value!r}"
            raise SchemaViolation(ascii(ev.type), ev.schema_version or 0, detail, index) from None


def check_expected(expected: Mapping[str, int] | None, current: Mapping[str, int]) -> None:
    """Raise ``ConcurrencyConflict`` if any stream is not at its expected version."""
    if not expected:
        return
    for stream, want in expected.items():
        if want is None or want == ANY_VERSION:
            continue
        have = current.get(stream, 0)
        if have != want:
            raise ConcurrencyConflict(stream, want, have)


def seal(
    prepared: Sequence[PreparedEvent],
    head: int,
    head_hash: str,
    last_ts_us: int,
    stream_versions: dict[str, int],
    stamp: Stamp | None = None,
) -> list[tuple[Event, bytes]]:
    """Place prepared events after ``head``: offsets, stream versions, monotonic times, hashes.

    ``stream_versions`` holds the current version of every stream in the batch and is
    updated in place. Every event of the batch gets one time: ``stamp(last_ts_us)`` when a
    clock is given (the partitioned ledger's hybrid logical clock), else the wall clock, never
    below ``last_ts_us``. Returns each sealed event with its canonical payload bytes.
    """
    ts = stamp(last_ts_us) if stamp is not None else max(now_us(), last_ts_us)
    out: list[tuple[Event, bytes]] = []
    prev = head_hash
    offset = head
    for p in prepared:
        ev = p.new
        offset += 1
        version = stream_versions.get(ev.stream, 0) + 1
        stream_versions[ev.stream] = version
        h = chain_hash(
            prev,
            offset,
            ev.stream,
            version,
            ev.event_id,
            ev.type,
            p.schema_version,
            ts,
            ev.actor,
            ev.causation_id,
            ev.correlation_id,
            p.payload_bytes,
        )
        out.append(
            (
                Event(
                    offset,
                    ev.stream,
                    version,
                    ev.event_id,
                    ev.type,
                    p.schema_version,
                    ts,
                    ev.actor,
                    ev.causation_id,
                    ev.correlation_id,
                    ev.payload,
                    prev,
                    h,
                ),
                p.payload_bytes,
            )
        )
        prev = h
    return out


def same_content(stored: Event, new: PreparedEvent) -> bool:
    """True when a retried event carries the same content as the stored one."""
    ev = new.new
    return (
        stored.stream == ev.stream
        and stored.type == ev.type
        and stored.actor == ev.actor
        and stored.schema_version == new.schema_version
        and canonical_bytes(stored.payload) == new.payload_bytes
    )


def resolve_retry(prepared: Sequence[PreparedEvent], existing: Mapping[str, Event]) -> list[Event] | None:
    """Decide what a batch whose ids are (partly) stored means.

    Returns the stored events when the whole batch is a faithful retry, ``None`` when no id
    is stored yet, and raises ``IdempotencyConflict`` otherwise.
    """
    if not existing:
        return None
    for p in prepared:
        stored = existing.get(p.new.event_id)
        if stored is None:
            raise IdempotencyConflict(
                p.new.event_id, "the batch mixes already-stored and new event ids; retry the exact batch"
            )
        if not same_content(stored, p):
            raise IdempotencyConflict(p.new.event_id)
    return [existing[p.new.event_id] for p in prepared]


@dataclass(slots=True)
class VerifyResult:
    """Outcome of a chain verification."""

    ok: bool
    checked: int
    head: int
    head_hash: str
    first_bad_offset: int | None = None
    problem: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "head": self.head,
            "head_hash": self.head_hash,
            "first_bad_offset": self.first_bad_offset,
            "problem": self.problem,
        }


RawRow = tuple[int, str, int, str, str, int, int, str, "str | None", "str | None", bytes, str, str]


def _row_problem(row: tuple, prev: str) -> tuple[str | None, Any]:
    """Why one stored row does not extend the chain ending in ``prev`` (None when it does), and
    its decoded payload."""
    offset, stream, version, event_id, etype, sv, ts, actor, cause, corr, payload, prev_hash, h = row
    if prev_hash != prev:
        return f"offset {offset}: prev_hash does not link to the previous event (removed or reordered)", None
    if isinstance(payload, str):  # a row edited with SQL text functions comes back as TEXT
        payload = payload.encode()
    try:
        decoded = orjson.loads(payload)
        canon = canonical_bytes(decoded)
    except orjson.JSONDecodeError:
        return f"offset {offset}: payload is not valid JSON", None
    if canon != bytes(payload):
        return f"offset {offset}: payload is not canonical (modified)", None
    if chain_hash(prev, offset, stream, version, event_id, etype, sv, ts, actor, cause, corr, canon) != h:
        return f"offset {offset}: content does not match its hash (modified)", None
    return None, decoded


def verify_rows(
    rows: Iterable[RawRow],
    start_offset: int = 0,
    start_hash: str = GENESIS_HASH,
    on_payload: Callable[[int, Any], None] | None = None,
) -> VerifyResult:
    """Recompute the chain over stored rows (offset order) and report the first broken offset.

    A row is ``(offset, stream, version, event_id, type, schema_version, ts_us, actor,
    causation_id, correlation_id, payload_bytes, prev_hash, hash)``. ``on_payload(offset,
    payload)`` sees the decoded payload of every row that verified (e.g. to check an index
    derived from the events without decoding them twice).
    """
    expected_offset = start_offset
    prev = start_hash
    checked = 0
    for row in rows:
        offset = row[0]
        if offset != expected_offset:
            kind = "removed" if offset > expected_offset else "reordered or duplicated"
            return VerifyResult(
                False,
                checked,
                offset,
                prev,
                expected_offset,
                f"offset {expected_offset} {kind} (found offset {offset} next)",
            )
        problem, payload = _row_problem(row, prev)
        if problem is not None:
            return VerifyResult(False, checked, offset, prev, offset, problem)
        if on_payload is not None:
            on_payload(offset, payload)
        prev = row[12]
        expected_offset += 1
        checked += 1
    return VerifyResult(True, checked, expected_offset - 1, prev)
