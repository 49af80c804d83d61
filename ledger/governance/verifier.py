"""Standalone offline verifier for memledger proofs. Trusts nothing but the public key you give it.

Usage::

    python -m ledger.governance.verifier proof.json --public-key checkpoint-key.pem [--checkpoint saved.json] [--json]
    python verifier.py proof.json --public-key <hex or base64 of the raw 32-byte key>

This file imports only the standard library and ``cryptography``, so it can be copied anywhere
and run on its own. For an inclusion proof it

1. checks the checkpoint's ed25519 signature (over size, Merkle root, head hash and time) with
   the given public key,
2. recomputes the event's hash from its canonical content (the same encoding as the ledger:
   compact JSON with sorted keys, orjson's number and string formatting), ignoring the hash the
   proof claims,
3. recomputes the Merkle root from that hash and the audit path (RFC 6962 / RFC 9162) and
   compares it with the signed root.

For a consistency proof it checks both checkpoints' signatures and that the older tree is a
prefix of the newer one. It reports only what the hash and the signatures cover: a field of
the event, a checkpoint or the proof that nothing covers is refused, and so is a checkpoint (or
event) ``time`` that disagrees with its ``ts_us`` (the time reported is always derived from the
signed ``ts_us``). Exit status: 0 verified, 1 not verified, 2 unusable input.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import math
import sys
from collections.abc import Collection, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

INCLUSION_FORMAT = "memledger-inclusion-proof/v1"
CONSISTENCY_FORMAT = "memledger-consistency-proof/v1"
CHECKPOINT_FORMAT = "memledger-checkpoint/v1"
GENESIS_HASH = "0" * 64
EMPTY_ROOT = hashlib.sha256(b"").digest()
HASH_SIZE = 32

# what the event hash covers (plus the hash itself), and what the checkpoint signature covers
# (plus the format tag and the signature). ``time`` is derived from ``ts_us``: it may appear, and
# must then agree with it. Any other field is refused: nothing vouches for it.
EVENT_FIELDS = frozenset(
    {
        "offset",
        "stream",
        "version",
        "event_id",
        "type",
        "schema_version",
        "ts_us",
        "actor",
        "causation_id",
        "correlation_id",
        "payload",
        "prev_hash",
        "hash",
    }
)
CHECKPOINT_FIELDS = frozenset({"format", "seq", "log_size", "root", "head_hash", "ts_us", "key_id", "signature"})
DERIVED_TIME = "time"
INCLUSION_FIELDS = frozenset({"format", "event", "leaf_index", "tree_size", "audit_path", "checkpoint"})
CONSISTENCY_FIELDS = frozenset({"format", "old", "new", "proof"})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class VerificationFailed(Exception):
    """The proof does not hold."""


class UnusableInput(Exception):
    """The key or the file cannot be read at all."""


# -- canonical encoding (must equal ledger/canonical.py: orjson with OPT_SORT_KEYS) -----------------
def _float(x: float) -> str:
    if math.isnan(x) or math.isinf(x):
        return "null"
    r = repr(x)
    if "e" not in r:
        return r
    mantissa, exp_text = r.split("e")
    exp = int(exp_text)
    if exp >= 0:
        return f"{mantissa}e+{exp}"
    if exp == -5:  # orjson writes 1e-5 .. 9.99e-5 in positional notation
        sign = "-" if mantissa.startswith("-") else ""
        digits = mantissa.lstrip("-").replace(".", "")
        return f"{sign}0.0000{digits}"
    return f"{mantissa}e{exp}"


def _string(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def canonical(obj: Any) -> str:
    """Compact JSON, keys sorted, numbers and strings formatted as orjson does."""
    if obj is None:
        return "null"
    if obj is True:
        return "true"
    if obj is False:
        return "false"
    if isinstance(obj, int):
        return str(obj)
    if isinstance(obj, float):
        return _float(obj)
    if isinstance(obj, str):
        return _string(obj)
    if isinstance(obj, (list, tuple)):
        return "[" + ",".join(canonical(x) for x in obj) + "]"
    if isinstance(obj, dict):
        items = sorted(obj.items())
        return "{" + ",".join(_string(k) + ":" + canonical(v) for k, v in items) + "}"
    raise VerificationFailed(f"value of type {type(obj).__name__} cannot appear in an event")


def event_hash(event: dict[str, Any]) -> str:
    """The chain hash of an event, recomputed from its content."""
    try:
        header = [
            event["offset"],
            event["stream"],
            event["version"],
            event["event_id"],
            event["type"],
            event["schema_version"],
            event["ts_us"],
            event["actor"],
            event.get("causation_id"),
            event.get("correlation_id"),
            event["prev_hash"],
        ]
        payload = event["payload"]
    except KeyError as exc:
        raise VerificationFailed(f"the event lacks the field {exc}") from None
    if not isinstance(payload, dict):
        raise VerificationFailed("the event payload is not a JSON object")
    h = hashlib.sha256(canonical(header).encode())
    h.update(b"\n")
    h.update(canonical(payload).encode())
    return h.hexdigest()


# -- Merkle verification (RFC 9162 2.1.3.2 and 2.1.4.2) --------------------------------------------
def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes | None:
    if not 0 <= index < size or any(len(p) != HASH_SIZE for p in proof) or len(leaf) != HASH_SIZE:
        return None
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> bool:
    if not 0 <= old_size <= new_size or any(len(p) != HASH_SIZE for p in proof):
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof and old_root == EMPTY_ROOT
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root


# -- keys and checkpoints ----------------------------------------------------------------------------
def load_public_key(text_or_path: str) -> Ed25519PublicKey:
    """A public key from a PEM file, PEM text, or the raw 32 bytes in hex or base64."""
    p = Path(text_or_path)
    try:
        data = p.read_bytes() if p.is_file() else text_or_path.encode()
    except OSError as exc:
        raise UnusableInput(f"cannot read the public key: {exc}") from None
    if b"BEGIN" in data:
        try:
            key = serialization.load_pem_public_key(data)
        except ValueError as exc:
            raise UnusableInput(f"not a PEM public key: {exc}") from None
        if not isinstance(key, Ed25519PublicKey):
            raise UnusableInput("the public key is not an ed25519 key")
        return key
    s = data.strip().decode(errors="replace")
    raw: bytes | None
    try:
        raw = bytes.fromhex(s)
    except ValueError:
        try:
            raw = base64.b64decode(s, validate=True)
        except (ValueError, binascii.Error):
            raw = None
    if raw is None or len(raw) != 32:
        raise UnusableInput("the public key must be a PEM file, PEM text, or 32 raw bytes in hex or base64")
    return Ed25519PublicKey.from_public_bytes(raw)


def key_id_of(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:32]


def _hex32(value: Any, what: str) -> bytes:
    try:
        raw = bytes.fromhex(value) if isinstance(value, str) else b""
    except ValueError:
        raw = b""
    if len(raw) != HASH_SIZE:
        raise VerificationFailed(f"{what} is not a 32-byte hex hash")
    return raw


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise VerificationFailed(f"{what} is not a non-negative integer")
    return value


def iso_of_us(ts_us: int) -> str:
    """``ts_us`` (microseconds since the epoch) as the ledger writes it: ISO-8601 UTC with ``Z``."""
    try:
        return (_EPOCH + timedelta(microseconds=ts_us)).isoformat().replace("+00:00", "Z")
    except (OverflowError, ValueError):
        return f"{ts_us} microseconds after the epoch"


def _us_of_iso(text: str) -> int | None:
    """Microseconds since the epoch of an ISO-8601 time (naive: UTC); None if it is not one."""
    s = text.strip()
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    try:
        return (dt - _EPOCH) // timedelta(microseconds=1)
    except OverflowError:
        return None


def check_fields(obj: dict[str, Any], allowed: Collection[str], what: str, covered_by: str) -> None:
    """Refuse fields of ``obj`` outside ``allowed`` (and the derived ``time``), and a ``time`` that
    disagrees with the covered ``ts_us``: what the hash or signature does not cover is not reported."""
    extra = sorted(str(k) for k in obj if k not in allowed and k != DERIVED_TIME)
    if extra:
        raise VerificationFailed(
            f"{what} has field(s) {', '.join(map(repr, extra))} that the {covered_by} does "
            "not cover; refusing to vouch for them"
        )
    if DERIVED_TIME in obj:
        ts, text = obj.get("ts_us"), obj[DERIVED_TIME]
        if isinstance(ts, bool) or not isinstance(ts, int) or not isinstance(text, str) or _us_of_iso(text) != ts:
            signed = iso_of_us(ts) if isinstance(ts, int) and not isinstance(ts, bool) else "?"
            raise VerificationFailed(
                f"{what} time {text!r} disagrees with its ts_us {ts!r} ({signed}), which the {covered_by} covers"
            )


def check_checkpoint(cp: Any, public_key: Ed25519PublicKey, what: str = "checkpoint") -> tuple[int, bytes]:
    """Verify a checkpoint's signature; return its (log size, root)."""
    if not isinstance(cp, dict) or cp.get("format") != CHECKPOINT_FORMAT:
        raise VerificationFailed(f"{what} is missing or not a {CHECKPOINT_FORMAT} object")
    check_fields(cp, CHECKPOINT_FIELDS, what, "signature")
    seq, size, ts = (
        _int(cp.get("seq"), f"{what} seq"),
        _int(cp.get("log_size"), f"{what} log_size"),
        _int(cp.get("ts_us"), f"{what} ts_us"),
    )
    root = _hex32(cp.get("root"), f"{what} root")
    _hex32(cp.get("head_hash"), f"{what} head_hash")
    if cp.get("key_id") != key_id_of(public_key):
        raise VerificationFailed(
            f"{what} was signed by key {cp.get('key_id')!r}, not by the given key {key_id_of(public_key)}"
        )
    message = (f"{CHECKPOINT_FORMAT}\n{seq}\n{size}\n{cp['root']}\n{cp['head_hash']}\n{ts}\n{cp['key_id']}\n").encode()
    try:
        public_key.verify(base64.b64decode(str(cp.get("signature")), validate=True), message)
    except (InvalidSignature, ValueError, binascii.Error):
        raise VerificationFailed(f"{what} signature is not valid") from None
    if size == 0 and (root != EMPTY_ROOT or cp["head_hash"] != GENESIS_HASH):
        raise VerificationFailed(f"{what} of an empty log has a non-empty root or head")
    return size, root


def _path(doc: dict[str, Any], key: str) -> list[bytes]:
    items = doc.get(key)
    if not isinstance(items, list):
        raise VerificationFailed(f"{key} is missing or not a list")
    return [_hex32(h, f"{key}[{i}]") for i, h in enumerate(items)]


def verify_inclusion_proof(doc: dict[str, Any], public_key: Ed25519PublicKey) -> dict[str, Any]:
    """Check an inclusion proof; return a summary, raise ``VerificationFailed`` otherwise."""
    check_fields(doc, INCLUSION_FIELDS, "the proof", "proof format")
    size, root = check_checkpoint(doc.get("checkpoint"), public_key)
    event = doc.get("event")
    if not isinstance(event, dict):
        raise VerificationFailed("event is missing")
    check_fields(event, EVENT_FIELDS, "the event", "event hash")
    index = _int(doc.get("leaf_index"), "leaf_index")
    if _int(event.get("offset"), "event offset") != index:
        raise VerificationFailed(f"the event's offset {event.get('offset')} is not the leaf index {index}")
    if _int(doc.get("tree_size"), "tree_size") != size:
        raise VerificationFailed("tree_size differs from the checkpoint's log size")
    computed = event_hash(event)
    if event.get("hash") != computed:
        raise VerificationFailed(f"the event's content hashes to {computed}, not to the claimed {event.get('hash')}")
    got = root_from_inclusion(index, size, leaf_hash(bytes.fromhex(computed)), _path(doc, "audit_path"))
    if got is None or got != root:
        raise VerificationFailed("the audit path does not lead from the event to the signed root")
    if index == size - 1 and doc["checkpoint"]["head_hash"] != computed:
        raise VerificationFailed("the event is the checkpoint's last one but its hash is not the head hash")
    return {
        "ok": True,
        "kind": "inclusion",
        "offset": index,
        "event_id": event.get("event_id"),
        "type": event.get("type"),
        "stream": event.get("stream"),
        "event_hash": computed,
        "checkpoint": {
            "seq": doc["checkpoint"]["seq"],
            "log_size": size,
            "root": root.hex(),
            "ts_us": doc["checkpoint"]["ts_us"],
            "time": iso_of_us(doc["checkpoint"]["ts_us"]),
        },
    }


def verify_consistency_proof(doc: dict[str, Any], public_key: Ed25519PublicKey) -> dict[str, Any]:
    """Check a consistency proof between two checkpoints; raise ``VerificationFailed`` otherwise."""
    check_fields(doc, CONSISTENCY_FIELDS, "the proof", "proof format")
    old_size, old_root = check_checkpoint(doc.get("old"), public_key, "old checkpoint")
    new_size, new_root = check_checkpoint(doc.get("new"), public_key, "new checkpoint")
    if old_size > new_size:
        raise VerificationFailed(f"the old checkpoint covers {old_size} events, more than the new one's {new_size}")
    if not verify_consistency(old_size, new_size, old_root, new_root, _path(doc, "proof")):
        raise VerificationFailed(f"the log of {old_size} events is not a prefix of the log of {new_size} events")
    return {
        "ok": True,
        "kind": "consistency",
        "old": {"seq": doc["old"]["seq"], "log_size": old_size, "root": old_root.hex()},
        "new": {"seq": doc["new"]["seq"], "log_size": new_size, "root": new_root.hex()},
    }


_PINNED_FIELDS = ("seq", "log_size", "root", "head_hash", "ts_us", "key_id")


def check_pinned(cp: dict[str, Any], pinned: Any, public_key: Ed25519PublicKey, what: str) -> None:
    """Require ``cp`` to be the checkpoint the verifier already holds (``pinned``)."""
    check_checkpoint(pinned, public_key, "pinned checkpoint")
    for name in _PINNED_FIELDS:
        if cp.get(name) != pinned.get(name):
            raise VerificationFailed(f"{what} is not the pinned checkpoint #{pinned.get('seq')} ({name} differs)")


def verify_document(doc: Any, public_key: Ed25519PublicKey, pinned: Any = None) -> dict[str, Any]:
    """Dispatch on the proof's ``format``.

    ``pinned``: a checkpoint the caller already trusts (saved earlier). An inclusion proof must
    then be relative to exactly that checkpoint, and a consistency proof must start from it.
    """
    if not isinstance(doc, dict):
        raise VerificationFailed("the proof is not a JSON object")
    fmt = doc.get("format")
    if fmt == INCLUSION_FORMAT:
        result = verify_inclusion_proof(doc, public_key)
        if pinned is not None:
            check_pinned(doc["checkpoint"], pinned, public_key, "the proof's checkpoint")
        return result
    if fmt == CONSISTENCY_FORMAT:
        result = verify_consistency_proof(doc, public_key)
        if pinned is not None:
            check_pinned(doc["old"], pinned, public_key, "the proof's old checkpoint")
        return result
    raise VerificationFailed(f"unknown proof format {fmt!r}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ledger.governance.verifier",
        description="Verify a memledger inclusion or consistency proof offline.",
    )
    parser.add_argument("proof", help="proof JSON file ('-' for standard input)")
    parser.add_argument(
        "--public-key",
        required=True,
        help="the ledger's checkpoint public key: PEM file, or raw 32 bytes in hex/base64",
    )
    parser.add_argument(
        "--checkpoint",
        default=None,
        dest="pinned",
        help="a checkpoint JSON you saved earlier: the proof must be relative to it "
        "(inclusion) or start from it (consistency)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable result")
    args = parser.parse_args(argv)
    try:
        key = load_public_key(args.public_key)
        text = sys.stdin.read() if args.proof == "-" else Path(args.proof).read_text()
        pinned_text = Path(args.pinned).read_text() if args.pinned else None
    except (UnusableInput, OSError, UnicodeDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        doc = json.loads(text)
        pinned = json.loads(pinned_text) if pinned_text is not None else None
    except ValueError as exc:
        print(f"error: not valid JSON: {exc}", file=sys.stderr)
        return 2
    if isinstance(pinned, dict) and pinned.get("format") == INCLUSION_FORMAT:
        pinned = pinned.get("checkpoint")  # an earlier inclusion proof pins its checkpoint
    try:
        result = verify_document(doc, key, pinned)
    except VerificationFailed as exc:
        if args.json:
            print(json.dumps({"ok": False, "problem": str(exc)}))
        else:
            print(f"NOT VERIFIED: {exc}")
        return 1
    if args.json:
        print(json.dumps(result))
    elif result["kind"] == "inclusion":
        cp = result["checkpoint"]
        print(
            f"VERIFIED: event {result['event_id']} ({result['type']}) is at offset {result['offset']} of the log "
            f"signed in checkpoint #{cp['seq']} ({cp['log_size']} events, root {cp['root']})"
        )
    else:
        print(
            f"VERIFIED: the log of checkpoint #{result['old']['seq']} ({result['old']['log_size']} events) is a "
            f"prefix of checkpoint #{result['new']['seq']} ({result['new']['log_size']} events)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
