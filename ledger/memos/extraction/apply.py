"""The events one extraction batch appends: its ``extraction.decided`` record and the memory events
its decisions imply (``memory.added`` / ``memory.updated`` / ``memory.deleted``), caused by it.

Every derived memory is sealed under the keys of the messages it came from (so erasing a message,
or forgetting its subject, makes it unreadable), lists them in ``derived_from`` (lineage), inherits
their scope (``merged_metadata``) and carries ``observed_at`` (the message's timestamp, else the
time it was ingested). The decision record seals the model's raw output and the candidates under
the same keys; its decisions name memory ids only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ledger import events as ev
from ledger.events import Event, NewEvent
from ledger.governance.cipher import KeyRef
from ledger.memory_state import MemoryState, SealedSource, content_keys, merged_metadata, scope_of
from ledger.memos.extraction.base import Candidate, Extraction, Extractor
from ledger.memos.extraction.reconcile import ADD, DELETE, UPDATE, Decision
from ledger.memos.messages import sealed_source

TRACK_PREFIX = "_extraction."
DELETE_REASON = "retracted in a conversation (extraction)"


def track_stream(track: str) -> str:
    """The stream holding the decisions (and so the checkpoint) of one extraction track."""
    return TRACK_PREFIX + track


def decision_event_id(track: str, offsets: Sequence[int]) -> str:
    """Deterministic id of the decision on these source offsets: a retried or duplicate batch collides."""
    text = "extraction\x00" + track + "\x00" + ",".join(str(o) for o in offsets)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def derived_memory_id(track: str, offsets: Sequence[int], index: int) -> str:
    """Deterministic id of the memory an ADD of candidate ``index`` writes."""
    text = "extracted\x00" + track + "\x00" + ",".join(str(o) for o in offsets) + f"\x00{index}"
    return "mem_" + hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(slots=True)
class Window:
    """The message events one extractor call sees (one ingest batch, or a slice of a long one)."""

    cube: str
    events: list[Event]
    correlation_id: str | None
    scope: dict[str, Any] = field(default_factory=dict)

    @property
    def offsets(self) -> list[int]:
        return [e.offset for e in self.events]

    def by_offset(self) -> dict[int, Event]:
        return {e.offset: e for e in self.events}


def candidate_dict(c: Candidate) -> dict[str, Any]:
    out: dict[str, Any] = {"text": c.text, "source_offsets": list(c.source_offsets), "retracts": c.retracts}
    for k in ("key", "observed_at", "rule", "refers_to"):
        if getattr(c, k) is not None:
            out[k] = getattr(c, k)
    return out


def _seal_output(ledger: Any, window: Window, content: dict[str, Any]) -> dict[str, Any]:
    keys = {tuple(sorted(k.items())): k for e in window.events for k in content_keys(e.payload)}
    if not keys or ledger.sealer is None:
        return {"output": content}
    return {"sealed": ledger.sealer.seal_with([KeyRef.from_dict(k) for k in keys.values()], content)}


@dataclass(slots=True)
class _Written:
    """What the batch wrote of a memory it added (so a later candidate of the batch can update it)."""

    sources: list[SealedSource]
    keys: list[dict[str, str]]
    subjects: list[str]


def build_batch(
    ledger: Any,
    extractor: Extractor,
    track: str,
    window: Window,
    extraction: Extraction,
    decisions: Sequence[Decision],
    states: dict[str, MemoryState],
    actor: str,
) -> list[NewEvent]:
    """The atomic batch: the decision record first, then the memory events it causes."""
    did = decision_event_id(track, window.offsets)
    candidates = extraction.candidates if extraction.error is None else ()
    payload: dict[str, Any] = {
        "extractor": extractor.name,
        "version": str(extractor.version),
        "track": track,
        "model": extraction.model,
        "prompt_hash": extraction.prompt_hash,
        "cube": window.cube,
        "source_offsets": window.offsets,
        "message_ids": [e.payload["message_id"] for e in window.events],
        "through_offset": window.offsets[-1],
        "error": extraction.error,
        "decisions": [d.to_dict() for d in decisions],
        **_seal_output(
            ledger,
            window,
            {"raw_output": extraction.raw_output, "candidates": [candidate_dict(c) for c in extraction.candidates]},
        ),
    }
    batch = [NewEvent(track_stream(track), ev.EXTRACTION_DECIDED, payload, actor, event_id=did)]
    msgs = window.by_offset()
    written: dict[str, _Written] = {}
    for d in decisions:
        c = candidates[d.candidate]
        if d.kind == DELETE:
            batch.append(
                _event(window, ev.MEMORY_DELETED, {"memory_id": d.target, "reason": DELETE_REASON}, actor, did)
            )
            continue
        if d.kind not in (ADD, UPDATE):
            continue
        sources = [msgs[o] for o in c.source_offsets]
        seals = [sealed_source(e) for e in sources]
        mids = [e.payload["message_id"] for e in sources]
        meta = _metadata(extractor, c, sources)
        mid = d.memory_id or ""
        if d.kind == ADD:
            content = ledger.content_fields(c.text, meta, mid, derived_from=seals)
            body = {"memory_id": mid, "tags": ["fact", "extracted"], "state": "generated", **content}
            body.setdefault("metadata", {})
            body.update(
                source=f"extraction:{extractor.name}", derived_from=mids, derived_offsets=[e.offset for e in sources]
            )
            batch.append(_event(window, ev.MEMORY_ADDED, body, actor, did))
            written[mid] = _Written(seals, content_keys(content), [x for s in seals for x in s.subjects])
            continue
        old = written.get(mid)
        if old is not None:
            keys, subjects = old.keys, old.subjects
        else:
            s = states[mid]
            keys, subjects = s.keys, s.subjects
            meta = {**merged_metadata([scope_of(s.metadata), meta]), **meta}
        # the new version is derived from the new messages only: sealed under the memory's own key, its
        # subjects' and those messages' keys (not every earlier source's, which would pile up version after
        # version); the earlier versions keep their own lineage, and erasing any source destroys the own key
        own = [k for k in keys if k.get("scope") == "memory" and k.get("id") == mid]
        content = ledger.content_fields(c.text, meta, mid, subjects, derived_from=seals, keys=own or None)
        body = {"memory_id": mid, **content, "reason": "superseded in a conversation (extraction)"}
        body["derived_from"] = mids
        body["derived_offsets"] = [e.offset for e in sources]
        batch.append(_event(window, ev.MEMORY_UPDATED, body, actor, did))
        if old is not None:
            old.keys = content_keys(content) or old.keys
    return batch


def _metadata(extractor: Extractor, c: Candidate, sources: Sequence[Event]) -> dict[str, Any]:
    meta = merged_metadata(scope_of(e.payload.get("metadata")) for e in sources)
    observed = c.observed_at or next((e.payload.get("timestamp") for e in sources if e.payload.get("timestamp")), None)
    meta.update(kind="fact", extractor=extractor.name, observed_at=observed or sources[0].time)
    meta["extracted_from"] = [e.payload["message_id"] for e in sources]
    for k in ("key", "rule", "refers_to"):
        v = getattr(c, k)
        if v is not None:
            meta["fact_key" if k == "key" else k] = v
    return meta


def _event(window: Window, type_: str, payload: dict[str, Any], actor: str, cause: str) -> NewEvent:
    return NewEvent(window.cube, type_, payload, actor, causation_id=cause, correlation_id=window.correlation_id)
