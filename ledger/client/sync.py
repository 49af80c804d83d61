"""``MemledgerClient``: the memledger HTTP API as typed Python methods (blocking, on httpx).

    client = MemledgerClient("http://127.0.0.1:8080", token="mlk_...")
    w = client.add(cube="alice", text="Alice prefers green tea", metadata={"user_id": "alice"})
    hits = client.search("what does Alice drink?", cubes=["alice"], k=5)

The methods mirror ``ledger.client.EmbeddedClient`` (the same calls on a local data directory),
so switching between remote and embedded is one line. Errors are the ``ledger.errors`` classes
the embedded API raises (``NotFound``, ``InvalidRequest``, ``AccessDenied``, ...).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from typing import TypeVar

import httpx

from ledger.client import calls
from ledger.client.calls import Call, Point
from ledger.client.models import JSON, Hit, Memory, Page, Written
from ledger.client.transport import RetryPolicy, headers, send, stream
from ledger.errors import NotFound, StateError

R = TypeVar("R")


class MemledgerClient:
    """A blocking client of one memledger service, authenticated by one principal's token."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ):
        """``token`` defaults to ``$MEMLEDGER_TOKEN`` (``""``: send none); ``timeout`` (seconds) applies to
        each request; ``extra_headers`` go with every request (e.g. ``X-Request-ID``)."""
        self.base_url = base_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={
                **headers(token if token is not None else os.environ.get("MEMLEDGER_TOKEN")),
                **(extra_headers or {}),
            },
            timeout=timeout,
            transport=transport,
        )

    def __enter__(self) -> MemledgerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _run(self, call: Call[R]) -> R:
        return send(self._http, call, self.retry)

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
        """Add a memory (the cube is created on first use, owned by the caller, as the embedded API does);
        retried safely under an idempotency key. A duplicate of a current memory (same cube, scope and
        subject) writes nothing and answers it (``raw["duplicate"]``) unless ``allow_duplicate``."""
        call = calls.add(cube, text, metadata, tags, subject, idempotency_key, branch, allow_duplicate)
        if not calls.creates_cube(call):
            return self._run(call)
        return self._creating_cube(call, cube)

    def _creating_cube(self, call: calls.Call[R], cube: str) -> R:
        """Run ``call``; if its cube does not exist, create it (owned by the caller) and run it again."""
        try:
            return self._run(call)
        except NotFound:
            try:
                self._run(calls.create_cube(cube))
            except StateError:  # the cube exists but is not the caller's to see: the first answer stands
                raise NotFound(f"cube {cube!r} not found") from None
            return self._run(call)

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
        return self._run(calls.update(memory_id, text, metadata, expected_version, reason, branch))

    def get(self, memory_id: str, as_of: Point | None = None, branch: str | None = None) -> Memory:
        """A memory as of an offset or ISO-8601 time (default: now); the read is audited."""
        return self._run(calls.get(memory_id, as_of, branch))

    def history(self, memory_id: str, as_of: Point | None = None) -> list[Memory]:
        """Every version of a memory, oldest first."""
        return self._run(calls.history(memory_id, as_of))

    def change_state(
        self, memory_id: str, to: str, reason: str | None = None, expected_version: int | None = None
    ) -> Written:
        """Move a memory through its lifecycle (generated, activated, archived, frozen)."""
        return self._run(calls.change_state(memory_id, to, reason, expected_version))

    def merge(
        self, sources: Sequence[str], text: str, metadata: JSON | None = None, reason: str | None = None
    ) -> Written:
        """Merge memories of one cube into a new one; the sources become ``merged``."""
        return self._run(calls.merge(sources, text, metadata, reason))

    def link(self, source: str, target: str, relation: str) -> Written:
        """Record a directed edge between two memories."""
        return self._run(calls.link(source, target, relation))

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
        return self._run(calls.list_memories(cube, as_of, state, limit, after, where, branch))

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
        """Hybrid search of the named cubes (default: every readable cube); audited. ``where``
        filters inside the views (k hits whenever k match), ``min_score`` cuts the fused score."""
        return self._run(calls.search(query, cubes, k, as_of, branch, states, all_states, metadata, where, min_score))

    # -- deletion, erasure, redaction, lineage, holds ------------------------------------------
    def delete(self, memory_id: str, reason: str | None = None, expected_version: int | None = None) -> Written:
        """Delete a memory: a ``memory.deleted`` tombstone (as-of reads still see it; ``LegalHold`` under a hold)."""
        return self._run(calls.delete(memory_id, reason, expected_version))

    def delete_where(self, cube: str, where: JSON | None = None, reason: str | None = None) -> JSON:
        """Delete every memory of ``cube`` matching ``where`` (the filter grammar; none: all) in one atomic batch."""
        return self._run(calls.delete_where(cube, where, reason))

    def erase(self, memory_id: str, reason: str) -> JSON:
        """Erase a memory for good, and every memory derived from it: irreversible (its keys are destroyed)."""
        return self._run(calls.erase(memory_id, reason))

    def erase_where(self, cube: str, reason: str, where: JSON | None = None) -> JSON:
        """Erase every memory of ``cube`` matching ``where`` (none: all), deleted ones too; irreversible."""
        return self._run(calls.erase_where(cube, reason, where))

    def redact(self, memory_id: str, spans: Sequence[tuple[int, int]], reason: str) -> JSON:
        """Mask ``(start, end)`` character spans of the current text and erase every earlier version's text."""
        return self._run(calls.redact(memory_id, spans, reason))

    def lineage(self, memory_id: str, as_of: Point | None = None, depth: int = 10) -> JSON:
        """The memories a memory was merged or derived from, and those derived from it (up to ``depth`` hops)."""
        return self._run(calls.lineage(memory_id, as_of, depth))

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
        """Append conversation messages (``{role, content, name?, timestamp?}``) verbatim in one batch;
        facts are extracted later, from the log (``messages_status`` says what is pending). Retried
        safely under ``batch_id`` (a fresh one per call when omitted); the cube is created on first use."""
        call = calls.ingest(cube, messages, user_id, agent_id, run_id, session_id, subject, batch_id)
        return self._creating_cube(call, cube)

    def messages_status(self, cube: str) -> JSON:
        """Messages of ``cube`` not yet extracted, and the extractor's checkpoint."""
        return self._run(calls.messages_status(cube))

    def place_hold(
        self,
        reason: str,
        cube: str | None = None,
        subject: str | None = None,
        memory_id: str | None = None,
    ) -> JSON:
        """Place a legal hold on exactly one of a cube, a data subject or a memory (admin principals only)."""
        return self._run(calls.place_hold(reason, cube, subject, memory_id))

    def holds(self) -> list[JSON]:
        """The active legal holds (admin principals only)."""
        return self._run(calls.holds())

    def release_hold(self, hold_id: str, reason: str | None = None) -> JSON:
        """End a legal hold (admin principals only)."""
        return self._run(calls.release_hold(hold_id, reason))

    def subject_export(self, subject: str, sign: bool = False) -> list[JSON]:
        """Everything about a data subject, verifiable offline (admin principals only; the reads are recorded)."""
        return self._run(calls.subject_export(subject, sign))

    # -- cubes, access ------------------------------------------------------------------------
    def create_cube(self, cube: str, visibility: str = "private", metadata: JSON | None = None) -> JSON:
        """Create a cube owned by the caller."""
        return self._run(calls.create_cube(cube, visibility, metadata))

    def cubes(self) -> list[JSON]:
        """The cubes on which the caller holds a role, with those roles."""
        return self._run(calls.cubes())

    def grants(self, cube: str) -> JSON:
        """Who holds which role on a cube."""
        return self._run(calls.grants(cube))

    def grant(self, cube: str, principal: str, role: str) -> JSON:
        """Give ``principal`` a role (owner, writer, reader, auditor) on a cube."""
        return self._run(calls.grant(cube, principal, role))

    def revoke(self, cube: str, principal: str, role: str) -> JSON:
        """Take a role away; effective from the next request."""
        return self._run(calls.revoke(cube, principal, role))

    def whoami(self) -> JSON:
        """The caller's principal, admin flag and roles."""
        return self._run(calls.whoami())

    def head(self) -> JSON:
        """Offset and hash of the last event of the log."""
        return self._run(calls.head())

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
        return self._run(calls.audit(cube, memory, actor, since, until, types, as_of, limit))

    def export(self, cube: str, as_of: Point | None = None) -> list[JSON]:
        """The cube's verifiable export: a header, then every event with its Merkle inclusion proof."""
        return self._run(calls.export(cube, as_of))

    def events(self, start: int = 0, follow: bool = False, limit: int | None = None) -> Iterator[JSON]:
        """Events of the log from ``start`` (``follow``: wait for new ones); resumes after a dropped connection."""
        return stream(self._http, start, follow, limit, self.retry)

    # -- branches -----------------------------------------------------------------------------
    def branches(self) -> list[JSON]:
        """Every branch with its fork point and head."""
        return self._run(calls.branches())

    def create_branch(self, name: str, at: Point | None = None, from_branch: str | None = None) -> JSON:
        """Fork a branch of main (or ``from_branch``) at an offset or time (default: head)."""
        return self._run(calls.create_branch(name, at, from_branch))

    def branch_diff(self, name: str) -> list[JSON]:
        """Memories added, changed or removed on the branch since its fork."""
        return self._run(calls.branch_diff(name))

    def merge_branch(self, name: str, strict: bool = False) -> JSON:
        """Replay the branch onto its base (``MergeConflict`` when both changed a memory)."""
        return self._run(calls.merge_branch(name, strict))

    def drop_branch(self, name: str, cascade: bool = False) -> JSON:
        """Discard a branch and its own events."""
        return self._run(calls.drop_branch(name, cascade))
