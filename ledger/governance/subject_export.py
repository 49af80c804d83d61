"""Access requests (GDPR Art. 15): export everything the ledger holds about one data subject.

``export_subject(ledger, subject, sign=True)`` yields JSON-lines records:

* a header: ``{"format": "memledger-subject-export", "version": 1, "subject": S, "source_ledger",
  "tree_size", "merkle_root", "head_hash", "records", "exported_at", "leaf"}`` and, signed, an
  ``anchor`` (a signed checkpoint of the whole log and a consistency proof from the export's tree
  to it, as a cube export has);
* one record per event about S, in log order: ``{"event": <envelope>, "proof": [<hex>...]}`` plus,
  for a sealed payload, ``"content"`` (the decrypted text and metadata) and ``"content_key"`` (the
  AES key of that one payload, base64) so the reader can check the content against the ciphertext
  the hash covers. The events are: every payload sealed under S's key, every event of the memories
  they belong to (versions, reads, lifecycle moves, deletions, erasures, holds and refusals), and
  every event of the memories derived from them (lineage), plus S's own erasure and holds.

A derived memory that is also about another data subject is listed, but its content is withheld
(``"withheld"`` says why): an access request must not disclose someone else's data. A content key
opens only the payloads sealed under exactly the same keys (the versions of one memory), never
another subject's.

``ledger.governance.subject_verifier`` checks such a file offline with nothing but the ledger's
checkpoint public key. It proves that every record is in the signed log and every content is what
the log holds; it cannot prove that nothing was left out (only the ledger knows its ref index).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import IO, Any

import orjson

from ledger import events as ev
from ledger.api import Ledger
from ledger.errors import NotFound
from ledger.events import Event, NewEvent
from ledger.governance.anchor import export_header
from ledger.governance.cipher import SEAL_V2, KeyRing, TamperedPayload, sealed_subjects
from ledger.governance.erasure import key_ring
from ledger.governance.keystore import check_subject
from ledger.memory_state import CONTENT_EVENTS
from ledger.timemachine.lineage import descendants

FORMAT = "memledger-subject-export"
VERSION = 1
MAX_READ_IDS = 10_000


def subject_events(ledger: Ledger, subject: str) -> tuple[list[Event], list[str]]:
    """Every event about ``subject`` (offset order) and the memories they concern."""
    own = list(ledger.log.read_refs(subject))
    memories: dict[str, None] = {}
    for e in own:
        sealed = e.payload.get("sealed")
        if e.type in CONTENT_EVENTS and isinstance(sealed, dict) and subject in sealed_subjects(sealed):
            memories[e.payload["memory_id"]] = None
    mids = list(memories)
    mids += descendants(ledger, mids)
    found: dict[int, Event] = {e.offset: e for e in own}
    for mid in mids:
        found.update((e.offset, e) for e in ledger.log.read_refs(mid))
    return [found[o] for o in sorted(found)], list(dict.fromkeys(mids))


def _content(cipher: KeyRing, subject: str, e: Event) -> dict[str, Any]:
    sealed = e.payload.get("sealed")
    if not isinstance(sealed, dict):
        return {}
    others = [s for s in sealed_subjects(sealed) if s != subject]
    if others:
        return {"withheld": f"also about {len(others)} other data subject(s)"}
    try:
        opened = cipher.open(sealed)
    except TamperedPayload:
        return {"withheld": "the payload fails authentication (it was modified)"}
    if opened is None:
        return {"withheld": "erased: a key this payload needs was destroyed"}
    out: dict[str, Any] = {"content": opened}
    if sealed.get("v") == SEAL_V2:
        key = cipher.content_key(sealed)
        if key is not None:
            out["content_key"] = base64.b64encode(key).decode()
    return out


def export_subject(
    ledger: Ledger, subject: str, sign: bool = False, actor: str | None = None
) -> Iterator[dict[str, Any]]:
    """The export records (header first); the export itself is recorded as reads by ``actor``."""
    check_subject(subject)
    cipher = key_ring(ledger, "export for a data subject")
    events, mids = subject_events(ledger, subject)
    if not events:
        raise NotFound(f"no data subject {subject!r}: nothing in the log refers to it")
    end = ledger.head()
    tree, header = export_header(ledger, end, (FORMAT, VERSION), {"subject": subject}, ("records", len(events)), sign)
    records = [
        {
            "event": e.to_dict(),
            "proof": [p.hex() for p in tree.inclusion_proof(e.offset, tree.size)],
            **_content(cipher, subject, e),
        }
        for e in events
    ]
    _record_reads(ledger, subject, mids, events, actor)
    yield header
    yield from records


def _record_reads(ledger: Ledger, subject: str, mids: list[str], events: list[Event], actor: str | None) -> None:
    """An access request reads the subject's memories: audit it, one read per cube."""
    if actor is None or not mids:
        return
    cube_of = {e.payload["memory_id"]: e.stream for e in events if e.type in (ev.MEMORY_ADDED, ev.MEMORY_MERGED)}
    by_cube: dict[str, list[str]] = {}
    for m in mids:
        if m in cube_of:
            by_cube.setdefault(cube_of[m], []).append(m)
    batch = [
        NewEvent(
            cube,
            ev.MEMORY_READ,
            {"memory_ids": ids[i : i + MAX_READ_IDS], "operation": "subject-export", "query": subject},
            actor,
        )
        for cube, ids in sorted(by_cube.items())
        for i in range(0, len(ids), MAX_READ_IDS)
    ]
    if batch:
        ledger.log.append(batch)


def write_subject_export(
    ledger: Ledger, subject: str, out: IO[bytes], sign: bool = False, actor: str | None = None
) -> int:
    """Write the export to a binary stream; return the number of event records."""
    n = 0
    for rec in export_subject(ledger, subject, sign, actor):
        out.write(orjson.dumps(rec) + b"\n")
        n += "event" in rec
    return n
