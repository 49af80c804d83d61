"""Folding memory events into memory state: the one definition every view agrees with."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from ledger import events as ev
from ledger.events import Event

# Opens a sealed payload: returns {"text": ..., "metadata": ...} or None when the key is gone.
Opener = Callable[[dict[str, Any]], "dict[str, Any] | None"]

# Metadata keys memledger itself writes to describe where a memory came from (chat session, model,
# KV cache, reply and extraction links): identifiers, not content. An erasure still makes them
# unreadable with the rest of the sealed payload, but does not grep the data directory for them.
LINEAGE_METADATA_KEYS = frozenset(
    {"role", "session", "model", "kv_cache", "retrieved", "reply_to", "extracted_from", "kind", "rule"}
    | {"extractor", "fact_key", "observed_at", "refers_to"}  # written by extraction (ledger.memos.extraction)
    # an ingested message's speaker: every fact extracted from the conversation names them, so looking
    # for the name after erasing one message would find all the others (it is sealed all the same)
    | {"speaker"}
    | {"user_id", "agent_id", "run_id"}  # SCOPE_KEYS: in plaintext beside a sealed payload
)

# Scope keys: who a memory is about and in which run (mem0's user/agent/run ids). They are identifiers, not
# content: a sealed payload repeats them in plaintext (``scope_of``), so scoped filters, retention and its
# replay work on memories whose content is sealed or erased, and residue checks do not look for them.
SCOPE_KEYS = ("user_id", "agent_id", "run_id")


def scope_of(metadata: dict[str, Any] | None) -> dict[str, Any]:
    """The scope keys of ``metadata`` whose values are identifiers (strings, or lists of strings)."""
    out: dict[str, Any] = {}
    for k in SCOPE_KEYS:
        v = (metadata or {}).get(k)
        if isinstance(v, str) or (isinstance(v, list) and v and all(isinstance(x, str) for x in v)):
            out[k] = v
    return out


CONTENT_EVENTS = frozenset({ev.MEMORY_ADDED, ev.MEMORY_UPDATED, ev.MEMORY_MERGED, ev.MEMORY_RESTORED})
# events that change one memory's state; erasures (``erasure_of``) are folded too, but views purge on them
MEMORY_EVENTS = CONTENT_EVENTS | {ev.MEMORY_STATE_CHANGED, ev.MEMORY_TAGGED, ev.MEMORY_DELETED}
ERASURE_EVENTS = frozenset({ev.SUBJECT_FORGOTTEN, ev.MEMORY_ERASED, ev.MEMORY_REDACTED})


@dataclass(slots=True)
class MemoryState:
    """One memory as of some offset."""

    memory_id: str
    cube: str
    text: str | None
    metadata: dict[str, Any]
    tags: list[str]
    state: str
    version: int  # number of events that changed this memory
    created_offset: int
    updated_offset: int
    created_at: str
    updated_at: str
    created_by: str
    updated_by: str
    subject: str | None = None
    sealed: bool = False
    forgotten: bool = False
    sources: list[str] = field(default_factory=list)
    merged_into: str | None = None
    exists: bool = True
    event_offsets: list[int] = field(default_factory=list)
    subjects: list[str] = field(default_factory=list)  # every data subject whose key the content needs
    derived_from: list[str] = field(default_factory=list)  # lineage: memories the content was derived from
    keys: list[dict[str, str]] = field(default_factory=list)  # the key components of the current content
    deleted: bool = False  # a memory.deleted tombstone is its latest word (restore can bring it back)
    erased: bool = False  # erased: deleted and its keys destroyed, for good

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.memory_id,
            "cube": self.cube,
            "text": self.text,
            "metadata": self.metadata,
            "tags": self.tags,
            "state": self.state,
            "version": self.version,
            "created_offset": self.created_offset,
            "updated_offset": self.updated_offset,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "created_by": self.created_by,
            "updated_by": self.updated_by,
            "subject": self.subject,
            "sealed": self.sealed,
            "forgotten": self.forgotten,
            "sources": self.sources,
            "merged_into": self.merged_into,
            "exists": self.exists,
            "provenance": self.event_offsets,
            "subjects": self.subjects,
            "derived_from": self.derived_from,
            "deleted": self.deleted,
            "erased": self.erased,
        }


@dataclass(frozen=True, slots=True)
class SealedSource:
    """What a derived memory inherits from a source that is not (yet) a folded memory: its subjects
    and key components (``MemoryState`` has the same two fields)."""

    subjects: list[str]
    keys: list[dict[str, str]]


def merged_metadata(sources: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The metadata a memory derived from several sources inherits (its scope: ``user_id``,
    ``agent_id``, ``run_id`` and any other key), so scoped searches keep finding it.

    Per key, over the sources in order: a value all sources that have the key agree on is kept as
    it is; conflicting values become the list of the distinct values, in source order (a filter
    for any one of them still matches, since a list-valued field matches each of its elements).
    Values that are lists themselves are flattened into that list.
    """
    seen: dict[str, list[Any]] = {}
    listed: set[str] = set()  # keys some source already holds a list under
    for meta in sources:
        for key, value in (meta or {}).items():
            values = seen.setdefault(key, [])
            if isinstance(value, list):
                listed.add(key)
            for v in value if isinstance(value, list) else [value]:
                if v not in values:
                    values.append(v)
    return {k: v if len(v) > 1 or k in listed else v[0] for k, v in seen.items()}


def content_keys(payload: dict[str, Any]) -> list[dict[str, str]]:
    """The key components a content payload is sealed under (none for plaintext)."""
    sealed = payload.get("sealed")
    if not isinstance(sealed, dict):
        return []
    if isinstance(sealed.get("keys"), list):
        return [dict(k) for k in sealed["keys"] if isinstance(k, dict)]
    if isinstance(sealed.get("subject"), str) and isinstance(sealed.get("key_id"), str):
        return [{"scope": "subject", "id": sealed["subject"], "key_id": sealed["key_id"]}]
    return []


def content_subjects(payload: dict[str, Any]) -> list[str]:
    """The data subjects a content payload is sealed under (a v1 seal names one, a v2 seal any number)."""
    sealed = payload.get("sealed")
    if not isinstance(sealed, dict):
        subject = payload.get("subject")
        return [subject] if isinstance(subject, str) else []
    if isinstance(sealed.get("keys"), list):
        return [k["id"] for k in sealed["keys"] if isinstance(k, dict) and k.get("scope") == "subject"]
    subject = sealed.get("subject")
    return [subject] if isinstance(subject, str) else []


@dataclass(frozen=True, slots=True)
class Erasure:
    """What an erasure event makes unreadable: subjects' rows and the listed memories, in every
    version written before ``offset`` (the erasure event's; a redaction's masked version follows it)."""

    subjects: tuple[str, ...]
    memory_ids: tuple[str, ...]
    offset: int = 1 << 62


def erasure_of(event: Event) -> Erasure | None:
    """The erasure an (upcast) event records, or None. Views purge every stored row of what it names:

    * ``subject.forgotten``: the subject's rows and every memory it lists (the derived memories
      sealed under the subject's key);
    * ``memory.erased``: the erased memories and the memories derived from them;
    * ``memory.redacted``: every earlier version of the memory and the memories derived from it
      (the masked version follows as ``memory.restored``).
    """
    p = event.payload
    if event.type == ev.SUBJECT_FORGOTTEN:
        return Erasure((p["subject"],), tuple(p.get("memory_ids", ())), event.offset)
    if event.type == ev.MEMORY_ERASED:
        ids = (*p["memory_ids"], *p.get("derived_memory_ids", ()))
        return Erasure((), tuple(dict.fromkeys(ids)), event.offset)
    if event.type == ev.MEMORY_REDACTED:
        return Erasure((), tuple(dict.fromkeys((p["memory_id"], *p.get("derived_memory_ids", ())))), event.offset)
    return None


def _content(payload: dict[str, Any], opener: Opener | None) -> tuple[str | None, dict[str, Any] | None, bool, bool]:
    """(text, metadata or None if unchanged, sealed, forgotten) of a content payload."""
    if "text" in payload:
        return payload["text"], payload.get("metadata"), False, False
    sealed = payload.get("sealed")
    if sealed is None:
        return None, payload.get("metadata"), False, False
    opened = opener(sealed) if opener else None
    if opened is None:
        return None, payload.get("metadata"), True, True
    return opened.get("text"), opened.get("metadata", payload.get("metadata")), True, False


def apply_event(states: dict[str, MemoryState], event: Event, opener: Opener | None = None) -> list[str]:
    """Apply one (upcast) event to ``states`` in place; return the ids of memories it changed."""
    t, p = event.type, event.payload
    if t == ev.MEMORY_ADDED or t == ev.MEMORY_MERGED:
        mid = p["memory_id"]
        text, meta, sealed, forgotten = _content(p, opener)
        subjects = content_subjects(p)
        states[mid] = MemoryState(
            memory_id=mid,
            cube=event.stream,
            text=text,
            metadata=dict(meta or {}),
            tags=list(p.get("tags", [])),
            state=p.get("state", "generated"),
            version=1,
            created_offset=event.offset,
            updated_offset=event.offset,
            created_at=event.time,
            updated_at=event.time,
            created_by=event.actor,
            updated_by=event.actor,
            subject=subjects[0] if subjects else None,
            sealed=sealed,
            forgotten=forgotten,
            sources=list(p.get("sources", [])),
            event_offsets=[event.offset],
            subjects=subjects,
            derived_from=list(p.get("derived_from", p.get("sources", []))),
            keys=content_keys(p),
        )
        changed = [mid]
        if t == ev.MEMORY_MERGED:
            for src in p["sources"]:
                s = states.get(src)
                if s is not None:
                    states[src] = _touch(s, event, state="merged", merged_into=mid)
                    changed.append(src)
        return changed
    if t == ev.MEMORY_ERASED:
        return _erase(states, event)
    if t in (
        ev.MEMORY_UPDATED,
        ev.MEMORY_RESTORED,
        ev.MEMORY_STATE_CHANGED,
        ev.MEMORY_TAGGED,
        ev.MEMORY_DELETED,
        ev.MEMORY_REDACTED,
    ):
        mid = p["memory_id"]
        s = states.get(mid)
        if t == ev.MEMORY_RESTORED:
            return _restore(states, event, s, opener)
        if s is None:
            return []
        if t == ev.MEMORY_UPDATED:
            text, meta, sealed, forgotten = _content(p, opener)
            subjects = content_subjects(p) or s.subjects  # a plaintext update keeps the memory's subjects
            states[mid] = _touch(
                s,
                event,
                text=text,
                metadata=dict(meta) if meta is not None else s.metadata,
                sealed=sealed,
                forgotten=forgotten,
                subjects=subjects,
                subject=subjects[0] if subjects else None,
                derived_from=list(p.get("derived_from", s.derived_from)),
                keys=content_keys(p) or s.keys,
            )
        elif t == ev.MEMORY_STATE_CHANGED:
            states[mid] = _touch(s, event, state=p["to"])
        elif t == ev.MEMORY_DELETED:
            states[mid] = _touch(s, event, exists=False, deleted=True)
        elif t == ev.MEMORY_REDACTED:  # the earlier text is gone; the masked version follows
            states[mid] = _touch(s, event, text=None, forgotten=True)
            _unreadable(states, p.get("derived_memory_ids", ()))
        elif t == ev.MEMORY_TAGGED:
            tags = [x for x in s.tags if x not in set(p.get("remove", []))]
            tags += [x for x in p.get("add", []) if x not in tags]
            states[mid] = _touch(s, event, tags=tags)
        return [mid]
    return []


def _unreadable(states: dict[str, MemoryState], memory_ids: Iterable[str]) -> list[str]:
    """Memories derived from erased content: sealed under a destroyed key, so no longer readable."""
    out = []
    for mid in memory_ids:
        s = states.get(mid)
        if s is not None and s.text is not None:
            states[mid] = replace(s, text=None, forgotten=True)
            out.append(mid)
    return out


def _erase(states: dict[str, MemoryState], event: Event) -> list[str]:
    """``memory.erased``: the memories are gone for good, and what was derived from them is unreadable."""
    p = event.payload
    changed = []
    for mid in p["memory_ids"]:
        s = states.get(mid)
        if s is not None:
            states[mid] = _touch(s, event, exists=False, erased=True, deleted=True, text=None, forgotten=True)
            changed.append(mid)
    return changed + _unreadable(states, p.get("derived_memory_ids", ()))


def _restore(states: dict[str, MemoryState], event: Event, s: MemoryState | None, opener: Opener | None) -> list[str]:
    """``memory.restored``: the memory's state as of an earlier offset (or gone), written anew."""
    p = event.payload
    mid = p["memory_id"]
    if not p.get("exists", True):
        if s is not None:
            states[mid] = _touch(s, event, exists=False)
        return [mid]
    if s is not None and s.erased:
        return []  # an erased memory never comes back (restore refuses; an old event cannot do it either)
    text, meta, sealed, forgotten = _content(p, opener)
    if s is None:
        s = MemoryState(
            mid,
            event.stream,
            None,
            {},
            [],
            "generated",
            0,
            event.offset,
            event.offset,
            event.time,
            event.time,
            event.actor,
            event.actor,
        )
    subjects = content_subjects(p)
    states[mid] = _touch(
        s,
        event,
        text=text,
        metadata=dict(meta or {}),
        tags=list(p.get("tags", s.tags)),
        state=p.get("state", s.state),
        sealed=sealed,
        forgotten=forgotten,
        exists=True,
        deleted=False,
        subjects=subjects,
        subject=subjects[0] if subjects else None,
        keys=content_keys(p),
    )
    return [mid]


def _touch(s: MemoryState, event: Event, **changes: Any) -> MemoryState:
    return replace(
        s,
        version=s.version + 1,
        updated_offset=event.offset,
        updated_at=event.time,
        updated_by=event.actor,
        event_offsets=[*s.event_offsets, event.offset],
        **changes,
    )


def fold(events: Iterable[Event], opener: Opener | None = None) -> dict[str, MemoryState]:
    """Fold events (in offset order) into the state of every memory they touch."""
    states: dict[str, MemoryState] = {}
    for e in events:
        apply_event(states, e, opener)
    return states


def history(memory_id: str, events: Iterable[Event], opener: Opener | None = None) -> list[MemoryState]:
    """Every version of one memory, oldest first (one entry per event that changed it)."""
    states: dict[str, MemoryState] = {}
    versions: list[MemoryState] = []
    for e in events:
        if memory_id in apply_event(states, e, opener) and memory_id in states:
            versions.append(states[memory_id])
    return versions
