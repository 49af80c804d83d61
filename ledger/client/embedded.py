"""``EmbeddedClient``: the client API on a local data directory, without a server.

It has the methods of ``MemledgerClient`` and answers them with the same JSON shapes and the same
exception classes, so code moves between embedded and remote by changing the line that builds the
client. Every event names ``actor``. There is no access control beyond the data directory itself
(like the CLI: whoever can open the directory is inside the trust boundary), except that grants
and revocations still need ``actor`` to own the cube (or be an admin principal), and legal holds
and subject exports need ``actor`` to be an admin principal, as over HTTP.
"""

from __future__ import annotations

import hashlib
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ledger import events as ev
from ledger.access import AccessControl, Caller
from ledger.api import Ledger
from ledger.client.calls import Point
from ledger.client.models import JSON, Hit, Memory, Page, Written
from ledger.config import init_data_dir
from ledger.errors import AccessDenied, ConcurrencyConflict, InvalidRequest, NotFound, StateError
from ledger.events import NewEvent
from ledger.principals import PrincipalStore
from ledger.rules.content import BLANK_RULE, is_blank
from ledger.rules.filters import all_of
from ledger.service.event_filter import shown
from ledger.service.params import resolve_as_of
from ledger.timemachine import branch_merge
from ledger.timemachine.audit import AuditQuery, audit
from ledger.timemachine.branches import MAIN, Branches


def idempotent_event_id(actor: str, key: str) -> str:
    """The event id of a write under an idempotency key, namespaced by its actor (as the service does)."""
    return hashlib.sha256(f"{actor}\x00{key}".encode()).hexdigest()[:32]


def _point(as_of: Point | None) -> str | None:
    return None if as_of is None else str(as_of)


def memory_cube(ledger: Ledger, memory_id: str) -> str:
    """The cube of a memory that exists or once did (deleted or erased); ``NotFound`` for an id never written."""
    for e in ledger.log.read_refs(memory_id):
        if e.payload.get("memory_id") == memory_id and not e.stream.startswith("_"):
            return e.stream
    raise NotFound(f"memory {memory_id} not found")


def _on_branch(branch: str | None) -> bool:
    return branch is not None and branch != MAIN


class EmbeddedClient:
    """The client API over the ledger of ``data_dir`` (initialised on first use), acting as ``actor``."""

    def __init__(
        self, data_dir: str | Path, actor: str, ledger: Ledger | None = None, views_dir: str | Path | None = None
    ):
        """``ledger``: one already open on ``data_dir`` (one partition's, for ``PartitionedEmbeddedClient``,
        whose views live in ``views_dir``)."""
        from ledger.factory import open_ledger

        self.data_dir, _ = init_data_dir(data_dir)
        self.actor = actor
        self.ledger = ledger or open_ledger(self.data_dir)
        self.views_dir = Path(views_dir) if views_dir is not None else self.data_dir
        self._principals = PrincipalStore(self.data_dir)
        self._views: Any = None
        self._lock = threading.RLock()  # the views are one set of objects; calls run one at a time

    def __enter__(self) -> EmbeddedClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            if self._views is not None:
                self._views.close()
                self._views = None
            self.ledger.log.close()

    # -- helpers ------------------------------------------------------------------------------
    def _end(self, ledger: Ledger, as_of: Point | None) -> int | None:
        return resolve_as_of(ledger, _point(as_of))

    def _view_set(self) -> Any:
        if self._views is None:
            from projections.view_set import ViewSet

            self._views = ViewSet.open(self.ledger, self.views_dir)
        return self._views

    @contextmanager
    def _branches(self) -> Iterator[Branches]:
        b = Branches(self.ledger, is_admin=lambda name: name == self.actor and self._is_admin())
        try:
            yield b
        finally:
            b.close()

    def _extract(self) -> None:
        """Facts of the messages ingested so far, extracted before a read (as the CLI does)."""
        from ledger.memos.extraction.runtime import catch_up_before_reading

        catch_up_before_reading(self.ledger, lambda problem: warnings.warn(problem, RuntimeWarning, stacklevel=3))

    def _is_admin(self) -> bool:
        p = self._principals.get(self.actor)
        return bool(p and p.active and p.admin)

    def _access(self) -> tuple[AccessControl, Caller]:
        def exists(name: str) -> bool:
            p = self._principals.get(name)
            return p is not None and p.active

        access = AccessControl(self.ledger.log, principal_exists=exists)
        access.index.refresh()
        return access, Caller(self.actor, self._is_admin())

    def record_ledger(self, cube: str | None, memory_ids: Sequence[str]) -> Ledger:
        """The ledger a record about ``cube`` (or these memories) goes in (``ledger.mcp.audit``)."""
        return self.ledger

    def _memory_read(self, cube: str, ids: list[str], operation: str, as_of: int | None) -> None:
        payload = {"memory_ids": ids, "operation": operation, "as_of": as_of}
        self.ledger.log.append([NewEvent(cube, ev.MEMORY_READ, payload, self.actor)])

    # -- memories -----------------------------------------------------------------------------
    def add(
        self,
        cube: str,
        text: str,
        metadata: JSON | None = None,
        tags: Sequence[str] | None = None,
        subject: str | None = None,
        idempotency_key: str | None = None,
        branch: str | None = None,
        allow_duplicate: bool = False,
    ) -> Written:
        """Add a memory (the cube is created on first use); a repeated ``idempotency_key`` writes nothing,
        and so does a duplicate of a current memory unless ``allow_duplicate``."""
        with self._lock, self._branches() as b:
            led = b.ledger(branch) if _on_branch(branch) else self.ledger
            eid = None if idempotency_key is None else idempotent_event_id(self.actor, idempotency_key)
            if eid is not None and (stored := led.log.get_by_id(eid)) is not None:
                if stored.stream != cube or stored.type != ev.MEMORY_ADDED:
                    raise StateError("idempotency_key was already used for a different request")
                return Written(stored.payload["memory_id"], stored.offset, stored.event_id)
            w = led.add(
                cube,
                text,
                self.actor,
                metadata=metadata,
                tags=tags,
                subject=subject,
                event_id=eid,
                allow_duplicate=allow_duplicate,
            )
            return Written.from_dict(w.to_dict())

    def update(
        self,
        memory_id: str,
        text: str,
        metadata: JSON | None = None,
        expected_version: int | None = None,
        reason: str | None = None,
        branch: str | None = None,
    ) -> Written:
        """Write a new version of a memory (``expected_version``: fail on a concurrent change)."""
        with self._lock, self._branches() as b:
            led = b.ledger(branch) if _on_branch(branch) else self.ledger
            w = led.update(memory_id, text, self.actor, metadata, expected_version=expected_version, reason=reason)
            return Written.from_dict(w.to_dict())

    def get(self, memory_id: str, as_of: Point | None = None, branch: str | None = None) -> Memory:
        """A memory as of an offset or ISO-8601 time (default: now); the read is audited."""
        with self._lock, self._branches() as b:
            led = b.ledger(branch) if _on_branch(branch) else self.ledger
            state = led.get(memory_id, as_of=self._end(led, as_of), actor=self.actor, record_read=True)
            return Memory.from_dict(state.to_dict())

    def history(self, memory_id: str, as_of: Point | None = None) -> list[Memory]:
        """Every version of a memory, oldest first."""
        with self._lock:
            end = self._end(self.ledger, as_of)
            versions = self.ledger.history(memory_id, as_of=end, actor=self.actor, record_read=True)
            return [Memory.from_dict(v.to_dict()) for v in versions]

    def change_state(
        self, memory_id: str, to: str, reason: str | None = None, expected_version: int | None = None
    ) -> Written:
        """Move a memory through its lifecycle (generated, activated, archived, frozen)."""
        with self._lock:
            w = self.ledger.change_state(memory_id, to, self.actor, reason=reason, expected_version=expected_version)
            return Written.from_dict(w.to_dict())

    def merge(
        self, sources: Sequence[str], text: str, metadata: JSON | None = None, reason: str | None = None
    ) -> Written:
        """Merge memories of one cube into a new one; the sources become ``merged``."""
        with self._lock:
            w = self.ledger.merge(list(sources), text, self.actor, reason=reason, metadata=metadata)
            return Written.from_dict(w.to_dict())

    def link(self, source: str, target: str, relation: str) -> Written:
        """Record a directed edge between two memories."""
        with self._lock:
            return Written.from_dict(self.ledger.link(source, target, relation, self.actor).to_dict())

    def list_memories(
        self,
        cube: str,
        as_of: Point | None = None,
        state: str | None = None,
        limit: int = 100,
        after: str | None = None,
        where: JSON | None = None,
        branch: str | None = None,
    ) -> Page:
        """One page of a cube's memories matching ``where`` (the filter grammar), ordered by creation
        offset then id (continue with ``after=page.next_cursor``); on ``branch`` if given."""
        flt = all_of(where, None if state is None else {"state": state})
        with self._lock, self._branches() as b:
            led = b.ledger(branch) if _on_branch(branch) else self.ledger
            if not led.cube_exists(cube):
                raise NotFound(f"cube {cube!r} not found")
            self._extract()
            end = self._end(led, as_of)
            page = led.list_memories(
                cube, where=flt, as_of=end, limit=limit, after=after, actor=self.actor, record_read=True
            )
            return Page.from_dict(page.to_dict())

    def search(
        self,
        query: str,
        cubes: Sequence[str] | None = None,
        k: int = 10,
        as_of: Point | None = None,
        branch: str | None = None,
        states: Sequence[str] | None = None,
        all_states: bool = False,
        metadata: JSON | None = None,
        where: JSON | None = None,
        min_score: float | None = None,
    ) -> list[Hit]:
        """Hybrid search of the named cubes (default: every cube); audited. ``where`` filters inside
        the views (k hits whenever k match), ``min_score`` cuts the fused score."""
        if is_blank(query):
            raise InvalidRequest(f"query must not be blank: {BLANK_RULE}")
        with self._lock:
            names = list(dict.fromkeys(cubes)) if cubes else None
            for cube in names or ():
                if not self.ledger.cube_exists(cube):
                    raise NotFound(f"cube {cube!r} not found")
            options: dict[str, Any] = dict(
                cube=names,
                k=k,
                states=states,
                metadata=metadata,
                all_states=all_states,
                actor=self.actor,
                where=where,
                min_score=min_score,
            )
            self._extract()
            views = self._view_set()
            if _on_branch(branch):
                from ledger.timemachine.branch_search import search_branch

                with self._branches() as b:
                    self._end(b.ledger(branch), as_of)  # NotFound for an unknown branch or a future offset
                    hits = search_branch(views, b, str(branch), query, as_of=as_of, record_read=True, **options)
            else:
                hits = views.search(query, as_of=self._end(self.ledger, as_of), record_read=True, **options)
            return [Hit.from_dict(h.to_dict()) for h in hits]

    # -- deletion, erasure, redaction, lineage, holds ------------------------------------------
    def delete(self, memory_id: str, reason: str | None = None, expected_version: int | None = None) -> Written:
        """Delete a memory: a ``memory.deleted`` tombstone (as-of reads still see it; ``LegalHold`` under a hold)."""
        with self._lock:
            w = self.ledger.delete(memory_id, self.actor, reason, expected_version)
            return Written.from_dict(w.to_dict())

    def delete_where(self, cube: str, where: JSON | None = None, reason: str | None = None) -> JSON:
        """Delete every memory of ``cube`` matching ``where`` (the filter grammar; none: all) in one atomic batch."""
        with self._lock:
            return self.ledger.delete_where(cube, self.actor, where, reason).to_dict()

    def erase(self, memory_id: str, reason: str) -> JSON:
        """Erase a memory for good, and every memory derived from it: irreversible (its keys are destroyed)."""
        from ledger.governance.erase import erase

        with self._lock:
            return erase(self.ledger, [memory_id], self.actor, reason, data_dir=self.data_dir).to_dict()

    def erase_where(self, cube: str, reason: str, where: JSON | None = None) -> JSON:
        """Erase every memory of ``cube`` matching ``where`` (none: all), deleted ones too; irreversible."""
        from ledger.governance.erase import erase_where

        with self._lock:
            return erase_where(self.ledger, cube, self.actor, reason, where, data_dir=self.data_dir).to_dict()

    def redact(self, memory_id: str, spans: Sequence[tuple[int, int]], reason: str) -> JSON:
        """Mask ``(start, end)`` character spans of the current text and erase every earlier version's text."""
        from ledger.governance.redact import redact

        pairs = [(int(start), int(end)) for start, end in spans]
        with self._lock:
            return redact(self.ledger, memory_id, pairs, self.actor, reason, data_dir=self.data_dir).to_dict()

    def lineage(self, memory_id: str, as_of: Point | None = None, depth: int = 10) -> JSON:
        """The memories a memory was merged or derived from, and those derived from it (up to ``depth`` hops)."""
        from ledger.timemachine.lineage import lineage

        with self._lock:
            end = self._end(self.ledger, as_of)
            return lineage(self.ledger, memory_id, None if as_of is None else end, depth).to_dict()

    def ingest(
        self,
        cube: str,
        messages: Sequence[JSON],
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        session_id: str | None = None,
        subject: str | None = None,
        batch_id: str | None = None,
    ) -> JSON:
        """Append conversation messages verbatim in one batch (the cube is created on first use); a
        repeated ``batch_id`` writes nothing new. Facts are extracted later, from the log."""
        batch = None if batch_id is None else f"{self.actor}\x00{batch_id}"  # namespaced per actor, as over HTTP
        with self._lock:
            done = self.ledger.ingest(
                cube,
                [dict(m) for m in messages],
                self.actor,
                user_id=user_id,
                agent_id=agent_id,
                run_id=run_id,
                session_id=session_id,
                subject=subject,
                batch_id=batch,
            )
            return done.to_dict()

    def messages_status(self, cube: str) -> JSON:
        """Messages of ``cube`` not yet extracted, and the extractor's checkpoint."""
        from ledger.memos.extraction.runtime import status

        with self._lock:
            if not self.ledger.cube_exists(cube):
                raise NotFound(f"cube {cube!r} not found")
            return {"cube": cube, **status(self.ledger, cube)}

    def _require_admin(self) -> None:
        """Holds and subject exports are for admin principals, as over HTTP (the refusal is recorded)."""
        if not self._is_admin():
            access, _ = self._access()
            access.deny(self.actor, "admin operation", None, None, "not an admin principal")
            raise AccessDenied(f"{self.actor!r} is not an admin principal")

    def place_hold(
        self, reason: str, cube: str | None = None, subject: str | None = None, memory_id: str | None = None
    ) -> JSON:
        """Place a legal hold on exactly one of a cube, a data subject or a memory (admin principals only)."""
        from ledger.governance.holds import place_hold

        with self._lock:
            self._require_admin()
            return place_hold(self.ledger.log, self.actor, reason, cube, subject, memory_id).to_dict()

    def holds(self) -> list[JSON]:
        """The active legal holds (admin principals only)."""
        from ledger.governance.holds import read_holds

        with self._lock:
            self._require_admin()
            return [h.to_dict() for h in read_holds(self.ledger.log).active.values()]

    def release_hold(self, hold_id: str, reason: str | None = None) -> JSON:
        """End a legal hold (admin principals only)."""
        from ledger.governance.holds import release_hold

        with self._lock:
            self._require_admin()
            return {"hold_id": hold_id, "offset": release_hold(self.ledger.log, hold_id, self.actor, reason)}

    def subject_export(self, subject: str, sign: bool = False) -> list[JSON]:
        """Everything about a data subject, verifiable offline (admin principals only; the reads are recorded)."""
        from ledger.governance.subject_export import export_subject

        with self._lock:
            self._require_admin()
            return list(export_subject(self.ledger, subject, sign, self.actor))

    # -- cubes, access ------------------------------------------------------------------------
    def create_cube(self, cube: str, visibility: str = "private", metadata: JSON | None = None) -> JSON:
        """Create a cube owned by ``actor``."""
        with self._lock:
            try:
                e = self.ledger.create_cube(cube, owner=self.actor, visibility=visibility, metadata=metadata)
            except ConcurrencyConflict:
                raise StateError(f"cube name {cube!r} is taken") from None
            return {"cube": cube, "owner": self.actor, "offset": e.offset, "event_id": e.event_id}

    def cubes(self) -> list[JSON]:
        """The cubes on which ``actor`` holds a role, with those roles."""
        with self._lock:
            access, _ = self._access()
            return [{"cube": c, "roles": r} for c, r in access.index.cubes_of(self.actor).items()]

    def grants(self, cube: str) -> JSON:
        """Who holds which role on a cube."""
        with self._lock:
            access, _ = self._access()
            if not access.index.cube_exists(cube):
                raise NotFound(f"cube {cube!r} not found")
            return {"cube": cube, "grants": access.index.grants(cube), **access.index.sharing(cube)}

    def grant(self, cube: str, principal: str, role: str) -> JSON:
        """Give ``principal`` a role on a cube (``actor`` must own it)."""
        with self._lock:
            access, caller = self._access()
            e = access.grant(caller, cube, principal, role)
            out = {"cube": cube, "principal": principal, "role": role}
            return {**out, "changed": e is not None, "offset": e.offset if e is not None else None}

    def revoke(self, cube: str, principal: str, role: str) -> JSON:
        """Take a role away (``actor`` must own the cube)."""
        with self._lock:
            access, caller = self._access()
            e = access.revoke(caller, cube, principal, role)
            return {"cube": cube, "principal": principal, "role": role, "offset": e.offset}

    def whoami(self) -> JSON:
        """``actor``, whether it is an admin principal, and its roles."""
        with self._lock:
            access, caller = self._access()
            return {"principal": self.actor, "admin": caller.admin, "cubes": access.index.cubes_of(self.actor)}

    def head(self) -> JSON:
        """Offset and hash of the last event of the log."""
        return {"offset": self.ledger.head(), "hash": self.ledger.log.head_hash()}

    # -- audit, export, log -------------------------------------------------------------------
    def audit(
        self,
        cube: str | None = None,
        memory: str | None = None,
        actor: str | None = None,
        since: Point | None = None,
        until: Point | None = None,
        types: Sequence[str] | None = None,
        as_of: Point | None = None,
        limit: int = 1000,
    ) -> list[JSON]:
        """Who created, changed, read or was refused what, and when (content-free entries)."""
        with self._lock:
            if memory is not None:
                mcube = memory_cube(self.ledger, memory)  # deleted and erased memories keep their trail
                if cube is not None and cube != mcube:
                    raise InvalidRequest(f"memory {memory} is not in cube {cube!r}")
                cube = mcube
            elif cube is not None and not self.ledger.cube_exists(cube):
                raise NotFound(f"cube {cube!r} not found")
            end = self._end(self.ledger, as_of)
            q = AuditQuery(memory, cube, actor, since, until, list(types) if types else None, end, limit)
            try:
                return [e.to_dict() for e in audit(self.ledger, q)]
            except (ValueError, OverflowError) as exc:
                raise InvalidRequest(f"bad audit bound: {exc}") from None

    def export(self, cube: str, as_of: Point | None = None) -> list[JSON]:
        """The cube's verifiable export: a header, then every event with its Merkle inclusion proof."""
        from ledger.memos.cube_export import export_cube

        with self._lock:
            end = self._end(self.ledger, as_of)
            records = list(export_cube(self.ledger, cube, end))
            self._memory_read(cube, [], "export", end)
            return records

    def events(self, start: int = 0, follow: bool = False, limit: int | None = None) -> Iterator[JSON]:
        """Events of the log from ``start`` (``follow``: wait for new ones), as an admin sees them."""
        if start > (head := self.ledger.head()) + 1:
            raise NotFound(f"offset {start} is beyond the head of the log ({head}); the next offset is {head + 1}")
        return self._follow(start, follow, limit)

    def _follow(self, start: int, follow: bool, limit: int | None) -> Iterator[JSON]:
        nxt, sent = start, 0
        while True:
            batch = list(self.ledger.events(nxt, nxt + 499))
            for e in batch:
                yield shown(e, True, self.ledger.opener)
                nxt, sent = e.offset + 1, sent + 1
                if limit is not None and sent >= limit:
                    return
            if not batch:
                if not follow:
                    return
                time.sleep(0.2)

    # -- branches -----------------------------------------------------------------------------
    def branches(self) -> list[JSON]:
        """Every branch with its fork point and head."""
        with self._lock, self._branches() as b:
            return b.list()

    def create_branch(self, name: str, at: Point | None = None, from_branch: str | None = None) -> JSON:
        """Fork a branch of main (or ``from_branch``) at an offset or time (default: head)."""
        with self._lock, self._branches() as b:
            self._end(b.ledger(from_branch), at)  # NotFound for an unknown base or a future offset
            return b.create(name, _point(at), self.actor, from_branch=from_branch).to_dict()

    def branch_diff(self, name: str) -> list[JSON]:
        """Memories added, changed or removed on the branch since its fork."""
        with self._lock, self._branches() as b:
            return [d.to_dict() for d in branch_merge.diff(b, name)]

    def merge_branch(self, name: str, strict: bool = False) -> JSON:
        """Replay the branch onto its base (``MergeConflict`` when both changed a memory)."""
        with self._lock, self._branches() as b:
            return branch_merge.merge(b, name, self.actor, strict=strict).to_dict()

    def drop_branch(self, name: str, cascade: bool = False) -> JSON:
        """Discard a branch and its own events."""
        with self._lock, self._branches() as b:
            *nested, info = b.drop_tree(name, self.actor, cascade=cascade)
            return {**info.to_dict(), "nested": [n.name for n in nested]}
