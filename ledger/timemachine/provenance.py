"""Provenance: for any version of a memory, the chain of events it came from.

For a merged memory the sources are followed recursively (each as it stood just before the
merge), and a restored version points at the version it was restored from. Each event carries
its hash and whether its stored content still matches that hash, so an auditor can check it.
"""

from __future__ import annotations

from typing import Any

from ledger import events as ev
from ledger.api import Ledger
from ledger.canonical import canonical_bytes, chain_hash
from ledger.errors import InvalidRequest, NotFound
from ledger.events import Event
from ledger.memory_state import history
from ledger.timemachine.audit import action_of

MAX_DEPTH = 32


def hash_matches(e: Event) -> bool:
    """True when the stored (not upcast) event's content hashes to its recorded hash."""
    again = chain_hash(
        e.prev_hash,
        e.offset,
        e.stream,
        e.version,
        e.event_id,
        e.type,
        e.schema_version,
        e.ts_us,
        e.actor,
        e.causation_id,
        e.correlation_id,
        canonical_bytes(e.payload),
    )
    return again == e.hash


def _merged_from_branch(ledger: Ledger, e: Event) -> str | None:
    """The branch an event was replayed from by ``branch merge`` (its correlation id names the merge)."""
    if not e.correlation_id:
        return None
    cause = ledger.log.get_by_id(e.correlation_id)
    if cause is not None and cause.type == ev.BRANCH_MERGED:
        return str(cause.payload["name"])
    return None


def provenance(
    ledger: Ledger,
    memory_id: str,
    as_of: int | str | None = None,
    version: int | None = None,
    _depth: int = 0,
    _seen: frozenset[tuple[str, int]] = frozenset(),
) -> dict[str, Any]:
    """The provenance tree of ``memory_id`` at ``version`` (default: its version current at ``as_of``)."""
    end = ledger.resolve_as_of(as_of)
    raw = list(ledger.log.read_refs(memory_id, end))
    versions = history(memory_id, [ledger.registry.upcast(e) for e in raw], ledger.opener)
    if not versions:
        raise NotFound(f"memory {memory_id} not found" + ("" if as_of is None else f" as of offset {end}"))
    if version is None:
        chosen = versions[-1]
    else:
        if not 1 <= version <= len(versions):
            raise InvalidRequest(f"memory {memory_id} has versions 1..{len(versions)} as of offset {end}")
        chosen = versions[version - 1]
    by_offset = {e.offset: e for e in raw}
    chain = []
    sources: list[dict[str, Any]] = []
    restored_from: list[dict[str, Any]] = []
    key = (memory_id, chosen.updated_offset)
    seen = _seen | {key}
    for n, off in enumerate(chosen.event_offsets, start=1):
        e = by_offset[off]
        entry = {
            "version": n,
            "offset": e.offset,
            "time": e.time,
            "actor": e.actor,
            "type": e.type,
            "action": action_of(e),
            "event_id": e.event_id,
            "hash": e.hash,
            "prev_hash": e.prev_hash,
            "hash_ok": hash_matches(e),
        }
        via = _merged_from_branch(ledger, e)
        if via is not None:
            entry["via_branch"] = via
        chain.append(entry)
        if _depth >= MAX_DEPTH:
            continue
        if e.type == ev.MEMORY_MERGED and e.payload.get("memory_id") == memory_id:
            for src in e.payload.get("sources", []):
                if (src, e.offset - 1) in seen:
                    continue
                try:
                    sources.append(provenance(ledger, src, e.offset - 1, None, _depth + 1, seen))
                except NotFound:
                    sources.append({"memory": src, "missing": True})
        if e.type == ev.MEMORY_RESTORED and e.payload.get("exists", True) and e.payload["to_offset"] >= 0:
            try:
                restored_from.append(provenance(ledger, memory_id, e.payload["to_offset"], None, _depth + 1, seen))
            except NotFound:
                pass
    return {
        "memory": memory_id,
        "version": chosen.version,
        "as_of": end,
        "state": chosen.to_dict(),
        "events": chain,
        "sources": sources,
        "restored_from": restored_from,
    }
