"""Erase memories (or ingested messages): deletion plus key destruction, so their text is unrecoverable everywhere.

Every memory is sealed under a key of its own (``ledger.governance.key_vault``), and every memory
derived from it (a merge, a chat answer, an extracted fact) is sealed under that key too. So
``erase(ledger, [id], actor, reason)``:

1. finds every version of the memories and, through lineage, every memory derived from them (a
   message id is erased the same way: the facts extracted from it are derived from it);
2. refuses if a legal hold covers any of them (the attempt is recorded), or if one was written
   before every memory was sealed (its text is plaintext in the append-only log and cannot be
   destroyed; ``delete`` it, or forget its subject);
3. writes the texts to look for to a pending record, destroys the memories' keys (and the derived
   memories' own keys), and appends one ``memory.erased`` event per cube (who, why, which memories
   and keys; never the text), in one atomic batch;
4. runs the erasure engine's purge, scrub and residue steps (``ledger.governance.erasure``).

``verify`` still passes: hashes cover the ciphertext, which is untouched. Re-running ``erase`` on
memories already erased finishes an interrupted erasure (purge and checks again).

Copies made before the erasure that carry keys (a cube export holds its memories' keys) are out
of the ledger's reach; everything the ledger holds (log, branches, views, caches, later exports)
is not.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledger import events as ev
from ledger.api import Ledger
from ledger.errors import ConcurrencyConflict, InvalidRequest, NotFound, StateError, present
from ledger.events import Event, NewEvent
from ledger.governance.cipher import MEMORY_SCOPE, KeyRing, key_refs
from ledger.governance.erasure import (
    ErasureChecks,
    ErasureParticipant,
    check_actor_reason,
    context,
    finish,
    key_ring,
    opened_texts,
)
from ledger.governance.holds import HOLDS_STREAM, read_holds, refuse
from ledger.memory_state import CONTENT_EVENTS, Erasure, MemoryState, erasure_of, fold
from ledger.memos.messages import message_state
from ledger.rules.filters import parse_filter, record_of
from ledger.timemachine.lineage import descendants

MAX_MEMORIES = 100_000


@dataclass(slots=True)
class EraseReport:
    """What an erasure of memories did. ``complete`` is False when residue or problems remain."""

    erasure_id: str
    memory_ids: list[str]
    derived_memory_ids: list[str]
    key_ids: list[str]
    offsets: list[int]
    already_erased: bool = False
    checks: ErasureChecks = field(default_factory=ErasureChecks)

    @property
    def complete(self) -> bool:
        return self.checks.complete

    def to_dict(self) -> dict[str, Any]:
        return {
            "erasure_id": self.erasure_id,
            "erased": self.memory_ids,
            "derived": self.derived_memory_ids,
            "keys_destroyed": len(self.key_ids),
            "offsets": self.offsets,
            "already_erased": self.already_erased,
            **self.checks.to_dict(),
        }


@dataclass(slots=True)
class _Found:
    """What the log holds of the memories to erase."""

    states: dict[str, MemoryState] = field(default_factory=dict)
    key_ids: dict[str, None] = field(default_factory=dict)
    texts: list[str] = field(default_factory=list)
    plaintext: list[str] = field(default_factory=list)  # memories with a content payload not sealed under their key
    erased_by: dict[str, Event] = field(default_factory=dict)  # memory -> its memory.erased event


def _collect(ledger: Ledger, cipher: KeyRing, memory_ids: Sequence[str], owner_keys_only: bool) -> _Found:
    """Fold the memories from the log and gather their memory keys and (while readable) texts.

    ``owner_keys_only``: count only each memory's own key components (targets); otherwise also the
    keys a derived memory shares with its sources (they are being destroyed anyway)."""
    out = _Found()
    up = ledger.registry.upcast
    for mid in memory_ids:
        events = [up(e) for e in ledger.log.read_refs(mid)]
        state = fold(events, None).get(mid) or message_state(events, mid)  # a memory, or an ingested message
        if state is None:
            continue
        out.states[mid] = state
        for e in events:
            if e.type == ev.MEMORY_ERASED and mid in e.payload["memory_ids"]:
                out.erased_by[mid] = e
            if not _writes_content_of(e, mid):
                continue
            if "text" in e.payload:
                out.plaintext.append(mid)
            sealed = e.payload.get("sealed")
            own = [r for r in key_refs(sealed) if r.scope == MEMORY_SCOPE and (r.id == mid or not owner_keys_only)]
            if sealed is not None and not [r for r in own if r.id == mid]:
                out.plaintext.append(mid)  # sealed under subjects only: no key of its own to destroy
            out.key_ids.update(dict.fromkeys(r.key_id for r in own if r.id == mid))
            out.texts += opened_texts(cipher, sealed)
    out.plaintext = list(dict.fromkeys(out.plaintext))
    return out


def _writes_content_of(e: Event, mid: str) -> bool:
    """``e`` writes the content of memory (or message) ``mid``."""
    if e.type == ev.MESSAGE_ADDED:
        return e.payload.get("message_id") == mid
    return e.type in CONTENT_EVENTS and e.payload.get("memory_id") == mid


def erasure_id_of(memory_ids: Sequence[str]) -> str:
    """A deterministic id for erasing exactly these memories (a re-run after a crash finds its
    pending record by it)."""
    return "erasure_" + hashlib.sha256("\n".join(sorted(set(memory_ids))).encode()).hexdigest()[:24]


def erase(
    ledger: Ledger,
    memory_ids: Sequence[str],
    actor: str,
    reason: str,
    data_dir: str | Path | None = None,
    scrub: bool = True,
    participants: Sequence[ErasureParticipant] | None = None,
) -> EraseReport:
    """Erase ``memory_ids`` and everything derived from them (see the module docstring)."""
    check_actor_reason(actor, reason, "erase", reason_required=True)
    ids = list(dict.fromkeys(memory_ids))
    if not ids:
        raise InvalidRequest("erase needs at least one memory id")
    if len(ids) > MAX_MEMORIES:
        raise InvalidRequest(f"erase at most {MAX_MEMORIES} memories at once")
    cipher = key_ring(ledger, "erase")
    ctx = context(ledger, data_dir, participants, scrub)
    found = _collect(ledger, cipher, ids, owner_keys_only=True)
    missing = [m for m in ids if m not in found.states]
    if missing:
        raise NotFound(
            f"memory {missing[0]} not found" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
        )
    eid = erasure_id_of(ids)
    done = [m for m in ids if m in found.erased_by]
    if len(done) == len(ids):  # erased already: finish what an interrupted run left
        return _resume(ledger, ids, found, eid, ctx)
    if done:
        raise StateError(f"memory {done[0]} is erased already; erase the others on their own")
    if found.plaintext:
        raise StateError(
            f"memory {found.plaintext[0]} was written before every memory was sealed under a key of its own: "
            "its text is plaintext (or sealed only under a data subject) in the append-only log and cannot be "
            "destroyed; delete it, or forget its subject"
        )
    derived = descendants(ledger, ids)
    sub = _collect(ledger, cipher, derived, owner_keys_only=True)
    for _ in range(20):
        holds = read_holds(ledger.log)
        held = holds.covering([*found.states.values(), *sub.states.values()])
        if held:
            cube = next(iter(found.states.values())).cube
            raise refuse(ledger.log, held, "erase", actor, [*ids, *derived], cube=cube)
        # an earlier run may have destroyed the keys and crashed before recording: keep its texts
        earlier = ctx.load_pending(eid)
        texts = list(dict.fromkeys([*(earlier.texts if earlier else []), *found.texts, *sub.texts]))
        ctx.save_pending(eid, texts, [*ids, *derived])
        key_ids = list(dict.fromkeys([*found.key_ids, *sub.key_ids]))
        batch = _events(ledger, found, ids, derived, key_ids, eid, reason, actor)
        try:
            # the holds must not have changed since we looked: a hold placed meanwhile wins
            _check_unchanged(ledger, holds.version)
        except ConcurrencyConflict:
            continue
        _destroyed, problem = cipher.destroy_memory_keys(key_ids)  # the erasure
        # a memory derived from them while we looked is sealed under a destroyed key: list it too
        late = [m for m in descendants(ledger, ids) if m not in set(derived)]
        if late:
            batch = _events(ledger, found, ids, [*derived, *late], key_ids, eid, reason, actor)
            derived += late
        written = ledger.log.append(batch)
        report = EraseReport(eid, ids, derived, key_ids, [e.offset for e in written])
        if problem:
            report.checks.problems.append(problem)
        report.checks.problems += [
            f"derived memory {m} is plaintext in the log (written before every memory was sealed): "
            "its text cannot be destroyed"
            for m in sub.plaintext
            if not sub.states[m].erased
        ]
        _finish(ledger, written, texts, ctx, report)
        return report
    raise ConcurrencyConflict(HOLDS_STREAM, -1, ledger.log.stream_version(HOLDS_STREAM))


def _check_unchanged(ledger: Ledger, holds_version: int) -> None:
    if ledger.log.stream_version(HOLDS_STREAM) != holds_version:
        raise ConcurrencyConflict(HOLDS_STREAM, holds_version, ledger.log.stream_version(HOLDS_STREAM))


def _events(
    ledger: Ledger,
    found: _Found,
    ids: list[str],
    derived: list[str],
    key_ids: list[str],
    eid: str,
    reason: str,
    actor: str,
) -> list[NewEvent]:
    """One ``memory.erased`` per cube of the erased memories (the derived ids go with the first)."""
    by_cube: dict[str, list[str]] = {}
    for m in ids:
        by_cube.setdefault(found.states[m].cube, []).append(m)
    out = []
    for i, (cube, mids) in enumerate(by_cube.items()):
        payload: dict[str, Any] = {
            "erasure_id": eid,
            "memory_ids": mids,
            "derived_memory_ids": derived if i == 0 else [],
            "key_ids": key_ids if i == 0 else [],
            "reason": reason,
        }
        out.append(NewEvent(cube, ev.MEMORY_ERASED, payload, actor, correlation_id=eid))
    return out


def _finish(ledger: Ledger, written: Sequence[Event], texts: list[str], ctx: Any, report: EraseReport) -> None:
    erasures = [present(erasure_of(ledger.registry.upcast(e)), "the erasure of a memory.erased event") for e in written]
    erasure = Erasure((), tuple(dict.fromkeys(m for x in erasures for m in x.memory_ids)), written[-1].offset)
    finish(ledger, written[-1], erasure, texts, ctx, report.checks)
    ctx.clear_pending(report.erasure_id, report.checks)


def _resume(ledger: Ledger, ids: list[str], found: _Found, eid: str, ctx: Any) -> EraseReport:
    events = list({e.offset: e for e in found.erased_by.values()}.values())
    first = events[0].payload
    pending = ctx.load_pending(first.get("erasure_id", eid))
    texts = pending.texts if pending is not None else []
    derived = [m for e in events for m in e.payload.get("derived_memory_ids", [])]
    keys = [k for e in events for k in e.payload.get("key_ids", [])]
    report = EraseReport(first.get("erasure_id", eid), ids, derived, keys, [e.offset for e in events], True)
    _finish(ledger, events, texts, ctx, report)
    return report


def erase_where(
    ledger: Ledger,
    cube: str,
    actor: str,
    reason: str,
    where: dict[str, Any] | None = None,
    data_dir: str | Path | None = None,
    scrub: bool = True,
    participants: Sequence[ErasureParticipant] | None = None,
) -> EraseReport:
    """Erase every memory of ``cube`` (deleted ones included) that matches ``where`` (none: all)."""
    flt = parse_filter(where, "where")
    if not ledger.cube_exists(cube):
        raise NotFound(f"cube {cube!r} not found")
    up = ledger.registry.upcast
    states = fold((up(e) for e in ledger.log.read_stream(cube)), ledger.opener)  # metadata filters read sealed content
    ids = [m for m, s in sorted(states.items()) if not s.erased and flt.matches(record_of(s))]
    if not ids:
        raise NotFound(f"no memory of cube {cube!r} matches" + ("" if not where else " the filter"))
    return erase(ledger, ids, actor, reason, data_dir, scrub, participants)
