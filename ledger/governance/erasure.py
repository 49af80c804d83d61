"""The erasure engine every erasure shares (``forget`` a subject, ``erase`` memories, ``redact`` a span).

An erasure destroys keys (the irreversible step: every copy of the ciphertext, in the log, in
branches, in backups, becomes unreadable), records the erasure as an event, and then makes sure
nothing readable is left outside the log:

1. before the keys go, the texts to look for and the memory ids are written to a pending record
   (``ledger.governance.pending``), so an interrupted erasure can still be checked;
2. after the event is recorded, every erasure participant catches up (the data directory's views
   and caches, see ``projections.erasure``; views purge the rows the event names), then hooks
   registered in code (``register_forget_hook``) or named in ``[governance] forget_hooks``;
3. every SQLite database of the data directory is scrubbed (VACUUM, FTS5 optimize, WAL truncate);
4. residue is looked for: the erased texts in any file (verbatim or JSON-escaped), and what each
   participant reports (rows of erased memories, embeddings of erased texts, KV caches built from
   erased memories, token ids that decode to an erased text);
5. once nothing remains, the pending record is shredded.

The hash chain still verifies: hashes cover the ciphertext, which is untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ledger.api import Ledger
from ledger.config import resolve
from ledger.errors import InvalidRequest
from ledger.events import Event
from ledger.governance.cipher import KeyRing, TamperedPayload
from ledger.governance.pending import PendingErasure, PendingErasures
from ledger.governance.scrub import find_residue, residue_needles, scrub_sqlite
from ledger.memory_state import LINEAGE_METADATA_KEYS, Erasure
from ledger.rules.content import is_blank

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

    def artifacts(self, memory_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The artifacts it holds that were derived from these memories (for lineage)."""
        ...


def register_forget_hook(hook: ForgetHook) -> None:
    """Run ``hook(ledger, erasure_event)`` after every erasure (e.g. catch a view up)."""
    if hook not in _HOOKS:
        _HOOKS.append(hook)


def unregister_forget_hook(hook: ForgetHook) -> None:
    """Remove a hook added with ``register_forget_hook``."""
    if hook in _HOOKS:
        _HOOKS.remove(hook)


@dataclass(slots=True)
class ErasureChecks:
    """What the purge, scrub and residue steps found (any residue or problem: not complete)."""

    scrubbed: list[str] = field(default_factory=list)
    residue: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    checked_texts: int = 0

    @property
    def complete(self) -> bool:
        return not self.residue and not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "scrubbed": self.scrubbed,
            "residue": self.residue,
            "problems": self.problems,
            "checked_texts": self.checked_texts,
            "complete": self.complete,
        }


@dataclass(slots=True)
class ErasureContext:
    """Where an erasure reaches: the data directory, its participants and hooks, its pending records."""

    root: Path | None
    participants: list[ErasureParticipant]
    hooks: list[ForgetHook]
    pending: PendingErasures | None
    scrub: bool = True

    def save_pending(self, name: str, texts: list[str], memory_ids: list[str]) -> None:
        if self.pending is not None:
            self.pending.save(name, texts, memory_ids)

    def load_pending(self, name: str) -> PendingErasure | None:
        return self.pending.load(name) if self.pending is not None else None

    def clear_pending(self, name: str, checks: ErasureChecks) -> None:
        if checks.complete and self.pending is not None:
            self.pending.clear(name)


def key_ring(ledger: Ledger, what: str) -> KeyRing:
    """The ledger's key ring, or a clear error naming the operation."""
    sealer = ledger.sealer
    if not isinstance(sealer, KeyRing):
        raise InvalidRequest(f"this ledger has no key store configured; there is nothing to {what}")
    return sealer


def check_actor_reason(actor: Any, reason: Any, what: str, reason_required: bool) -> None:
    """One line for a missing actor or a bad reason (checked before anything is written)."""
    if not isinstance(actor, str) or not actor:
        raise InvalidRequest(f"{what} needs the actor who requests it")
    if reason is None and not reason_required:
        return
    if not isinstance(reason, str) or len(reason) > MAX_REASON or (reason_required and is_blank(reason)):
        need = "a non-blank reason" if reason_required else "a reason"
        raise InvalidRequest(f"{what} needs {need}: a string of at most {MAX_REASON} characters")


def context(
    ledger: Ledger,
    data_dir: str | Path | None,
    participants: Sequence[ErasureParticipant] | None,
    scrub: bool = True,
) -> ErasureContext:
    """Resolve everything that can fail before anything irreversible happens.

    ``data_dir`` defaults to the directory the ledger was opened from (``ledger.config``); without
    one, the purge and residue steps only reach the given ``participants``, which default to the
    ledger's own (``Ledger.erasure_participants``: the data directory's views and caches).
    """
    config = ledger.config
    root = Path(data_dir) if data_dir is not None else (config.data_dir if config is not None else None)
    hooks = _config_hooks(ledger) + list(_HOOKS)
    chosen = list(participants) if participants is not None else ledger.participants_for_erasure(root)
    pending = None
    if root is not None:
        from ledger.config import load_config
        from ledger.governance.keystore_factory import keys_dir

        pending = PendingErasures(root, keys_dir(config or load_config(root)))
    return ErasureContext(root, chosen, hooks, pending, scrub)


def _config_hooks(ledger: Ledger) -> list[ForgetHook]:
    config = ledger.config
    if config is None:
        return []
    names = config.section("governance").get("forget_hooks", [])
    if not isinstance(names, list) or not all(isinstance(n, str) and ":" in n for n in names):
        raise InvalidRequest('[governance] forget_hooks must be a list of "module:function" strings')
    return [resolve(name, "forget hook") for name in names]


def opened_texts(cipher: KeyRing, sealed: Any) -> list[str]:
    """The strings of a sealed payload to look for after it is erased (its text and the metadata
    values that are content, not lineage identifiers); none once it cannot be opened."""
    if not isinstance(sealed, dict):
        return []
    try:
        opened = cipher.open(sealed)
    except TamperedPayload:
        return []
    if opened is None:
        return []
    out = [opened["text"]] if isinstance(opened.get("text"), str) else []
    meta = opened.get("metadata")
    if isinstance(meta, dict):
        out += [v for k, v in meta.items() if isinstance(v, str) and k not in LINEAGE_METADATA_KEYS]
    return out


def finish(
    ledger: Ledger, event: Event, erasure: Erasure, texts: Sequence[str], ctx: ErasureContext, checks: ErasureChecks
) -> None:
    """Purge everywhere, scrub, look for residue (each problem is reported, none aborts: the keys
    are gone already)."""
    for part in ctx.participants:
        try:
            part.erase(ledger, event)
        except Exception as exc:  # noqa: BLE001 - report, don't abort
            checks.problems.append(f"{part.name} did not purge: {exc}")
    for hook in ctx.hooks:
        try:
            hook(ledger, event)
        except Exception as exc:  # noqa: BLE001
            checks.problems.append(f"forget hook {getattr(hook, '__qualname__', hook)!r} failed: {exc}")
    checks.checked_texts = len(texts)
    root = ctx.root
    if root is not None and ctx.scrub:
        log_path = ledger.log.storage_path()
        result = scrub_sqlite(root, append_only=[*([log_path] if log_path else []), *ledger.sibling_logs])
        checks.scrubbed = result.databases
        checks.problems.extend(result.problems)
        checks.residue.extend(find_residue(root, residue_needles(texts)))
    for part in ctx.participants:
        try:
            checks.residue.extend(f"{part.name}: {r}" for r in part.residue(erasure, texts))
        except Exception as exc:  # noqa: BLE001
            checks.problems.append(f"{part.name} could not be checked for residue: {exc}")
    if not ctx.participants and root is not None and any((root / d).exists() for d in ("views", "kv_cache")):
        checks.problems.append(f"{root} has views or caches but no erasure participant was given to purge them")
