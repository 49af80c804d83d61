"""Extraction as a consumer of the log: message events in, decisions out, exactly once.

An ``ExtractionConsumer`` follows one *track* (by default the extractor's name): it reads the
``message.added`` events after its checkpoint, hands each window (one ingest call's messages, at
most ``WINDOW`` of them) to the extractor, reconciles the candidates against the scope's current
memories (``reconcile``) and appends the ``extraction.decided`` record and the memory events it
implies in one atomic batch (``apply``).

The checkpoint is in the log, as the views keep theirs in their own transaction: it is the
``through_offset`` of the track's last decision (stream ``_extraction.<track>``). The batch is
appended with the track's stream version it read (a concurrent consumer makes it conflict), and
the decision's event id derives from (track, source offsets), so a batch retried after a crash is
rejected as a duplicate rather than applied twice. A consumer killed at any instant resumes where
the last committed decision ended. The extractor is called once per window; a replay of the log
(rebuilding the views) folds the memory events and never calls it.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ledger import events as ev
from ledger.errors import ConcurrencyConflict, IdempotencyConflict, InvalidRequest
from ledger.events import Event
from ledger.governance.holds import read_holds
from ledger.lifecycle import SEARCHABLE_BY_DEFAULT
from ledger.llm import ModelRequestRefused
from ledger.memory_state import MemoryState, merged_metadata, scope_of
from ledger.memos.extraction.apply import Window, build_batch, decision_event_id, derived_memory_id, track_stream
from ledger.memos.extraction.base import Extraction, Extractor
from ledger.memos.extraction.reconcile import Decision, Pool, VectorCache
from ledger.memos.extraction.settings import ExtractionSettings
from ledger.memos.messages import message_of
from ledger.rules.content import is_blank

WINDOW = 50  # messages per extractor call (a sealed decision needs every source message's key)
MAX_CANDIDATE = 2000  # characters of one candidate fact
ATTEMPTS = 20


@dataclass(frozen=True, slots=True)
class Status:
    """How far a track is behind the messages in the log."""

    track: str
    extractor: str
    checkpoint: int  # through_offset of the last decision (-1: none yet)
    pending: int  # message events after it
    decisions: int  # decision records written on the track
    head: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "track": self.track,
            "extractor": self.extractor,
            "checkpoint": self.checkpoint,
            "pending": self.pending,
            "decisions": self.decisions,
            "head": self.head,
        }


def last_decision(ledger: Any, track: str) -> Event | None:
    """The track's last ``extraction.decided`` event (its payload's ``through_offset`` is the checkpoint)."""
    stream = track_stream(track)
    version = ledger.log.stream_version(stream)
    if version == 0:
        return None
    return next(iter(ledger.log.read_stream(stream, version)), None)


def checkpoint_of(ledger: Any, track: str) -> int:
    """The offset the track has extracted through (-1 when it has decided nothing yet)."""
    last = last_decision(ledger, track)
    return -1 if last is None else int(last.payload["through_offset"])


def pending_messages(ledger: Any, after: int, end: int | None = None, cube: str | None = None) -> int:
    """Message events after offset ``after`` (of ``cube``)."""
    return sum(
        1
        for e in ledger.log.read_filtered(after + 1, end, types=[ev.MESSAGE_ADDED], stream=cube)
        if cube is None or e.stream == cube
    )


def decisions_of(ledger: Any, track: str) -> Iterator[Event]:
    """The track's decision events, oldest first."""
    return ledger.log.read_stream(track_stream(track), 1)


# a chat's records of its turns say what was said, not what holds: never reconciled against
TURN_TAGS = frozenset({"user-turn", "assistant-turn"})


class ExtractionConsumer:
    """Runs one extractor over the messages of ``ledger`` (see the module docstring)."""

    def __init__(
        self,
        ledger: Any,
        extractor: Extractor,
        settings: ExtractionSettings | None = None,
        track: str | None = None,
        end: int | None = None,
        actor: str | None = None,
        cube: str | None = None,
    ):
        self.ledger = ledger
        self.extractor = extractor
        self.settings = settings or ExtractionSettings()
        self.track = track or extractor.name
        self.end = end  # extract only messages at or below this offset (re-extraction of a branch)
        self.actor = actor or f"extractor:{extractor.name}"
        self.cube = cube  # only the messages of this cube (re-extraction of one cube)
        self.decided = 0
        self.calls = 0
        self._vectors: VectorCache | None = None

    @property
    def name(self) -> str:
        return f"extractor:{self.track}"

    # -- position ---------------------------------------------------------------------------
    def checkpoint(self) -> int:
        return checkpoint_of(self.ledger, self.track)

    def status(self) -> Status:
        cp = self.checkpoint()
        decisions = self.ledger.log.stream_version(track_stream(self.track))
        return Status(
            self.track,
            self.extractor.name,
            cp,
            pending_messages(self.ledger, cp, self.end, self.cube),
            decisions,
            self.ledger.log.head(),
        )

    def next_window(self, after: int) -> Window | None:
        """The next window of messages after offset ``after``: one ingest call's, in order."""
        first: Event | None = None
        events: list[Event] = []
        for e in self.ledger.log.read_filtered(after + 1, self.end, types=[ev.MESSAGE_ADDED], stream=self.cube):
            if self.cube is not None and e.stream != self.cube:
                continue
            if first is None:
                first = e
            elif e.stream != first.stream or e.correlation_id != first.correlation_id or len(events) >= WINDOW:
                break
            events.append(self.ledger.registry.upcast(e))
        if first is None:
            return None
        scope = merged_metadata(scope_of(e.payload.get("metadata")) for e in events)
        return Window(first.stream, events, first.correlation_id, scope)

    # -- one batch --------------------------------------------------------------------------
    def step(self) -> int:
        """Extract and decide one window; return the number of messages it held (0: caught up)."""
        extraction: Extraction | None = None
        extraction_for: list[int] = []
        for _ in range(ATTEMPTS):
            stream = track_stream(self.track)
            version = self.ledger.log.stream_version(stream)
            window = self.next_window(self.checkpoint())
            if window is None:
                return 0
            cube_version = self.ledger.log.stream_version(window.cube)
            states = self._scope_memories(window)
            pool = Pool.of(list(states.values()), self._held(states), self._vector_cache())
            if extraction is None or extraction_for != window.offsets:
                extraction, extraction_for = self._extract(window, pool), window.offsets
            decisions = self._decide(window, extraction, pool)
            batch = build_batch(
                self.ledger, self.extractor, self.track, window, extraction, decisions, states, self.actor
            )
            try:
                self.ledger.log.append(batch, {stream: version, window.cube: cube_version})
            except ConcurrencyConflict:
                continue  # another consumer decided, or the cube changed meanwhile: look again
            except IdempotencyConflict:
                if self.ledger.log.get_by_id(decision_event_id(self.track, window.offsets)) is not None:
                    continue  # decided already (a retried batch): the checkpoint has moved
                raise
            self.decided += 1
            return len(window.events)
        raise ConcurrencyConflict(
            track_stream(self.track), -1, self.ledger.log.stream_version(track_stream(self.track))
        )

    def _scope_memories(self, window: Window) -> dict[str, MemoryState]:
        if not self.ledger.cube_exists(window.cube):
            return {}
        scope = scope_of(window.scope)
        return {
            mid: s
            for mid, s in self.ledger.duplicates().memories(window.cube).items()
            if s.state in SEARCHABLE_BY_DEFAULT and scope_of(s.metadata) == scope and not TURN_TAGS & set(s.tags)
        }

    def _vector_cache(self) -> VectorCache | None:
        """Embeddings for hybrid similarity (the vector view's embedder), None when lexical only."""
        if self.settings.similarity != "hybrid":
            return None
        if self._vectors is None:
            from projections.vector.setup import shared_embedder, vector_settings

            name = vector_settings(self.ledger.config).get("embedder", "minilm")
            self._vectors = VectorCache(shared_embedder(str(name)).embed)
        return self._vectors

    def _held(self, states: dict[str, MemoryState]) -> set[str]:
        holds = read_holds(self.ledger.log)
        return {mid for mid, s in states.items() if holds.covering([s])}

    def _extract(self, window: Window, pool: Pool) -> Extraction:
        messages = [m for m in (message_of(e, self.ledger.opener) for e in window.events) if m is not None]
        if not messages:  # erased (or forgotten) before extraction: nothing to read, nothing to call
            return Extraction((), error=None, raw_output=None)
        wanted = self.settings.context if getattr(self.extractor, "uses_context", True) else 0
        context = pool.context([m.content for m in messages], wanted)
        self.calls += 1
        try:
            result = self.extractor.extract(messages, context)
        except InvalidRequest as exc:  # the backend refused its own output: record it, apply nothing
            return Extraction((), error=f"extractor failed: {exc}"[:4000])
        return _checked(result, set(window.offsets), {m.offset for m in messages})

    def _decide(self, window: Window, extraction: Extraction, pool: Pool) -> list[Decision]:
        if extraction.error is not None:
            return []
        t = self.settings.thresholds
        return [
            pool.decide(i, c, t, derived_memory_id(self.track, window.offsets, i))
            for i, c in enumerate(extraction.candidates)
        ]

    # -- loops ------------------------------------------------------------------------------
    def catch_up(self, max_windows: int | None = None) -> int:
        """Decide every pending window (at most ``max_windows``); return the messages processed."""
        n = done = 0
        while max_windows is None or done < max_windows:
            k = self.step()
            if k == 0:
                break
            n, done = n + k, done + 1
        return n

    def run(
        self,
        stop: threading.Event | None = None,
        until_caught_up: bool = False,
        max_seconds: float | None = None,
        lease: Any = None,
        poll_interval: float = 0.2,
        retry_backoff: float = 1.0,
        report: Callable[[Status], None] | None = None,
        report_every: float = 5.0,
    ) -> Status:
        """Consume until ``stop`` is set (or once caught up / after ``max_seconds``); outages back off and retry."""
        stop = stop or threading.Event()
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        last_report = 0.0
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            try:
                active = lease.poll() if lease is not None else True
                n = self.step() if active else 0
            except ModelRequestRefused:
                raise  # the endpoint refuses the request itself: the same answer on every retry
            except Exception as exc:  # noqa: BLE001 - an outage of the log or the model: back off, retry
                print(f"consumer {self.name}: {exc!r}; retrying in {retry_backoff}s", file=sys.stderr)
                stop.wait(retry_backoff)
                continue
            if report is not None and time.monotonic() - last_report >= report_every:
                last_report = time.monotonic()
                report(self.status())
            if n == 0:
                if until_caught_up and active:
                    break
                stop.wait(poll_interval)
        final = self.status()
        if report is not None:
            report(final)
        return final


def _checked(result: Any, window: set[int], readable: set[int]) -> Extraction:
    """The extractor's result, or the same result with ``error`` set when it breaks the port's rules."""
    if not isinstance(result, Extraction):
        return Extraction((), error=f"extractor returned {type(result).__name__}, not an Extraction")
    if result.error is not None:
        return result
    for i, c in enumerate(result.candidates):
        problem = None
        if not isinstance(c.text, str) or is_blank(c.text) or len(c.text) > MAX_CANDIDATE:
            problem = f"candidate {i} has no text or one over {MAX_CANDIDATE} characters"
        elif not c.source_offsets or not set(c.source_offsets) <= readable:
            problem = f"candidate {i} cites messages outside its window {sorted(window)}"
        if problem is not None:
            return Extraction(result.candidates, result.model, result.prompt_hash, result.raw_output, error=problem)
    return result
