"""Redaction: mask spans of a memory's text and erase every earlier version's text.

``redact(ledger, memory_id, [(start, end)], actor, reason)`` writes, in one atomic batch:

* ``memory.redacted``: names the masked spans, the destroyed keys (every key the memory's earlier
  versions were sealed under that is the memory's own) and the memories derived from it, whose
  content was sealed under those keys and so becomes unreadable too (views purge all of them);
* ``memory.restored`` with the masked text, sealed under a new key of the memory's own (plus the
  subjects' and sources' keys the memory needed before), so the memory stays at the head, current.

The hashes of the earlier versions stay in the chain (``verify`` passes); their text cannot be
read again from the log, a branch, a view or a cache. Residue is checked for every earlier
version's text and every masked span of at least eight characters.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ledger import events as ev
from ledger.api import Ledger
from ledger.errors import InvalidRequest, NotFound, StateError, present
from ledger.events import NewEvent
from ledger.governance.cipher import MEMORY_SCOPE, key_refs
from ledger.governance.erase import EraseReport, erasure_id_of
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
from ledger.memory_state import CONTENT_EVENTS, Erasure, erasure_of
from ledger.timemachine.lineage import descendants

MASK = "[redacted]"
MAX_SPANS = 1000


def parse_spans(specs: Sequence[str]) -> list[tuple[int, int]]:
    """``["START:END", ...]`` (character offsets, END exclusive) as pairs."""
    out = []
    for spec in specs:
        try:
            a, b = spec.split(":")
            out.append((int(a), int(b)))
        except ValueError:
            raise InvalidRequest(f"span {spec!r} is not START:END (two integers)") from None
    return out


def masked(text: str, spans: Sequence[tuple[int, int]]) -> tuple[str, list[tuple[int, int]]]:
    """``text`` with every span replaced by ``MASK``; overlapping or touching spans are joined."""
    if not spans:
        raise InvalidRequest("redact needs at least one span")
    if len(spans) > MAX_SPANS:
        raise InvalidRequest(f"redact at most {MAX_SPANS} spans at once")
    for s, e in spans:
        if not (isinstance(s, int) and isinstance(e, int)) or isinstance(s, bool) or isinstance(e, bool):
            raise InvalidRequest("span offsets must be integers")
        if not 0 <= s < e:
            raise InvalidRequest(f"span {s}:{e} is empty or negative")
        if e > len(text):  # a conflict with the memory as it is now, not malformed input
            raise StateError(f"span {s}:{e} is outside the text, which has {len(text)} characters")
    joined: list[tuple[int, int]] = []
    for s, e in sorted(spans):
        if joined and s <= joined[-1][1]:
            joined[-1] = (joined[-1][0], max(e, joined[-1][1]))
        else:
            joined.append((s, e))
    parts, at = [], 0
    for s, e in joined:
        parts += [text[at:s], MASK]
        at = e
    parts.append(text[at:])
    return "".join(parts), joined


def redact(
    ledger: Ledger,
    memory_id: str,
    spans: Sequence[tuple[int, int]],
    actor: str,
    reason: str,
    data_dir: str | Path | None = None,
    scrub: bool = True,
    participants: Sequence[ErasureParticipant] | None = None,
) -> EraseReport:
    """Mask ``spans`` of the memory's current text; erase the text of every earlier version."""
    check_actor_reason(actor, reason, "redact", reason_required=True)
    cipher = key_ring(ledger, "redact")
    if not cipher.seals_every_memory:
        raise InvalidRequest("redaction needs a ledger that seals every memory under a key of its own")
    ctx = context(ledger, data_dir, participants, scrub)
    state = ledger.get(memory_id, record_read=False)
    if state.text is None:
        raise StateError(f"memory {memory_id} cannot be read (its content was erased or its subject forgotten)")
    new_text, joined = masked(state.text, spans)
    own: dict[str, None] = {}
    texts: list[str] = []
    for e in ledger.memory_events(memory_id):
        if e.type in CONTENT_EVENTS and e.payload.get("memory_id") == memory_id:
            if "text" in e.payload:
                raise StateError(
                    f"memory {memory_id} has a version written before every memory was sealed: its text is "
                    "plaintext in the append-only log and cannot be redacted"
                )
            sealed = e.payload.get("sealed")
            own.update(
                dict.fromkeys(r.key_id for r in key_refs(sealed) if r.scope == MEMORY_SCOPE and r.id == memory_id)
            )
            texts += opened_texts(cipher, sealed)
    texts += [state.text[s:e] for s, e in joined]
    derived = descendants(ledger, [memory_id])
    derived_states = []
    for mid in derived:
        try:
            derived_states.append(ledger.get(mid, record_read=False))
        except NotFound:
            continue
    holds = read_holds(ledger.log)
    held = holds.covering([state, *derived_states])
    if held:
        raise refuse(ledger.log, held, "redact", actor, [memory_id, *derived], cube=state.cube)
    for d in derived_states:
        for e in ledger.memory_events(d.memory_id):
            if e.type in CONTENT_EVENTS and e.payload.get("memory_id") == d.memory_id:
                sealed = e.payload.get("sealed")
                own.update(
                    dict.fromkeys(r.key_id for r in key_refs(sealed) if r.scope == MEMORY_SCOPE and r.id == d.memory_id)
                )
                texts += opened_texts(cipher, sealed)
    others = [k for k in state.keys if not (k.get("scope") == MEMORY_SCOPE and k.get("id") == memory_id)]
    keys = [cipher.memory_ref(memory_id).to_dict(), *others]
    content = ledger.content_fields(new_text, state.metadata, memory_id, state.subjects, keys=keys)
    eid = erasure_id_of([f"redact:{memory_id}:{state.updated_offset}"])
    texts = list(dict.fromkeys(t for t in texts if t))
    ctx.save_pending(eid, texts, [memory_id, *derived])
    key_ids = list(own)
    head = ledger.head()
    redacted: dict[str, Any] = {
        "memory_id": memory_id,
        "erasure_id": eid,
        "spans": [list(s) for s in joined],
        "key_ids": key_ids,
        "derived_memory_ids": derived,
        "reason": reason,
    }
    restored: dict[str, Any] = {
        "memory_id": memory_id,
        "to_offset": head,
        "exists": True,
        **content,
        "tags": list(state.tags),
        "state": state.state,
        "reason": f"redacted: {reason}"[:2000],
    }
    if ledger.log.stream_version(HOLDS_STREAM) != holds.version:
        raise StateError("the legal holds changed while the redaction was prepared; nothing was changed: try again")
    _destroyed, problem = cipher.destroy_memory_keys(key_ids)  # the erasure of the earlier versions
    written = ledger.log.append(
        [
            NewEvent(state.cube, ev.MEMORY_REDACTED, redacted, actor, correlation_id=eid),
            NewEvent(state.cube, ev.MEMORY_RESTORED, restored, actor, correlation_id=eid),
        ]
    )
    report = EraseReport(eid, [memory_id], derived, key_ids, [e.offset for e in written], checks=ErasureChecks())
    if problem:
        report.checks.problems.append(problem)
    erasure = present(erasure_of(ledger.registry.upcast(written[0])), "the erasure of a memory.redacted event")
    # the memory itself lives on (masked): its earlier texts are looked for, not its rows
    erasure = Erasure((), tuple(derived), erasure.offset)
    finish(ledger, written[0], erasure, texts, ctx, report.checks)
    ctx.clear_pending(eid, report.checks)
    return report
