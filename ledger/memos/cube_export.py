"""Export a cube as a self-verifying JSON-lines file, and import it into another ledger.

A cube's events are interleaved with other cubes' events in the global hash chain, so a
plain chain segment cannot be checked on its own. Instead the export carries, for every
event, an RFC 6962 Merkle inclusion proof of the event's hash against the Merkle root of the
whole log at export time (leaf ``i`` = the 32 raw bytes of the hash of the event at offset
``i``; see ``ledger/governance/merkle.py``).

File layout (one JSON object per line)::

    {"format": "memledger-cube-export", "version": 1, "cube": ..., "source_ledger": <hash of offset 0>,
     "tree_size": N, "merkle_root": <hex>, "head_hash": <hex>, "events": n, "exported_at": ...}
    {"event": <envelope as in `memledger log`>, "proof": [<hex>, ...]}
    ...
    {"memory_keys": [{"key_id": ..., "key": <base64>}, ...]}      (last, when the ledger seals memories)

Every memory is sealed under a key of its own, so the export carries those memory keys (never data
subjects' keys: a subject's memories stay unreadable outside the ledger that holds the subject's key,
as before). The keys are not covered by any hash, and need not be: a wrong key cannot forge content
(AES-GCM authenticates it); it only fails to open. Keep an export as you would its plaintext.

Verification recomputes every event's hash from its own fields (so no byte of an event can
change unnoticed), checks its inclusion proof against the root, and checks the stream
versions run 1..n without a gap (nothing was dropped from the middle). A verifier that knows
the source ledger's root at that size from elsewhere (a signed checkpoint, the auditor's
copy) passes it as ``expected_root``: then the file cannot be forged as a whole either.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import orjson

from ledger.api import Ledger
from ledger.canonical import GENESIS_HASH, canonical_bytes, chain_hash
from ledger.errors import InvalidRequest, LedgerError, NotFound
from ledger.events import Event, NewEvent
from ledger.governance.anchor import export_header
from ledger.governance.cipher import MEMORY_SCOPE, key_refs
from ledger.governance.merkle import leaf_hash, verify_inclusion
from ledger.governance.verifier import CHECKPOINT_FIELDS, EVENT_FIELDS, VerificationFailed, check_fields
from ledger.memos.cubes import CUBE_IMPORTED

FORMAT = "memledger-cube-export"
# fields a header, a record and an anchor may have: anything else is vouched for by nothing
HEADER_FIELDS = frozenset(
    {
        "format",
        "version",
        "cube",
        "source_ledger",
        "tree_size",
        "merkle_root",
        "head_hash",
        "events",
        "exported_at",
        "leaf",
        "anchor",
    }
)
RECORD_FIELDS = frozenset({"event", "proof"})
KEYS_FIELDS = frozenset({"memory_keys"})
ANCHOR_FIELDS = frozenset({"checkpoint", "public_key", "consistency_proof"})
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
VERSION = 1


class ExportVerificationError(LedgerError):
    """A cube export file failed verification; nothing was imported."""


def export_cube(
    ledger: Ledger, cube: str, as_of: int | str | None = None, sign: bool = False
) -> Iterator[dict[str, Any]]:
    """The export records of ``cube`` (header first) as of ``as_of`` (default: head).

    ``sign``: anchor the root in a signed checkpoint of the source ledger (created now, over the
    whole log) plus a consistency proof from the export's tree to the checkpoint's tree, so a
    verifier holding the ledger's public checkpoint key can trust the root itself.
    """
    end = ledger.resolve_as_of(as_of)
    events = list(ledger.log.read_stream(cube, 1, end))
    if not events:
        raise NotFound(f"cube {cube!r} not found" + ("" if as_of is None else f" as of offset {end}"))
    tree, header = export_header(ledger, end, (FORMAT, VERSION), {"cube": cube}, ("events", len(events)), sign)
    yield header
    for e in events:
        yield {"event": e.to_dict(), "proof": [p.hex() for p in tree.inclusion_proof(e.offset, tree.size)]}
    keys = _memory_keys(ledger, events)
    if keys:
        yield {"memory_keys": keys}


def _memory_keys(ledger: Ledger, events: list[Event]) -> list[dict[str, str]]:
    """The memory keys the exported payloads are sealed under (those that still exist)."""
    if ledger.sealer is None:
        return []
    ids = sorted({ref.key_id for e in events for ref in key_refs(e.payload.get("sealed")) if ref.scope == MEMORY_SCOPE})
    found = ledger.sealer.memory_keys(ids)
    return [{"key_id": k, "key": base64.b64encode(v).decode()} for k, v in sorted(found.items())]


def write_export(ledger: Ledger, cube: str, out: IO[bytes], as_of: int | str | None = None, sign: bool = False) -> int:
    """Write the export of ``cube`` to a binary stream; return the number of events."""
    n = 0
    for rec in export_cube(ledger, cube, as_of, sign):
        out.write(orjson.dumps(rec) + b"\n")
        n += "event" in rec
    return n


@dataclass
class VerifiedExport:
    """A verified export: its header and events (raw envelopes, in source order)."""

    header: dict[str, Any]
    events: list[Event]
    memory_keys: list[tuple[str, bytes]] = field(default_factory=list)

    @property
    def cube(self) -> str:
        return str(self.header["cube"])


def _fail(line: int, msg: str) -> ExportVerificationError:
    return ExportVerificationError(f"cube export line {line}: {msg}")


def _only_covered(obj: Any, allowed: frozenset[str], what: str, covered_by: str, line: int | None = None) -> None:
    """Refuse fields nothing covers (and a ``time`` that disagrees with ``ts_us``), as the verifier does."""
    if not isinstance(obj, dict):
        raise ExportVerificationError(f"{what} is not a JSON object")
    try:
        check_fields(obj, allowed, what, covered_by)
    except VerificationFailed as exc:
        raise (_fail(line, str(exc)) if line is not None else ExportVerificationError(str(exc))) from None


def read_records(lines: Iterable[bytes | str]) -> list[dict[str, Any]]:
    """Parse JSON lines (blank lines skipped) with a clear error on bad JSON."""
    out = []
    for i, line in enumerate(lines, 1):
        if not (line.strip() if isinstance(line, str | bytes) else line):
            continue
        try:
            rec = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise _fail(i, f"not valid JSON ({exc})") from None
        if not isinstance(rec, dict):
            raise _fail(i, "not a JSON object")
        out.append(rec)
    return out


def verify_anchor(header: dict[str, Any], trusted_public_key_pem: str | None = None) -> dict[str, Any]:
    """Check a signed export's anchor: the checkpoint's signature, and that the export's tree is a
    prefix of the checkpoint's tree. With ``trusted_public_key_pem`` the signature must be by that
    key; otherwise by the key shipped in the file (which proves integrity, not origin)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from ledger.governance.checkpoints import Checkpoint, CheckpointError
    from ledger.governance.merkle import verify_consistency

    anchor = header.get("anchor")
    if not isinstance(anchor, dict):
        raise ExportVerificationError("cube export is not signed (export it with --sign)")
    _only_covered(anchor, ANCHOR_FIELDS, "the export anchor", "anchor format")
    _only_covered(anchor.get("checkpoint"), CHECKPOINT_FIELDS, "the anchor checkpoint", "signature")
    try:
        cp = Checkpoint.from_dict(anchor["checkpoint"])
        pem = trusted_public_key_pem or anchor["public_key"]
        key = serialization.load_pem_public_key(pem.encode())
        proof = [bytes.fromhex(p) for p in anchor["consistency_proof"]]
    except (KeyError, TypeError, ValueError, CheckpointError) as exc:
        raise ExportVerificationError(f"malformed export anchor ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ExportVerificationError("the checkpoint public key is not an ed25519 key")
    if not cp.verify_signature(key):
        raise ExportVerificationError(
            f"checkpoint {cp.seq} signature does not verify"
            + (" with the trusted key" if trusted_public_key_pem else "")
        )
    size, root = int(header["tree_size"]), bytes.fromhex(header["merkle_root"])
    if not verify_consistency(size, cp.log_size, root, bytes.fromhex(cp.root), proof):
        raise ExportVerificationError(
            f"the export's tree (size {size}) is not a prefix of the signed checkpoint's tree (size {cp.log_size})"
        )
    return {
        "checkpoint_seq": cp.seq,
        "key_id": cp.key_id,
        "log_size": cp.log_size,
        "trusted_key": trusted_public_key_pem is not None,
    }


def verify_export(
    records: list[dict[str, Any]], expected_root: str | None = None, trusted_public_key_pem: str | None = None
) -> VerifiedExport:
    """Check an export completely; raise :class:`ExportVerificationError` at the first problem.

    With ``trusted_public_key_pem`` the export must be signed (``sign=True``) by that key.
    """
    if not records:
        raise ExportVerificationError("cube export is empty")
    header = records[0]
    if header.get("format") != FORMAT or header.get("version") != VERSION:
        raise _fail(1, f"not a {FORMAT} v{VERSION} header")
    _only_covered(header, HEADER_FIELDS, "the header", "export format", 1)
    try:
        cube, size = str(header["cube"]), int(header["tree_size"])
        root = bytes.fromhex(header["merkle_root"])
        n = int(header["events"])
        ledger_id = str(header["source_ledger"])
    except (KeyError, ValueError, TypeError) as exc:
        raise _fail(1, f"bad header field ({exc})") from None
    if expected_root is not None and expected_root.lower() != header["merkle_root"]:
        raise _fail(1, f"Merkle root {header['merkle_root']} is not the expected root {expected_root}")
    body = records[1:]
    keys = _read_keys(body[-1], len(records)) if body and "memory_keys" in body[-1] else []
    if keys:
        body = body[:-1]
    if len(body) != n:
        raise ExportVerificationError(f"cube export declares {n} events but holds {len(body)}")
    events: list[Event] = []
    last_offset = -1
    for i, rec in enumerate(body, 2):
        _only_covered(rec, RECORD_FIELDS, "the record", "export format", i)
        _only_covered(rec.get("event"), EVENT_FIELDS, "the event", "event hash", i)
        try:
            e = Event.from_dict(rec["event"])
            proof = [bytes.fromhex(p) for p in rec["proof"]]
        except (KeyError, ValueError, TypeError) as exc:
            raise _fail(i, f"malformed event record ({exc})") from None
        if not _HEX64.match(e.hash) or not _HEX64.match(e.prev_hash):
            raise _fail(i, "event hash or prev_hash is not 64 hex digits")
        if e.stream != cube:
            raise _fail(i, f"event of stream {e.stream!r} in an export of cube {cube!r}")
        if e.version != len(events) + 1:
            raise _fail(i, f"stream version {e.version} where {len(events) + 1} was expected (events missing)")
        if not last_offset < e.offset < size:
            raise _fail(i, f"offset {e.offset} out of order or beyond the tree size {size}")
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
        if again != e.hash:
            raise _fail(i, f"event at offset {e.offset} does not match its hash (modified)")
        if e.offset == 0 and (e.prev_hash != GENESIS_HASH or e.hash != ledger_id):
            raise _fail(i, "the event at offset 0 is not the source ledger's first event")
        if not verify_inclusion(e.offset, size, leaf_hash(bytes.fromhex(e.hash)), proof, root):
            raise _fail(i, f"inclusion proof of offset {e.offset} does not lead to the Merkle root")
        events.append(e)
        last_offset = e.offset
    if not events or events[0].type != "cube.created":
        raise ExportVerificationError("cube export does not start with the cube's cube.created event")
    if trusted_public_key_pem is not None or "anchor" in header:
        verify_anchor(header, trusted_public_key_pem)
    return VerifiedExport(header, events, keys)


def _read_keys(rec: dict[str, Any], line: int) -> list[tuple[str, bytes]]:
    _only_covered(rec, KEYS_FIELDS, "the memory keys record", "export format", line)
    try:
        keys = [(str(k["key_id"]), base64.b64decode(k["key"], validate=True)) for k in rec["memory_keys"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise _fail(line, f"malformed memory keys ({exc})") from None
    if any(len(k) != 32 for _, k in keys):
        raise _fail(line, "a memory key is not 32 bytes")
    return keys


@dataclass
class ImportResult:
    cube: str
    events: int
    first_offset: int
    last_offset: int
    import_event_id: str
    already_imported: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "cube": self.cube,
            "events": self.events,
            "first_offset": self.first_offset,
            "last_offset": self.last_offset,
            "import_event_id": self.import_event_id,
            "already_imported": self.already_imported,
        }


def import_cube(
    ledger: Ledger,
    records: list[dict[str, Any]],
    actor: str,
    expected_root: str | None = None,
    trusted_public_key_pem: str | None = None,
) -> ImportResult:
    """Verify an export and append its events to ``ledger`` in one atomic batch.

    The events keep their ids, types, schema versions, payloads, actors and causation ids
    (so links between them survive); they get new offsets and times in this ledger, and
    their correlation id becomes the id of the closing ``cube.imported`` event, which names
    the source ledger and Merkle root. Importing the same file again is a no-op; importing
    into a ledger where the cube already exists otherwise is refused.
    """
    verified = verify_export(records, expected_root, trusted_public_key_pem)
    h = verified.header
    cube = verified.cube
    import_id = hashlib.sha256(f"cube-import:{h['source_ledger']}:{h['merkle_root']}:{cube}".encode()).hexdigest()[:32]
    batch = [
        NewEvent(
            cube,
            e.type,
            e.payload,
            e.actor,
            schema_version=e.schema_version,
            event_id=e.event_id,
            causation_id=e.causation_id,
            correlation_id=import_id,
        )
        for e in verified.events
    ]
    first, last = verified.events[0], verified.events[-1]
    batch.append(
        NewEvent(
            cube,
            CUBE_IMPORTED,
            {
                "cube": cube,
                "source_ledger": h["source_ledger"],
                "merkle_root": h["merkle_root"],
                "tree_size": int(h["tree_size"]),
                "events": len(verified.events),
                "first_source_offset": first.offset,
                "last_source_offset": last.offset,
                "first_source_time": first.time,
                "last_source_time": last.time,
            },
            actor,
            event_id=import_id,
            correlation_id=import_id,
        )
    )
    existing = ledger.log.get_by_id(import_id)
    if existing is None and ledger.cube_exists(cube):
        raise InvalidRequest(f"cube {cube!r} already exists in this ledger; import it into another ledger")
    for e in verified.events:
        other = ledger.log.get_by_id(e.event_id)
        if existing is None and other is not None:
            raise InvalidRequest(
                f"event {e.event_id} of the export is already stored in this ledger "
                f"(offset {other.offset}); refusing to import a cube twice"
            )
        mid = e.payload.get("memory_id")
        if existing is None and e.type in ("memory.added", "memory.merged") and ledger.memory_exists(str(mid)):
            raise InvalidRequest(f"memory id {mid} of the export already exists in this ledger")
    if verified.memory_keys:
        if ledger.sealer is None:
            raise InvalidRequest(
                "the export's memories are sealed under their own keys, but this ledger has no key "
                "ring to hold them (open it from a data directory)"
            )
        ledger.sealer.install_memory_keys(verified.memory_keys)
    written = ledger.append(batch, None if existing is not None else {cube: 0})
    return ImportResult(
        cube, len(verified.events), written[0].offset, written[-2].offset, import_id, existing is not None
    )
