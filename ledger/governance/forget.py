"""The right to be forgotten: crypto-shredding one data subject.

``forget(ledger, subject, actor, reason)``:

1. reads the subject's sealed payloads once more (to know what must disappear),
2. destroys the subject's key (the erasure itself: every copy of the ciphertext, in the log,
   in branches, in backups, becomes unreadable),
3. appends ``subject.forgotten`` to the ``_system`` stream (the audit record; views purge the
   subject's rows when they see it),
4. runs the forget hooks: the data directory's views are caught up (``projections.view_set``,
   when the directory has views), then hooks registered in code with ``register_forget_hook``
   or named in ``[governance] forget_hooks = ["module:function"]``,
5. scrubs every SQLite database of the data directory (VACUUM, FTS5 optimize, WAL truncate),
6. greps every file of the data directory for the texts of step 1 and reports any residue.

The hash chain still verifies: hashes cover the ciphertext, which is untouched.

Re-running ``forget`` is safe: a subject whose key is gone and whose erasure is recorded is
reported as already forgotten; an erasure interrupted between steps 2 and 3 is completed.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledger import events as ev
from ledger.api import Ledger
from ledger.errors import InvalidRequest, NotFound
from ledger.events import Event, NewEvent
from ledger.governance.cipher import SubjectCipher, TamperedPayload
from ledger.governance.keystore import check_subject
from ledger.governance.scrub import find_residue, residue_needles, scrub_sqlite

ForgetHook = Callable[[Ledger, Event], None]
_HOOKS: list[ForgetHook] = []
MAX_REASON = 2000


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
    scrubbed: list[str] = field(default_factory=list)
    residue: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.residue and not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"subject": self.subject, "offset": self.offset, "key_id": self.key_id,
                "already_forgotten": self.already_forgotten, "sealed_payloads": self.sealed_payloads,
                "scrubbed": self.scrubbed, "residue": self.residue, "problems": self.problems,
                "complete": self.complete}


def _cipher(ledger: Ledger) -> SubjectCipher:
    sealer = ledger.sealer
    if not isinstance(sealer, SubjectCipher):
        raise InvalidRequest("this ledger has no key store configured; there is nothing to forget")
    return sealer


def _subject_texts(ledger: Ledger, cipher: SubjectCipher, subject: str) -> tuple[list[str], int, Event | None]:
    """(decrypted texts, number of sealed payloads, last subject.forgotten event) of a subject."""
    texts: list[str] = []
    count = 0
    last_forgotten: Event | None = None
    for e in ledger.log.read_refs(subject):
        if e.type == ev.SUBJECT_FORGOTTEN and e.payload.get("subject") == subject:
            last_forgotten = e
            continue
        sealed = e.payload.get("sealed")
        if not isinstance(sealed, dict) or sealed.get("subject") != subject:
            continue
        count += 1
        try:
            opened = cipher.open(sealed)
        except TamperedPayload:
            continue
        if opened is None:
            continue
        if isinstance(opened.get("text"), str):
            texts.append(opened["text"])
        meta = opened.get("metadata")
        if isinstance(meta, dict):
            texts.extend(v for v in meta.values() if isinstance(v, str))
    return texts, count, last_forgotten


def _config_hooks(ledger: Ledger) -> list[ForgetHook]:
    config = getattr(ledger, "config", None)
    if config is None:
        return []
    names = config.section("governance").get("forget_hooks", [])
    if not isinstance(names, list) or not all(isinstance(n, str) and ":" in n for n in names):
        raise InvalidRequest('[governance] forget_hooks must be a list of "module:function" strings')
    hooks = []
    for name in names:
        module, func = name.split(":", 1)
        hooks.append(getattr(importlib.import_module(module), func))
    return hooks


def _view_hook(root: Path | None) -> list[ForgetHook]:
    """Catch the data directory's views up (they purge on ``subject.forgotten``), if it has any."""
    if root is None or not (root / "views").is_dir():
        return []
    try:
        from projections.view_set import ViewSet  # type: ignore[import-not-found]
    except ImportError:
        return []

    def catch_up_views(ledger: Ledger, event: Event) -> None:
        try:
            views = ViewSet.open(ledger, root)
        except Exception as exc:  # e.g. the vector view's embedder cannot load here
            with ViewSet.open(ledger, root, kinds=("keyword", "graph")) as partial:
                partial.catch_up()
            raise RuntimeError(f"only the keyword and graph views were caught up; the others did not open: "
                               f"{exc}") from exc
        with views:
            views.catch_up()

    return [catch_up_views]


def forget(ledger: Ledger, subject: str, actor: str, reason: str | None = None,
           data_dir: str | Path | None = None, scrub: bool = True) -> ForgetReport:
    """Crypto-shred ``subject``: destroy its key, record the erasure, purge and check the data dir.

    ``data_dir`` defaults to the directory the ledger was opened from (``ledger.config``);
    without one, steps 5-6 are skipped.
    """
    check_subject(subject)
    if not isinstance(actor, str) or not actor:
        raise InvalidRequest("forget needs the actor who requests the erasure")
    if reason is not None and (not isinstance(reason, str) or len(reason) > MAX_REASON):
        raise InvalidRequest(f"reason must be a string of at most {MAX_REASON} characters")
    cipher = _cipher(ledger)
    config = getattr(ledger, "config", None)
    root = Path(data_dir) if data_dir is not None else (config.data_dir if config is not None else None)
    # resolve the hooks before anything irreversible happens
    hooks = _view_hook(root) + _config_hooks(ledger) + list(_HOOKS)
    keystore = cipher.keystore
    texts, count, last_forgotten = _subject_texts(ledger, cipher, subject)
    live = keystore.get(subject)
    if live is None:
        if last_forgotten is not None:
            rep = ForgetReport(subject, last_forgotten.offset, last_forgotten.payload.get("key_id"),
                               already_forgotten=True, sealed_payloads=count)
            return rep
        if count == 0:
            raise NotFound(f"no data subject {subject!r}: no key and no sealed payloads")
    key_id = keystore.destroy(subject) if live is not None else None  # the erasure
    payload: dict[str, Any] = {"subject": subject}
    if key_id:
        payload["key_id"] = key_id
    if reason:
        payload["reason"] = reason
    event = ledger.log.append([NewEvent(ev.SYSTEM_STREAM, ev.SUBJECT_FORGOTTEN, payload, actor)])[0]
    report = ForgetReport(subject, event.offset, key_id, sealed_payloads=count)
    for hook in hooks:
        try:
            hook(ledger, event)
        except Exception as exc:  # the key is gone already; report, don't abort
            report.problems.append(f"forget hook {getattr(hook, '__qualname__', hook)!r} failed: {exc}")
    if scrub and root is not None:
        log_path = getattr(ledger.log, "path", None)
        result = scrub_sqlite(root, append_only=[Path(log_path)] if log_path else [])
        report.scrubbed = result.databases
        report.problems.extend(result.problems)
        report.residue = find_residue(root, residue_needles(texts))
    return report
