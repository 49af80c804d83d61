"""Ingested conversation messages: validated, sealed like any payload, appended in one batch.

``ingest(ledger, cube, messages, actor, ...)`` appends one ``message.added`` event per message,
verbatim and in one atomic batch (all or nothing), sharing a correlation id, and returns as soon as
they are durable. Nothing is extracted here: extraction is a consumer of the log
(``ledger.memos.extraction.consumer``). A message's content is sealed exactly as a memory's is
(under a key of its own, and its data subject's), its scope ids (``user_id``, ``agent_id``,
``run_id``) stay in plaintext beside it, and ``erase`` / ``forget`` treat it like a memory: facts
derived from it are sealed under its key and become unreadable with it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ledger import events as ev
from ledger.errors import ConcurrencyConflict, InvalidRequest
from ledger.events import Event, NewEvent
from ledger.memory_state import MemoryState, Opener, SealedSource, content_keys, content_subjects, scope_of
from ledger.memos.extraction.base import Message
from ledger.rules.content import check_text, is_blank
from ledger.rules.timepoints import TIME_RE

MAX_MESSAGES = 1000
MAX_CONTENT = 200_000
MAX_NAME = 200
ROLES = ("user", "assistant", "system", "tool")
FIELDS = ("role", "content", "name", "timestamp")


@dataclass(frozen=True, slots=True)
class MessageIn:
    """One message as a caller hands it in."""

    role: str
    content: str
    name: str | None = None
    timestamp: str | None = None


@dataclass(frozen=True, slots=True)
class Ingested:
    """What an ingest call appended: one id and offset per message, and the batch's correlation id."""

    cube: str
    message_ids: list[str]
    offsets: list[int]
    correlation_id: str
    duplicate: bool = False  # the batch id was ingested before: nothing new was written

    def to_dict(self) -> dict[str, Any]:
        return {
            "cube": self.cube,
            "message_ids": self.message_ids,
            "offsets": self.offsets,
            "correlation_id": self.correlation_id,
            "count": len(self.message_ids),
            "duplicate": self.duplicate,
        }


def parse_messages(raw: Any) -> list[MessageIn]:
    """Validate a JSON list of ``{role, content, name?, timestamp?}``; one clear error for the first problem."""
    if isinstance(raw, MessageIn):
        raw = [raw]
    if not isinstance(raw, list | tuple):
        raise InvalidRequest("messages must be a JSON list of {role, content, name?, timestamp?} objects")
    if not raw:
        raise InvalidRequest("messages must hold at least one message")
    if len(raw) > MAX_MESSAGES:
        raise InvalidRequest(f"at most {MAX_MESSAGES} messages per ingest call, not {len(raw)}")
    return [_one(i, m) for i, m in enumerate(raw)]


def _one(i: int, m: Any) -> MessageIn:
    where = f"messages[{i}]"
    if isinstance(m, MessageIn):
        m = {k: getattr(m, k) for k in FIELDS if getattr(m, k) is not None}
    if not isinstance(m, Mapping):
        raise InvalidRequest(f"{where} must be an object with role and content")
    extra = sorted(set(m) - set(FIELDS))
    if extra:
        raise InvalidRequest(f"{where} has unknown field {extra[0]!r} (allowed: {', '.join(FIELDS)})")
    role, content, name, ts = m.get("role"), m.get("content"), m.get("name"), m.get("timestamp")
    if role not in ROLES:
        raise InvalidRequest(f"{where}.role must be one of {', '.join(ROLES)}, not {role!r}")
    if not isinstance(content, str) or is_blank(content):
        raise InvalidRequest(f"{where}.content must be a non-blank string")
    if len(content) > MAX_CONTENT:
        raise InvalidRequest(f"{where}.content is {len(content)} characters; the limit is {MAX_CONTENT}")
    try:
        check_text(content)
    except InvalidRequest as exc:
        raise InvalidRequest(f"{where}.content: {exc}") from None
    if name is not None and (not isinstance(name, str) or is_blank(name) or len(name) > MAX_NAME):
        raise InvalidRequest(f"{where}.name must be a non-blank string of at most {MAX_NAME} characters")
    if ts is not None:
        if not isinstance(ts, str) or len(ts) > 64:
            raise InvalidRequest(f"{where}.timestamp must be an ISO-8601 string")
        if not TIME_RE.fullmatch(ts):
            raise InvalidRequest(f"{where}.timestamp is not an ISO-8601 time (e.g. 2026-11-25T10:00:00Z): {ts!r}")
    return MessageIn(role, content, name, ts)


def _scope(user_id: str | None, agent_id: str | None, run_id: str | None) -> dict[str, str]:
    out = {}
    for key, value in (("user_id", user_id), ("agent_id", agent_id), ("run_id", run_id)):
        if value is None:
            continue
        if not isinstance(value, str) or is_blank(value) or len(value) > 200:
            raise InvalidRequest(f"{key} must be a non-blank string of at most 200 characters")
        out[key] = value
    return out


def batch_event_id(batch_id: str, index: int) -> str:
    """The deterministic event id of message ``index`` of the ingest call ``batch_id`` (retries write nothing)."""
    return hashlib.sha256(f"ingest\x00{batch_id}\x00{index}".encode()).hexdigest()[:32]


def ingest(
    ledger: Any,
    cube: str,
    messages: Any,
    actor: str,
    user_id: str | None = None,
    agent_id: str | None = None,
    run_id: str | None = None,
    session_id: str | None = None,
    subject: str | None = None,
    batch_id: str | None = None,
) -> Ingested:
    """Append ``messages`` to ``cube`` (created on first use) as one atomic batch; see the module docstring."""
    from ledger.api import _check_cube_name

    _check_cube_name(cube)
    if not isinstance(actor, str) or not actor:
        raise InvalidRequest("ingest needs the actor who hands the messages in")
    parsed = parse_messages(messages)
    scope = _scope(user_id, agent_id, run_id)
    if session_id is not None and (not isinstance(session_id, str) or is_blank(session_id) or len(session_id) > 200):
        raise InvalidRequest("session_id must be a non-blank string of at most 200 characters")
    if batch_id is not None:
        stored = ledger.log.get_by_id(batch_event_id(batch_id, 0))
        if stored is not None:
            return _stored_batch(ledger, stored, len(parsed))
    correlation = "ingest-" + (hashlib.sha256(batch_id.encode()).hexdigest()[:16] if batch_id else os.urandom(8).hex())
    batch: list[NewEvent] = []
    ids: list[str] = []
    for i, m in enumerate(parsed):
        mid = "msg_" + os.urandom(8).hex()
        meta: dict[str, Any] = dict(scope)
        if m.name is not None:
            meta["speaker"] = m.name  # sealed with the content (memory_state.LINEAGE_METADATA_KEYS says why)
        content = ledger.content_fields(m.content, meta, mid, [] if subject is None else [subject])
        payload: dict[str, Any] = {"message_id": mid, "role": m.role, "index": i, **content}
        payload.setdefault("metadata", {})
        if m.timestamp is not None:
            payload["timestamp"] = m.timestamp
        if session_id is not None:
            payload["session_id"] = session_id
        new = NewEvent(cube, ev.MESSAGE_ADDED, payload, actor, correlation_id=correlation)
        if batch_id is not None:
            new.event_id = batch_event_id(batch_id, i)
        batch.append(new)
        ids.append(mid)
    for _ in range(5):
        version = ledger.log.stream_version(cube)
        events = batch
        if version == 0:
            created = {"cube": cube, "owner": actor, "visibility": "private", "metadata": {}}
            events = [NewEvent(cube, ev.CUBE_CREATED, created, actor), *batch]
        try:
            written = ledger.log.append(events, {cube: 0} if version == 0 else None)
        except ConcurrencyConflict:
            continue  # the cube was created concurrently; go again
        offsets = [e.offset for e in written if e.type == ev.MESSAGE_ADDED]
        return Ingested(cube, ids, offsets, correlation)
    raise ConcurrencyConflict(cube, 0, ledger.log.stream_version(cube))


def _stored_batch(ledger: Any, first: Event, n: int) -> Ingested:
    """The messages an earlier call with the same batch id wrote (an idempotent retry)."""
    if first.type != ev.MESSAGE_ADDED:
        raise InvalidRequest("batch_id was already used for a different request")
    events = [e for e in ledger.log.read(first.offset, first.offset + n - 1) if e.type == ev.MESSAGE_ADDED]
    events = [e for e in events if e.correlation_id == first.correlation_id]
    return Ingested(
        first.stream,
        [e.payload["message_id"] for e in events],
        [e.offset for e in events],
        first.correlation_id or "",
        duplicate=True,
    )


def message_of(event: Event, opener: Opener | None) -> Message | None:
    """The ``Message`` a ``message.added`` event records; None when its content cannot be opened (erased)."""
    p = event.payload
    if "text" in p:
        text, meta = p["text"], p.get("metadata") or {}
    else:
        opened = opener(p["sealed"]) if opener is not None and isinstance(p.get("sealed"), dict) else None
        if opened is None:
            return None
        text, meta = opened.get("text"), opened.get("metadata") or {}
    if not isinstance(text, str):
        return None
    name = meta.get("speaker")
    return Message(
        offset=event.offset,
        message_id=p["message_id"],
        role=p["role"],
        content=text,
        name=name if isinstance(name, str) else None,
        timestamp=p.get("timestamp"),
        scope=scope_of(p.get("metadata")) or scope_of(meta),
    )


def sealed_source(event: Event) -> SealedSource:
    """What a fact derived from this message inherits: its subjects and key components."""
    return SealedSource(content_subjects(event.payload), content_keys(event.payload))


def message_state(events: Iterable[Event], message_id: str) -> MemoryState | None:
    """A ``MemoryState`` for the message ``message_id`` (so holds and erasure treat it like a memory)."""
    state: MemoryState | None = None
    for e in events:
        p = e.payload
        if e.type == ev.MESSAGE_ADDED and p.get("message_id") == message_id:
            subjects = content_subjects(p)
            state = MemoryState(
                memory_id=message_id,
                cube=e.stream,
                text=p.get("text"),
                metadata=dict(p.get("metadata") or {}),
                tags=["message", f"role:{p['role']}"],
                state="generated",
                version=1,
                created_offset=e.offset,
                updated_offset=e.offset,
                created_at=e.time,
                updated_at=e.time,
                created_by=e.actor,
                updated_by=e.actor,
                subject=subjects[0] if subjects else None,
                sealed="sealed" in p,
                event_offsets=[e.offset],
                subjects=subjects,
                keys=content_keys(p),
            )
        elif state is not None and e.type == ev.MEMORY_ERASED and message_id in e.payload.get("memory_ids", ()):
            state.exists, state.erased, state.deleted, state.text = False, True, True, None
    return state


def message_events(ledger: Any, start: int = 0, end: int | None = None) -> Iterable[Event]:
    """The ``message.added`` events of ``start..end``, in offset order."""
    return ledger.log.read_filtered(start, end, types=[ev.MESSAGE_ADDED])


def read_messages(ledger: Any, cube: str | None = None, end: int | None = None) -> Sequence[Message]:
    """Every readable message (of ``cube``), oldest first."""
    out = []
    for e in message_events(ledger, 0, end):
        if cube is not None and e.stream != cube:
            continue
        m = message_of(e, ledger.opener)
        if m is not None:
            out.append(m)
    return out
