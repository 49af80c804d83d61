"""``Ledger``: the Python API over any ``Log`` (memories, history, lifecycle, as-of reads)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ledger import events as ev
from ledger.config import Config
from ledger.errors import ConcurrencyConflict, InvalidRequest, NotFound, StateError
from ledger.events import Event, NewEvent, iso_to_us
from ledger.governance.cipher import KeyRef
from ledger.governance.holds import HOLDS_STREAM, read_holds, refuse
from ledger.lifecycle import check_state, check_transition, check_writable
from ledger.listing import Page, check_limit, page_of
from ledger.log import Log
from ledger.memory_state import MemoryState, Opener, SealedSource, fold, history, merged_metadata, scope_of
from ledger.rules.content import check_metadata, check_text, is_blank
from ledger.rules.filters import Filter, parse_filter, record_of
from ledger.rules.names import check_name
from ledger.rules.timepoints import parse_point
from ledger.schema_registry import SchemaRegistry, default_registry

if TYPE_CHECKING:
    from ledger.duplicates import DuplicateIndex
    from ledger.memos.messages import Ingested

MAX_TEXT = 1_000_000
MAX_REASON = 2000


@dataclass(frozen=True, slots=True)
class Written:
    """Result of a write: the memory id and the offset of the event that recorded it."""

    id: str
    offset: int
    event_id: str
    duplicate: bool = False  # an add that wrote nothing: ``id`` is the existing memory it duplicates
    partition: int | None = None  # on a partitioned ledger: the partition ``offset`` belongs to

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "offset": self.offset, "event_id": self.event_id}
        if self.duplicate:
            out["duplicate"] = True
        if self.partition is not None:
            out["partition"] = self.partition
        return out


@dataclass(frozen=True, slots=True)
class Deleted:
    """Result of a (bulk) delete: the memories tombstoned, in one atomic batch."""

    memory_ids: list[str]
    offsets: list[int]
    correlation_id: str | None = None
    partition: int | None = None  # on a partitioned ledger: the partition ``offsets`` belong to

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "deleted": self.memory_ids,
            "count": len(self.memory_ids),
            "offsets": self.offsets,
            "correlation_id": self.correlation_id,
        }
        if self.partition is not None:
            out["partition"] = self.partition
        return out


def new_memory_id() -> str:
    """A fresh memory id."""
    return "mem_" + os.urandom(8).hex()


class Sealer(Protocol):
    """What a ``Ledger`` seals with (``ledger.governance.cipher.KeyRing``, or a test stand-in)."""

    seals_every_memory: bool  # every memory gets a key of its own (else only subjects' payloads are sealed)

    def subject_ref(self, subject: str) -> KeyRef: ...

    def memory_ref(self, memory_id: str) -> KeyRef: ...

    def seal_with(self, refs: Sequence[KeyRef], content: dict[str, Any]) -> dict[str, Any]: ...

    def seal_under(self, subjects: Sequence[str], content: dict[str, Any]) -> dict[str, Any]: ...

    def open(self, sealed: dict[str, Any]) -> dict[str, Any] | None: ...

    def memory_keys(self, key_ids: Sequence[str]) -> dict[str, bytes]: ...

    def install_memory_keys(self, keys: Sequence[tuple[str, bytes]]) -> int: ...


class Ledger:
    """Memory operations as events on a ``Log``; every read can be answered as of an offset."""

    def __init__(
        self,
        log: Log,
        registry: SchemaRegistry | None = None,
        opener: Opener | None = None,
        sealer: Sealer | None = None,
        record_reads: bool = True,
        config: Config | None = None,
        erasure_participants: Callable[[Ledger, Path | None], list[Any]] | None = None,
    ):
        self.log = log
        self.registry = registry or default_registry()
        self.opener = opener
        self.sealer = sealer  # object with seal_under(subjects, content: dict) -> dict (see governance)
        self.record_reads = record_reads
        self.config = config  # the data directory's configuration (None for a ledger built in code)
        # builds the views and caches an erasure must purge (set by ledger.factory.open_ledger)
        self.erasure_participants = erasure_participants
        # the log files of this ledger's other partitions (set by a partitioned ledger): an erasure's
        # scrub of the data directory only checkpoints them, as it does this ledger's own log
        self.sibling_logs: tuple[Path, ...] = ()
        self._duplicates: DuplicateIndex | None = None

    def participants_for_erasure(self, data_dir: Path | None) -> list[Any]:
        """The views and caches of ``data_dir`` that an erasure must purge and check."""
        if self.erasure_participants is None:
            return []
        return self.erasure_participants(self, data_dir)

    # -- events --------------------------------------------------------------------------
    def events(self, start: int = 0, end: int | None = None) -> Iterator[Event]:
        """Events ``start..end`` (inclusive), upcast to their latest schema version."""
        up = self.registry.upcast
        return (up(e) for e in self.log.read(start, end))

    def events_between(self, since: str | int | None = None, until: str | int | None = None) -> Iterator[Event]:
        """Events whose time lies in ``[since, until]`` (ISO-8601 strings or microseconds), upcast."""
        lo = 0
        if since is not None:
            ts = iso_to_us(since) if isinstance(since, str) else since
            lo = self.log.offset_at(ts - 1) + 1
        hi = None
        if until is not None:
            hi = self.log.offset_at(iso_to_us(until) if isinstance(until, str) else until)
            if hi < lo:
                return iter(())
        return self.events(lo, hi)

    def append(self, events: Sequence[NewEvent], expected_versions: dict[str, int] | None = None) -> list[Event]:
        """Append raw events (validated against their schemas)."""
        return self.log.append(events, expected_versions)

    def head(self) -> int:
        """Offset of the last event (-1 when empty)."""
        return self.log.head()

    def resolve_as_of(self, as_of: int | str | None) -> int:
        """Turn ``None`` (head), an offset, or an ISO-8601 time into an offset."""
        head = self.log.head()
        if as_of is None:
            return head
        kind, value = parse_point(as_of, "as-of")
        if kind == "time":
            return self.log.offset_at(value)
        as_of = value
        if as_of < -1 or as_of > head:
            raise InvalidRequest(f"offset {as_of} is out of range (head is {head})")
        return as_of

    # -- cubes ---------------------------------------------------------------------------
    def cube_exists(self, cube: str) -> bool:
        return self.log.stream_version(cube) > 0

    def create_cube(
        self,
        cube: str,
        owner: str,
        visibility: str = "private",
        metadata: dict[str, Any] | None = None,
        embedder: str | None = None,
        llm: str | None = None,
    ) -> Event:
        """Create a cube; raises ``ConcurrencyConflict`` if it already exists."""
        _check_cube_name(cube)
        check_metadata(metadata)
        payload: dict[str, Any] = {"cube": cube, "owner": owner, "visibility": visibility, "metadata": metadata or {}}
        if embedder:
            payload["embedder"] = embedder
        if llm:
            payload["llm"] = llm
        return self.log.append([NewEvent(cube, ev.CUBE_CREATED, payload, owner)], {cube: 0})[0]

    # -- writes --------------------------------------------------------------------------
    def content_fields(
        self,
        text: str,
        metadata: dict[str, Any] | None,
        memory_id: str,
        subjects: Sequence[str] = (),
        derived_from: Sequence[MemoryState | SealedSource] = (),
        keys: Sequence[dict[str, str]] | None = None,
    ) -> dict[str, Any]:
        """The content fields of a memory event for ``memory_id``: sealed, or plaintext.

        With a key ring that seals every memory (``sealer.seals_every_memory``), the content is
        sealed under ``keys`` (an existing memory's current components, for a new version) or a new
        key of the memory's own, plus the keys of ``subjects`` and every component of the memories
        it was ``derived_from``: erasing any source, or forgetting any subject, makes it unreadable.
        Otherwise the content is sealed under the subjects (its own and its sources') if there are
        any, and plaintext if not.
        """
        _check_content(text, metadata)
        names = sorted({*subjects, *(x for d in derived_from for x in d.subjects)})
        content = {"text": text, "metadata": metadata or {}}
        sealer = self.sealer
        if sealer is not None and sealer.seals_every_memory:
            refs = [KeyRef.from_dict(k) for k in keys] if keys else [sealer.memory_ref(memory_id)]
            refs += [sealer.subject_ref(x) for x in names]
            refs += [KeyRef.from_dict(k) for d in derived_from for k in d.keys]
            return _with_scope({"sealed": sealer.seal_with(refs, content)}, metadata)
        if not names:
            out: dict[str, Any] = {"text": text}
            if metadata is not None:
                out["metadata"] = metadata
            return out
        if sealer is None:
            raise InvalidRequest("this ledger has no key store configured; cannot store data-subject payloads")
        return _with_scope({"sealed": sealer.seal_under(names, content)}, metadata)

    def add(
        self,
        cube: str,
        text: str,
        actor: str,
        metadata: dict[str, Any] | None = None,
        tags: Sequence[str] | None = None,
        subject: str | None = None,
        memory_id: str | None = None,
        event_id: str | None = None,
        state: str = "generated",
        source: str | None = None,
        allow_duplicate: bool = False,
    ) -> Written:
        """Add a memory to ``cube`` (created on first use, owned by ``actor``).

        An exact or near duplicate of a current memory of the same cube, scope (``user_id``,
        ``agent_id``, ``run_id``) and subject (``ledger.duplicates``) is a no-op that returns the
        existing memory (``Written.duplicate``); ``allow_duplicate=True`` (or an explicit
        ``memory_id``) writes it anyway."""
        _check_cube_name(cube)
        if check_state(state) == "merged":
            raise InvalidRequest("a memory cannot be added as merged; it becomes merged only through merge()")
        mid = memory_id or new_memory_id()
        payload = {
            "memory_id": mid,
            "tags": list(tags or []),
            "state": state,
            **self.content_fields(text, metadata, mid, [] if subject is None else [subject]),
        }
        if "metadata" not in payload:
            payload["metadata"] = {}
        if source:
            payload["source"] = source
        new = NewEvent(cube, ev.MEMORY_ADDED, payload, actor)
        if event_id:
            new.event_id = event_id
        for _ in range(5):
            if event_id and (stored := self.log.get_by_id(event_id)) is not None:
                return Written(stored.payload["memory_id"], stored.offset, stored.event_id)
            version = self.log.stream_version(cube)
            batch = [new]
            if version == 0:
                batch = [
                    NewEvent(
                        cube,
                        ev.CUBE_CREATED,
                        {"cube": cube, "owner": actor, "visibility": "private", "metadata": {}},
                        actor,
                    ),
                    new,
                ]
            if memory_id and self.memory_exists(memory_id):
                raise InvalidRequest(f"memory id {memory_id!r} already exists")
            if not allow_duplicate and not memory_id and version > 0:
                same = self.duplicates().find(cube, text, metadata, subject)
                if same is not None:
                    at = next(iter(self.log.read(same.updated_offset, same.updated_offset)))
                    return Written(same.memory_id, at.offset, at.event_id, duplicate=True)
            try:
                written = self.log.append(batch, {cube: version} if version == 0 else None)
            except ConcurrencyConflict:
                continue  # the cube was created concurrently; go again
            return Written(mid, written[-1].offset, written[-1].event_id)
        raise ConcurrencyConflict(cube, 0, self.log.stream_version(cube))

    def ingest(
        self,
        cube: str,
        messages: Sequence[Any],
        actor: str,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        session_id: str | None = None,
        subject: str | None = None,
        batch_id: str | None = None,
    ) -> Ingested:
        """Append conversation ``messages`` (``{role, content, name?, timestamp?}`` dicts or
        ``MessageIn``) to ``cube`` verbatim as one atomic batch of ``message.added`` events, scoped by
        ``user_id`` / ``agent_id`` / ``run_id``; returns as soon as they are durable. Extraction runs
        later, as a consumer of the log (``ledger.memos.extraction``). ``batch_id`` makes a retry
        write nothing new."""
        from ledger.memos.messages import ingest

        return ingest(self, cube, messages, actor, user_id, agent_id, run_id, session_id, subject, batch_id)

    def duplicates(self) -> DuplicateIndex:
        """The index ``add`` finds duplicates with (built on first use, kept up to date from the log)."""
        if self._duplicates is None:
            from ledger.duplicates import DuplicateIndex

            up = self.registry.upcast
            self._duplicates = DuplicateIndex(lambda c, v: (up(e) for e in self.log.read_stream(c, v)), self.opener)
        return self._duplicates

    def memory_exists(self, memory_id: str) -> bool:
        """Whether this log holds the event that created memory ``memory_id``."""
        return any(
            e.type in (ev.MEMORY_ADDED, ev.MEMORY_MERGED) and e.payload.get("memory_id") == memory_id
            for e in self.log.read_refs(memory_id)
        )

    def _write_memory(self, memory_id: str, make: Any, expected_version: int | None) -> Written:
        """Optimistic write on one memory: retry on unrelated cube writes, fail on real conflicts."""
        for _ in range(20):
            state = self.get(memory_id, record_read=False)
            if expected_version is not None and state.version != expected_version:
                raise ConcurrencyConflict(f"memory {memory_id}", expected_version, state.version)
            new = make(state)
            cube_version = self.log.stream_version(state.cube)
            try:
                written = self.log.append([new], {state.cube: cube_version})
            except ConcurrencyConflict:
                if expected_version is None:
                    expected_version = state.version
                continue
            return Written(memory_id, written[0].offset, written[0].event_id)
        raise ConcurrencyConflict(f"memory {memory_id}", expected_version or 0, -1)

    def update(
        self,
        memory_id: str,
        text: str,
        actor: str,
        metadata: dict[str, Any] | None = None,
        expected_version: int | None = None,
        reason: str | None = None,
    ) -> Written:
        """Replace a memory's text (a new version); frozen, merged and archived memories refuse."""

        def make(state: MemoryState) -> NewEvent:
            if not state.exists:
                raise NotFound(f"memory {memory_id} does not exist")
            check_writable(memory_id, state.state)
            if state.forgotten:
                raise StateError(f"memory {memory_id} belongs to a forgotten subject")
            content = self.content_fields(text, metadata, memory_id, state.subjects, keys=state.keys)
            payload = {"memory_id": memory_id, **content}
            if reason:
                payload["reason"] = reason
            return NewEvent(state.cube, ev.MEMORY_UPDATED, payload, actor)

        return self._write_memory(memory_id, make, expected_version)

    def change_state(
        self, memory_id: str, to: str, actor: str, reason: str | None = None, expected_version: int | None = None
    ) -> Written:
        """Move a memory through its lifecycle; illegal moves raise ``StateError``."""
        check_state(to)

        def make(state: MemoryState) -> NewEvent:
            check_transition(memory_id, state.state, to)
            if to == "merged":
                raise StateError(
                    f"memory {memory_id} can become merged only through a merge, which records "
                    "the merged memory and its provenance (memledger merge / Ledger.merge)"
                )
            payload = {"memory_id": memory_id, "from": state.state, "to": to}
            if reason:
                payload["reason"] = reason
            return NewEvent(state.cube, ev.MEMORY_STATE_CHANGED, payload, actor)

        return self._write_memory(memory_id, make, expected_version)

    def merge(
        self,
        sources: Sequence[str],
        text: str,
        actor: str,
        reason: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Written:
        """Merge memories of one cube into a new memory; the sources move to ``merged``."""
        if len(set(sources)) < 2:
            raise InvalidRequest("merge needs at least two distinct source memories")
        for _ in range(20):
            states = [self.get(s, record_read=False) for s in sources]
            cubes = {s.cube for s in states}
            if len(cubes) != 1:
                raise InvalidRequest(f"merge sources span several cubes: {sorted(cubes)}")
            cube = cubes.pop()
            version = self.log.stream_version(cube)
            for s in states:
                check_transition(s.memory_id, s.state, "merged")
            # the merged text derives from every source: it is sealed under all their keys
            mid = new_memory_id()
            # and inherits their scope (merged_metadata), which explicit metadata overrides key by key
            meta = {**merged_metadata(s.metadata for s in states), **(metadata or {})}
            payload = {
                "memory_id": mid,
                "sources": list(dict.fromkeys(sources)),
                **self.content_fields(text, meta, mid, derived_from=states),
            }
            if reason:
                payload["reason"] = reason
            # states were read before ``version``; re-check none changed since, under the cube version
            if [self.get(s, record_read=False).version for s in sources] != [s.version for s in states]:
                continue
            try:
                written = self.log.append([NewEvent(cube, ev.MEMORY_MERGED, payload, actor)], {cube: version})
            except ConcurrencyConflict:
                continue
            return Written(mid, written[0].offset, written[0].event_id)
        raise ConcurrencyConflict(f"merge of {', '.join(sources)}", 0, -1)

    def delete(
        self, memory_id: str, actor: str, reason: str | None = None, expected_version: int | None = None
    ) -> Written:
        """Delete a memory: a ``memory.deleted`` tombstone. It leaves every view and search at the
        head; reads as of an earlier offset still see it, and ``restore`` can bring it back (its
        sealed text stays in the log: ``erase`` destroys it). Frozen memories refuse, and so do
        memories under a legal hold (the refused attempt is recorded)."""
        cube = self.get(memory_id, record_read=False).cube
        return self._delete(
            cube, lambda: [self.get(memory_id, record_read=False)], actor, reason, expected_version=expected_version
        ).single()

    def delete_where(
        self, cube: str, actor: str, where: dict[str, Any] | None = None, reason: str | None = None
    ) -> Deleted:
        """Delete every memory of ``cube`` that matches ``where`` (the filter grammar of
        ``ledger.rules.filters``; none: the whole cube) in one atomic batch: all or nothing."""
        flt = parse_filter(where, "where")
        if not self.cube_exists(cube):
            raise NotFound(f"cube {cube!r} not found")

        def select() -> list[MemoryState]:
            return [s for _, s in sorted(self.cube_memories(cube).items()) if flt.matches(record_of(s))]

        return self._delete(cube, select, actor, reason, where=where).deleted

    def _delete(
        self,
        cube: str,
        select: Callable[[], list[MemoryState]],
        actor: str,
        reason: str | None,
        where: dict[str, Any] | None = None,
        expected_version: int | None = None,
    ) -> _DeleteResult:
        """Tombstone what ``select()`` returns, guarded by the cube's and the holds' versions read
        before it (a write or a hold in between makes the append conflict, and we look again)."""
        _check_reason(reason)
        if not actor:
            raise InvalidRequest("delete needs the actor who deletes")
        for _ in range(20):
            version = self.log.stream_version(cube)
            holds = read_holds(self.log)
            states = select()
            if expected_version is not None and states and states[0].version != expected_version:
                raise ConcurrencyConflict(f"memory {states[0].memory_id}", expected_version, states[0].version)
            frozen = [m.memory_id for m in states if m.state == "frozen"]
            if frozen:
                raise StateError(f"frozen memories are read-only and cannot be deleted: {', '.join(frozen)}")
            held = holds.covering(states)
            if held:
                raise refuse(self.log, held, "delete", actor, [m.memory_id for m in states], cube=cube)
            if not states:
                return _DeleteResult(Deleted([], []))
            correlation = "delete-" + os.urandom(8).hex() if len(states) > 1 else None
            batch = []
            for m in states:
                payload: dict[str, Any] = {"memory_id": m.memory_id}
                if reason:
                    payload["reason"] = reason
                if where:
                    payload["where"] = where
                batch.append(NewEvent(cube, ev.MEMORY_DELETED, payload, actor, correlation_id=correlation))
            try:
                written = self.log.append(batch, {cube: version, HOLDS_STREAM: holds.version})
            except ConcurrencyConflict:
                continue
            ids = [m.memory_id for m in states]
            return _DeleteResult(Deleted(ids, [e.offset for e in written], correlation), written)
        raise ConcurrencyConflict(cube, -1, self.log.stream_version(cube))

    def link(self, source: str, target: str, relation: str, actor: str) -> Written:
        """Record an explicit, directed edge between two memories."""
        s = self.get(source, record_read=False)
        self.get(target, record_read=False)
        return self.append_link(s, target, relation, actor)

    def append_link(self, source: MemoryState, target: str, relation: str, actor: str) -> Written:
        """Record the edge ``source -> target`` on the source's cube (both already checked to exist)."""
        s = source
        written = self.log.append(
            [NewEvent(s.cube, ev.MEMORY_LINKED, {"source": s.memory_id, "target": target, "relation": relation}, actor)]
        )
        return Written(s.memory_id, written[0].offset, written[0].event_id)

    # -- reads ---------------------------------------------------------------------------
    def memory_events(self, memory_id: str, as_of: int | str | None = None) -> list[Event]:
        """Every event that references ``memory_id``, up to ``as_of``, upcast."""
        end = self.resolve_as_of(as_of)
        up = self.registry.upcast
        return [up(e) for e in self.log.read_refs(memory_id, end)]

    def get(
        self, memory_id: str, as_of: int | str | None = None, actor: str | None = None, record_read: bool | None = None
    ) -> MemoryState:
        """The memory as of ``as_of`` (default head). Raises ``NotFound`` if it did not exist then."""
        end = self.resolve_as_of(as_of)
        state = fold(self.memory_events(memory_id, end), self.opener).get(memory_id)
        if state is None or not state.exists:
            when = "" if as_of is None else f" as of offset {end}"
            if state is not None and state.erased:
                raise NotFound(f"memory {memory_id} was erased at offset {state.updated_offset}{when}")
            if state is not None and state.deleted:
                raise NotFound(f"memory {memory_id} was deleted at offset {state.updated_offset}{when}")
            raise NotFound(f"memory {memory_id} not found{when}")
        self._record_read(state.cube, [memory_id], "get", actor, record_read, as_of=None if as_of is None else end)
        return state

    def history(
        self, memory_id: str, as_of: int | str | None = None, actor: str | None = None, record_read: bool | None = None
    ) -> list[MemoryState]:
        """Every version of a memory (one per event that changed it), oldest first."""
        end = self.resolve_as_of(as_of)
        versions = history(memory_id, self.memory_events(memory_id, end), self.opener)
        if not versions:
            raise NotFound(f"memory {memory_id} not found" + ("" if as_of is None else f" as of offset {end}"))
        self._record_read(
            versions[-1].cube, [memory_id], "history", actor, record_read, as_of=None if as_of is None else end
        )
        return versions

    def cube_memories(self, cube: str, as_of: int | str | None = None) -> dict[str, MemoryState]:
        """All memories of a cube as of an offset (a fold of the cube's stream)."""
        end = self.resolve_as_of(as_of)
        up = self.registry.upcast
        return {
            k: v for k, v in fold((up(e) for e in self.log.read_stream(cube, 1, end)), self.opener).items() if v.exists
        }

    def list_memories(
        self,
        cube: str,
        where: dict[str, Any] | None = None,
        as_of: int | str | None = None,
        limit: int = 100,
        after: str | None = None,
        actor: str | None = None,
        record_read: bool | None = None,
        states_at: Callable[[str, int, Filter], Iterable[MemoryState]] | None = None,
    ) -> Page:
        """One page of the memories of ``cube`` as of ``as_of`` (default head) that match ``where``
        (the filter grammar of ``ledger.rules.filters``), ordered by creation offset then id;
        continue with ``after=page.next_cursor``. Deleted and erased memories are not listed. The
        read is audited (``memory.read``, operation ``list``) like ``get``.

        ``states_at(cube, offset, filter)`` answers from a view instead of folding the cube's
        stream (``ViewSet.list_memories``: the record view, through its scope index)."""
        flt = parse_filter(where, "where")
        check_limit(limit)
        if not self.cube_exists(cube):
            raise NotFound(f"cube {cube!r} not found")
        end = self.resolve_as_of(as_of)
        found = self.cube_memories(cube, end).values() if states_at is None else states_at(cube, end, flt)
        page = page_of(cube, end, found, flt, limit, after)
        if page.items:
            ids = [m.memory_id for m in page.items]
            query = json.dumps(where, sort_keys=True, ensure_ascii=False)[:100_000] if where else None
            self._record_read(cube, ids, "list", actor, record_read, query=query, as_of=None if as_of is None else end)
        return page

    def _record_read(
        self,
        cube: str,
        ids: list[str],
        operation: str,
        actor: str | None,
        record_read: bool | None,
        query: str | None = None,
        as_of: int | None = None,
    ) -> None:
        if record_read is False or (record_read is None and (not self.record_reads or actor is None)):
            return
        payload: dict[str, Any] = {"memory_ids": ids, "operation": operation, "as_of": as_of}
        if query is not None:
            payload["query"] = query
        self.log.append([NewEvent(cube, ev.MEMORY_READ, payload, actor or "anonymous")])


@dataclass(frozen=True, slots=True)
class _DeleteResult:
    deleted: Deleted
    events: list[Event] = field(default_factory=list)

    def single(self) -> Written:
        e = self.events[0]
        return Written(e.payload["memory_id"], e.offset, e.event_id)


def _with_scope(fields: dict[str, Any], metadata: dict[str, Any] | None) -> dict[str, Any]:
    """A sealed payload carries its scope ids in plaintext (``memory_state.scope_of``)."""
    scope = scope_of(metadata)
    if scope:
        fields["metadata"] = scope
    return fields


def _check_reason(reason: str | None) -> None:
    if reason is not None and (not isinstance(reason, str) or len(reason) > MAX_REASON or is_blank(reason)):
        raise InvalidRequest(f"reason must be a non-blank string of at most {MAX_REASON} characters")


def _check_content(text: str, metadata: dict[str, Any] | None) -> None:
    check_text(text)
    if len(text) > MAX_TEXT:
        raise InvalidRequest(f"memory text is {len(text)} characters; the limit is {MAX_TEXT}")
    if metadata is not None and not isinstance(metadata, dict):
        raise InvalidRequest("metadata must be a JSON object")
    check_metadata(metadata)


def _check_cube_name(cube: str) -> None:
    """Cube names follow the one name grammar (``ledger.rules.names``); ``_system`` and the like are refused."""
    check_name(cube, "cube name")
