"""Forgetting a data subject on a partitioned ledger: one key, every partition.

A subject's memories may live in several cubes, hence several partitions, and each partition's
views (embedded, Elasticsearch, Neo4j) fold only their own partition. So ``forget_partitioned``:

1. collects, from every partition, the payloads sealed under the subject's key, and checks every
   partition's legal holds (a hold in any partition refuses the whole erasure, recorded there);
2. writes the texts to look for to the data directory's pending record, then destroys the key once
   (the key store is shared by every partition);
3. appends ``subject.forgotten`` to the ``_system`` stream of **every** partition, naming the
   memories of that partition, so each partition's views and duplicate index purge them;
4. runs each partition's erasure participants, then scrubs and greps the whole data directory once.

Re-running it finishes an interrupted erasure: partitions that already hold the record reuse it,
the others get it. A report names the offset of the record in each partition.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledger.errors import NotFound, present
from ledger.events import Event
from ledger.governance.erasure import ErasureChecks, check_actor_reason, context, finish, key_ring
from ledger.governance.forget import ForgetReport, SubjectPayloads, record_forgotten, subject_payloads
from ledger.governance.holds import read_holds, refuse
from ledger.governance.keystore import check_subject
from ledger.governance.scrub import find_residue, residue_needles, scrub_sqlite
from ledger.memory_state import Erasure, erasure_of
from ledger.partitions.partitioned_ledger import PartitionedLedger


@dataclass(slots=True)
class PartitionedForgetReport(ForgetReport):
    """A ``ForgetReport`` (its ``offset`` is partition 0's record) with the offset of the
    ``subject.forgotten`` record in every partition."""

    offsets: dict[int, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**ForgetReport.to_dict(self), "offsets": {str(k): v for k, v in sorted(self.offsets.items())}}


def forget_partitioned(
    pledger: PartitionedLedger,
    subject: str,
    actor: str,
    reason: str | None = None,
    data_dir: str | Path | None = None,
    scrub: bool = True,
) -> PartitionedForgetReport:
    """Crypto-shred ``subject`` across every partition of ``pledger`` (see the module docstring)."""
    check_subject(subject)
    check_actor_reason(actor, reason, "forget", reason_required=False)
    ledgers = pledger.ledgers
    cipher = key_ring(ledgers[0], "forget")
    contexts = [context(led, data_dir, None, scrub=False) for led in ledgers]
    name = f"subject:{subject}"
    found = [subject_payloads(led, cipher, subject) for led in ledgers]
    keystore = cipher.keystore
    live = keystore.get(subject)
    pending = contexts[0].load_pending(name)
    recorded = [f.last_forgotten for f in found]
    if (
        live is None
        and pending is None
        and all(r is None and f.count == 0 for r, f in zip(recorded, found, strict=True))
    ):
        raise NotFound(f"no data subject {subject!r}: no key and no sealed payloads")
    memory_ids = [m for f in found for m in f.memory_ids]
    key_id: str | None = None
    if live is not None:  # a new erasure: every partition's holds, then the pending record, then the key
        _check_holds(pledger, found, subject, actor)
        texts = [t for f in found for t in f.texts]
        contexts[0].save_pending(name, texts, memory_ids)
        key_id = keystore.destroy(subject)
    else:
        texts = pending.texts if pending is not None else []
        key_id = next((r.payload.get("key_id") for r in recorded if r is not None), None)
    report = PartitionedForgetReport(
        subject,
        -1,
        key_id,
        already_forgotten=live is None and all(r is not None for r in recorded),
        sealed_payloads=sum(f.count for f in found),
        memory_ids=memory_ids,
    )
    for k, led in enumerate(ledgers):
        ids = list(found[k].memory_ids)
        event = recorded[k]
        if event is None:
            event = record_forgotten(led, subject, key_id, reason, ids, actor)
        else:
            event = led.registry.upcast(event)
        report.offsets[k] = event.offset
        if k == 0:
            report.offset = event.offset
        _finish_partition(led, event, ids, texts, contexts[k], report.checks)
    _scrub_and_grep(pledger, contexts[0].root if scrub else None, texts, report.checks)
    contexts[0].clear_pending(name, report.checks)
    return report


def _check_holds(pledger: PartitionedLedger, found: list[SubjectPayloads], subject: str, actor: str) -> None:
    """Refuse (recorded in the partition of the hold) when a legal hold of any partition covers it."""
    for k, led in enumerate(pledger.ledgers):
        ids = list(found[k].memory_ids)
        held = read_holds(led.log).covering(cubes=found[k].cubes, subjects=[subject], memory_ids=ids)
        if held:
            raise refuse(led.log, held, "forget", actor, ids, subject=subject)


def _finish_partition(
    led: Any, event: Event, ids: list[str], texts: list[str], ctx: Any, checks: ErasureChecks
) -> None:
    """Purge partition ``led``'s participants and run the hooks (the data directory is scrubbed once,
    after every partition)."""
    erasure = present(erasure_of(event), "the erasure of a subject.forgotten event")
    erasure = Erasure(erasure.subjects, tuple(dict.fromkeys((*erasure.memory_ids, *ids))), erasure.offset)
    finish(led, event, erasure, texts, ctx, checks)


def _scrub_and_grep(pledger: PartitionedLedger, root: Path | None, texts: list[str], checks: ErasureChecks) -> None:
    """Scrub every SQLite database of the data directory (the partitions' logs are append-only) and
    look for the erased texts in every file."""
    checks.checked_texts = len(texts)
    if root is None:
        return
    logs = [p for led in pledger.ledgers if (p := led.log.storage_path()) is not None]
    result = scrub_sqlite(root, append_only=logs)
    checks.scrubbed = result.databases
    checks.problems.extend(result.problems)
    checks.residue.extend(find_residue(root, residue_needles(texts)))
