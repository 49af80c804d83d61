"""The right to be forgotten: crypto-shredding one data subject.

``forget(ledger, subject, actor, reason)``:

1. reads the subject's sealed payloads once more (to know what must disappear): every payload
   sealed under the subject's key, derived ones included (a chat answer or a merge that used the
   subject's memories is sealed under their key too, so the ref index names the subject);
2. records the texts to look for and the erased memory ids in a pending record encrypted under a
   key of its own (``ledger.governance.pending``), so an interrupted erasure can still be checked;
3. destroys the subject's key (the erasure itself: every copy of the ciphertext, in the log, in
   branches, in backups, becomes unreadable);
4. appends ``subject.forgotten`` to the ``_system`` stream (the audit record, with the erased
   memory ids; views purge those rows when they see it);
5. lets every erasure participant catch up: the data directory's views and caches (search views,
   embedding cache, KV caches; see ``projections.erasure``), then hooks registered in code with
   ``register_forget_hook`` or named in ``[governance] forget_hooks = ["module:function"]``;
6. scrubs every SQLite database of the data directory (VACUUM, FTS5 optimize, WAL truncate);
7. checks for residue: the erased texts in any file (verbatim or JSON-escaped), and what each
   participant reports (rows of erased memories, embedding-cache entries of erased texts, KV caches
   built from erased memories, token ids that decode to an erased text);
8. once nothing remains, shreds the pending record.

The hash chain still verifies: hashes cover the ciphertext, which is untouched.

Re-running ``forget`` finishes every step of an interrupted erasure: a subject whose key is gone is
reported as ``already_forgotten``, and steps 4-8 run again (with the texts from the pending record,
if the first run did not complete).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ledger import events as ev
from ledger.api import Ledger
from ledger.config import resolve
from ledger.errors import InvalidRequest, NotFound, present
from ledger.events import Event, NewEvent
from ledger.governance.cipher import KeyRing, TamperedPayload, sealed_subjects
from ledger.governance.keystore import check_subject
from ledger.governance.pending import PendingErasures
from ledger.governance.scrub import find_residue, residue_needles, scrub_sqlite
from ledger.memory_state import CONTENT_EVENTS, LINEAGE_METADATA_KEYS, Erasure, erasure_of

ForgetHook = Callable[[Ledger, Event], None]
_HOOKS: list[ForgetHook] = []
MAX_REASON = 2000


class ErasureParticipant(Protocol):
    """A view or cache outside the log that must let go of erased data, and can say whether it has."""

    name: str

    def erase(self, ledger: Ledger, event: Event) -> None:
        """Apply the erasure ``event`` (typically: catch up from the log, which purges)."""
        ...

    def residue(self, erasure: Erasure, texts: Sequence[str]) -> list[str]:
        """What of the erased memories (or texts) this participant still holds, one line each."""
        ...


def register_forget_hook(hook: ForgetHook) -> None:
    """Run ``hook(ledger, forgotten_event)`` after every erasure (e.g. catch a view up)."""
    if hook not in _HOOKS:
        _HOOKS.append(hook)


def unregister_forget_hook(hook: ForgetHook) -> None:
    """Remove a hook added with ``register_forget_hook``."""
    if hook in _HOOKS:
        _HOOKS.remove(hook)


@dataclass(slots=True)
class ForgetReport:
    """What an erasure did. ``complete`` is False when residue or problems remain."""

    subject: str
    offset: int
    key_id: str | None
    already_forgotten: bool = False
    sealed_payloads: int = 0
    memory_ids: list[str] = field(default_factory=list)
    scrubbed: list[str] = field(default_factory=list)
    residue: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    checked_texts: int = 0

    @property
    def complete(self) -> bool:
        return not self.residue and not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "offset": self.offset,
            "key_id": self.key_id,
            "already_forgotten": self.already_forgotten,
            "sealed_payloads": self.sealed_payloads,
            "memories": len(self.memory_ids),
            "scrubbed": self.scrubbed,
            "residue": self.residue,
            "problems": self.problems,
            "checked_texts": self.checked_texts,
            "complete": self.complete,
        }


def _cipher(ledger: Ledger) -> KeyRing:
    sealer = ledger.sealer
    if not isinstance(sealer, KeyRing):
        raise InvalidRequest("this ledger has no key store configured; there is nothing to forget")
    return sealer


@dataclass(slots=True)
class _SubjectPayloads:
    texts: list[str] = field(default_factory=list)
    memory_ids: dict[str, None] = field(default_factory=dict)
    count: int = 0
    last_forgotten: Event | None = None


def _subject_payloads(ledger: Ledger, cipher: KeyRing, subject: str) -> _SubjectPayloads:
    """Decrypted texts (while the key lives), memory ids and count of the payloads sealed under
    ``subject``'s key, and the last ``subject.forgotten`` event of the subject."""
    out = _SubjectPayloads()
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
        try:
            opened = cipher.open(sealed)
        except TamperedPayload:
            continue
        if opened is None:
            continue
        if isinstance(opened.get("text"), str):
            out.texts.append(opened["text"])
        meta = opened.get("metadata")
        if isinstance(meta, dict):
            out.texts.extend(v for k, v in meta.items() if isinstance(v, str) and k not in LINEAGE_METADATA_KEYS)
    return out


def _config_hooks(ledger: Ledger) -> list[ForgetHook]:
    config = ledger.config
    if config is None:
        return []
    names = config.section("governance").get("forget_hooks", [])
    if not isinstance(names, list) or not all(isinstance(n, str) and ":" in n for n in names):
        raise InvalidRequest('[governance] forget_hooks must be a list of "module:function" strings')
    return [resolve(name, "forget hook") for name in names]


def _pending_store(ledger: Ledger, root: Path | None) -> PendingErasures | None:
    if root is None:
        return None
    from ledger.config import load_config
    from ledger.governance.keystore_factory import keys_dir

    return PendingErasures(root, keys_dir(ledger.config or load_config(root)))


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

    ``data_dir`` defaults to the directory the ledger was opened from (``ledger.config``); without
    one, steps 5-8 only reach the given ``participants``. ``participants`` default to the ledger's
    own (``Ledger.erasure_participants``: the data directory's views and caches).
    """
    check_subject(subject)
    if not isinstance(actor, str) or not actor:
        raise InvalidRequest("forget needs the actor who requests the erasure")
    if reason is not None and (not isinstance(reason, str) or len(reason) > MAX_REASON):
        raise InvalidRequest(f"reason must be a string of at most {MAX_REASON} characters")
    cipher = _cipher(ledger)
    config = ledger.config
    root = Path(data_dir) if data_dir is not None else (config.data_dir if config is not None else None)
    # resolve everything that can fail before anything irreversible happens
    hooks = _config_hooks(ledger) + list(_HOOKS)
    chosen = list(participants) if participants is not None else ledger.participants_for_erasure(root)
    pending_store = _pending_store(ledger, root)
    name = f"subject:{subject}"
    found = _subject_payloads(ledger, cipher, subject)
    keystore = cipher.keystore
    live = keystore.get(subject)
    pending = pending_store.load(name) if pending_store is not None else None
    if live is None and found.last_forgotten is None and found.count == 0 and pending is None:
        raise NotFound(f"no data subject {subject!r}: no key and no sealed payloads")
    memory_ids = list(found.memory_ids)
    if live is not None:  # a new erasure: write down what to check for before the key goes
        texts = found.texts
        if pending_store is not None:
            pending = pending_store.save(name, texts, memory_ids)
        key_id = keystore.destroy(subject)  # the erasure
        event = _record(ledger, subject, key_id, reason, memory_ids, actor)
        report = ForgetReport(subject, event.offset, key_id, sealed_payloads=found.count, memory_ids=memory_ids)
    else:
        texts = pending.texts if pending is not None else []
        if found.last_forgotten is None:  # interrupted between destroying the key and recording it
            event = _record(ledger, subject, None, reason, memory_ids, actor)
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
    _finish(ledger, event, texts, root, scrub, chosen, hooks, report)
    if report.complete and pending_store is not None:
        pending_store.clear(name)
    return report


def _record(
    ledger: Ledger, subject: str, key_id: str | None, reason: str | None, memory_ids: list[str], actor: str
) -> Event:
    payload: dict[str, Any] = {"subject": subject, "memory_ids": memory_ids}
    if key_id:
        payload["key_id"] = key_id
    if reason:
        payload["reason"] = reason
    return ledger.log.append([NewEvent(ev.SYSTEM_STREAM, ev.SUBJECT_FORGOTTEN, payload, actor)])[0]


def _finish(
    ledger: Ledger,
    event: Event,
    texts: list[str],
    root: Path | None,
    scrub: bool,
    participants: Sequence[ErasureParticipant],
    hooks: Sequence[ForgetHook],
    report: ForgetReport,
) -> None:
    """Steps 5-7: purge everywhere, scrub, look for residue (each problem is reported, none aborts)."""
    erasure = present(erasure_of(event), "the erasure of a subject.forgotten event")
    erasure = Erasure(erasure.subjects, tuple(dict.fromkeys((*erasure.memory_ids, *report.memory_ids))))
    for part in participants:
        try:
            part.erase(ledger, event)
        except Exception as exc:  # noqa: BLE001 - the key is gone already; report, don't abort
            report.problems.append(f"{part.name} did not purge: {exc}")
    for hook in hooks:
        try:
            hook(ledger, event)
        except Exception as exc:  # noqa: BLE001
            report.problems.append(f"forget hook {getattr(hook, '__qualname__', hook)!r} failed: {exc}")
    report.checked_texts = len(texts)
    if root is not None and scrub:
        log_path = ledger.log.storage_path()
        result = scrub_sqlite(root, append_only=[log_path] if log_path else [])
        report.scrubbed = result.databases
        report.problems.extend(result.problems)
        report.residue.extend(find_residue(root, residue_needles(texts)))
    for part in participants:
        try:
            report.residue.extend(f"{part.name}: {r}" for r in part.residue(erasure, texts))
        except Exception as exc:  # noqa: BLE001
            report.problems.append(f"{part.name} could not be checked for residue: {exc}")
    if not participants and root is not None and any((root / d).exists() for d in ("views", "kv_cache")):
        report.problems.append(f"{root} has views or caches but no erasure participant was given to purge them")
