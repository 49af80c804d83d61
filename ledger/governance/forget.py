"""The right to be forgotten: crypto-shredding one data subject.

``forget(ledger, subject, actor, reason)`` finds every payload sealed under the subject's key
(derived ones included: a chat answer or a merge that used the subject's memories is sealed under
their key too, so the ref index names the subject), refuses if a legal hold covers the subject or
any of those memories (the attempt is recorded), destroys the subject's key, appends
``subject.forgotten`` to the ``_system`` stream (with the erased memory ids; views purge those
rows when they see it), and runs the erasure engine's purge, scrub and residue steps
(``ledger.governance.erasure``).

Re-running ``forget`` finishes every step of an interrupted erasure: a subject whose key is gone is
reported as ``already_forgotten``, and the purge and checks run again (with the texts from the
pending record, if the first run did not complete).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledger import events as ev
from ledger.api import Ledger
from ledger.errors import NotFound, present
from ledger.events import Event, NewEvent
from ledger.governance.cipher import KeyRing, sealed_subjects
from ledger.governance.erasure import (
    ErasureChecks,
    ErasureParticipant,
    check_actor_reason,
    context,
    finish,
    key_ring,
    opened_texts,
    register_forget_hook,
    unregister_forget_hook,
)
from ledger.governance.holds import read_holds, refuse
from ledger.governance.keystore import check_subject
from ledger.memory_state import CONTENT_EVENTS, Erasure, erasure_of

__all__ = ["ForgetReport", "forget", "register_forget_hook", "unregister_forget_hook"]


@dataclass(slots=True)
class ForgetReport:
    """What an erasure of a subject did. ``complete`` is False when residue or problems remain."""

    subject: str
    offset: int
    key_id: str | None
    already_forgotten: bool = False
    sealed_payloads: int = 0
    memory_ids: list[str] = field(default_factory=list)
    checks: ErasureChecks = field(default_factory=ErasureChecks)

    @property
    def complete(self) -> bool:
        return self.checks.complete

    @property
    def residue(self) -> list[str]:
        return self.checks.residue

    @property
    def problems(self) -> list[str]:
        return self.checks.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "offset": self.offset,
            "key_id": self.key_id,
            "already_forgotten": self.already_forgotten,
            "sealed_payloads": self.sealed_payloads,
            "memories": len(self.memory_ids),
            **self.checks.to_dict(),
        }


@dataclass(slots=True)
class SubjectPayloads:
    """What the log holds under one subject's key (see ``subject_payloads``)."""

    texts: list[str] = field(default_factory=list)
    memory_ids: dict[str, None] = field(default_factory=dict)
    cubes: dict[str, None] = field(default_factory=dict)
    count: int = 0
    last_forgotten: Event | None = None


def subject_payloads(ledger: Ledger, cipher: KeyRing, subject: str) -> SubjectPayloads:
    """Decrypted texts (while the key lives), memory ids, cubes and count of the payloads sealed under
    ``subject``'s key, and the last ``subject.forgotten`` event of the subject."""
    out = SubjectPayloads()
    for e in ledger.log.read_refs(subject):
        if e.type == ev.SUBJECT_FORGOTTEN and e.payload.get("subject") == subject:
            out.last_forgotten = e
            continue
        sealed = e.payload.get("sealed")
        if not isinstance(sealed, dict) or subject not in sealed_subjects(sealed):
            continue
        out.count += 1
        if e.type in CONTENT_EVENTS and isinstance(e.payload.get("memory_id"), str):
            out.memory_ids[e.payload["memory_id"]] = None
            out.cubes[e.stream] = None
        out.texts += opened_texts(cipher, sealed)
    return out


def forget(
    ledger: Ledger,
    subject: str,
    actor: str,
    reason: str | None = None,
    data_dir: str | Path | None = None,
    scrub: bool = True,
    participants: Sequence[ErasureParticipant] | None = None,
) -> ForgetReport:
    """Crypto-shred ``subject``: destroy its key, record the erasure, purge and check the data dir.

    ``data_dir`` and ``participants`` default to the ledger's own (see ``erasure.context``).
    """
    check_subject(subject)
    check_actor_reason(actor, reason, "forget", reason_required=False)
    cipher = key_ring(ledger, "forget")
    ctx = context(ledger, data_dir, participants, scrub)
    name = f"subject:{subject}"
    found = subject_payloads(ledger, cipher, subject)
    keystore = cipher.keystore
    live = keystore.get(subject)
    pending = ctx.load_pending(name)
    if live is None and found.last_forgotten is None and found.count == 0 and pending is None:
        raise NotFound(f"no data subject {subject!r}: no key and no sealed payloads")
    memory_ids = list(found.memory_ids)
    if live is not None:  # a new erasure: check the holds, write down what to check for, then destroy
        holds = read_holds(ledger.log)
        held = holds.covering(cubes=found.cubes, subjects=[subject], memory_ids=memory_ids)
        if held:
            raise refuse(ledger.log, held, "forget", actor, memory_ids, subject=subject)
        texts = found.texts
        ctx.save_pending(name, texts, memory_ids)
        key_id = keystore.destroy(subject)  # the erasure
        event = record_forgotten(ledger, subject, key_id, reason, memory_ids, actor)
        report = ForgetReport(subject, event.offset, key_id, sealed_payloads=found.count, memory_ids=memory_ids)
    else:
        texts = pending.texts if pending is not None else []
        if found.last_forgotten is None:  # interrupted between destroying the key and recording it
            event = record_forgotten(ledger, subject, None, reason, memory_ids, actor)
            report = ForgetReport(subject, event.offset, None, sealed_payloads=found.count, memory_ids=memory_ids)
        else:
            event = ledger.registry.upcast(found.last_forgotten)
            report = ForgetReport(
                subject,
                event.offset,
                event.payload.get("key_id"),
                already_forgotten=True,
                sealed_payloads=found.count,
                memory_ids=memory_ids,
            )
    erasure = present(erasure_of(event), "the erasure of a subject.forgotten event")
    erasure = Erasure(erasure.subjects, tuple(dict.fromkeys((*erasure.memory_ids, *report.memory_ids))), erasure.offset)
    finish(ledger, event, erasure, texts, ctx, report.checks)
    ctx.clear_pending(name, report.checks)
    return report


def record_forgotten(
    ledger: Ledger, subject: str, key_id: str | None, reason: str | None, memory_ids: list[str], actor: str
) -> Event:
    """Append ``subject.forgotten`` (with the erased memory ids) to the ledger's ``_system`` stream."""
    payload: dict[str, Any] = {"subject": subject, "memory_ids": memory_ids}
    if key_id:
        payload["key_id"] = key_id
    if reason:
        payload["reason"] = reason
    return ledger.log.append([NewEvent(ev.SYSTEM_STREAM, ev.SUBJECT_FORGOTTEN, payload, actor)])[0]
