"""Offline verification of a subject access export (``memledger subject export S --sign``).

Usage::

    python -m ledger.governance.subject_verifier s.jsonl --public-key checkpoint-key.pem [--json]

Needs nothing but the standard library, ``cryptography`` and ``ledger/governance/verifier.py``,
and trusts nothing but the public key given. It

1. checks the anchor: the checkpoint's ed25519 signature with the given key, and a consistency
   proof that the export's Merkle tree is a prefix of the signed tree (so its root is the
   ledger's);
2. for every record, recomputes the event's hash from its content and the Merkle root from that
   hash and the inclusion proof (so every event is in the signed log, unmodified);
3. for every decrypted ``content``, decrypts the event's ciphertext with the record's
   ``content_key`` and compares (so the content is exactly what the log holds).

What it cannot prove: that nothing about the subject was left out. Exit status: 0 verified,
1 not verified, 2 unusable input.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ledger.governance.verifier import (
    EVENT_FIELDS,
    UnusableInput,
    VerificationFailed,
    canonical,
    check_checkpoint,
    check_fields,
    event_hash,
    leaf_hash,
    load_public_key,
    root_from_inclusion,
    verify_consistency,
)

FORMAT = "memledger-subject-export"
VERSION = 1
HEADER_FIELDS = frozenset(
    {
        "format",
        "version",
        "subject",
        "source_ledger",
        "tree_size",
        "merkle_root",
        "head_hash",
        "records",
        "exported_at",
        "leaf",
        "anchor",
    }
)
RECORD_FIELDS = frozenset({"event", "proof", "content", "content_key", "withheld"})
ANCHOR_FIELDS = frozenset({"checkpoint", "public_key", "consistency_proof"})


def _hex(value: Any, what: str) -> bytes:
    try:
        out = bytes.fromhex(value)
    except (TypeError, ValueError):
        raise VerificationFailed(f"{what} is not hex") from None
    if len(out) != 32:
        raise VerificationFailed(f"{what} is not 32 bytes")
    return out


def _anchor(header: dict[str, Any], size: int, root: bytes, key: Ed25519PublicKey) -> dict[str, Any]:
    anchor = header.get("anchor")
    if not isinstance(anchor, dict):
        raise VerificationFailed("the export is not signed (export it with --sign)")
    check_fields(anchor, ANCHOR_FIELDS, "the anchor", "export format")
    cp_size, cp_root = check_checkpoint(anchor.get("checkpoint"), key, "the anchor checkpoint")
    proof = anchor.get("consistency_proof")
    if not isinstance(proof, list):
        raise VerificationFailed("the anchor's consistency proof is missing")
    path = [_hex(p, f"consistency_proof[{i}]") for i, p in enumerate(proof)]
    if not verify_consistency(size, cp_size, root, cp_root, path):
        raise VerificationFailed(
            f"the export's tree (size {size}) is not a prefix of the signed checkpoint's tree (size {cp_size})"
        )
    cp = anchor["checkpoint"]
    return {"seq": cp["seq"], "log_size": cp_size, "root": cp["root"], "key_id": cp["key_id"]}


def _check_content(rec: dict[str, Any], line: int) -> bool:
    """True when the content was checked against the ciphertext; raise when it disagrees."""
    if "content" not in rec:
        if "content_key" in rec:
            raise VerificationFailed(f"line {line}: a content key without content")
        return False
    sealed = rec["event"]["payload"].get("sealed")
    if not isinstance(sealed, dict) or sealed.get("v") != 2:
        raise VerificationFailed(f"line {line}: content given for an event that holds no v2 sealed payload")
    if "content_key" not in rec:
        return False
    try:
        key = base64.b64decode(rec["content_key"], validate=True)
        nonce = base64.b64decode(sealed["nonce"], validate=True)
        ct = base64.b64decode(sealed["ciphertext"], validate=True)
        aad = canonical({"alg": sealed["alg"], "keys": sealed["keys"], "v": 2}).encode()
        plain = AESGCM(key).decrypt(nonce, ct, aad)
    except (KeyError, TypeError, ValueError, binascii.Error):
        raise VerificationFailed(f"line {line}: malformed content key or sealed payload") from None
    except InvalidTag:
        raise VerificationFailed(f"line {line}: the content key does not open the event's ciphertext") from None
    if json.loads(plain) != rec["content"]:
        raise VerificationFailed(f"line {line}: the content differs from what the log holds")
    return True


def verify_subject_export(records: list[Any], key: Ed25519PublicKey) -> dict[str, Any]:
    """Check a parsed export (header first); raise ``VerificationFailed`` at the first problem."""
    if not records:
        raise VerificationFailed("the export is empty")
    header = records[0]
    if not isinstance(header, dict) or header.get("format") != FORMAT or header.get("version") != VERSION:
        raise VerificationFailed(f"line 1 is not a {FORMAT} v{VERSION} header")
    check_fields(header, HEADER_FIELDS, "the header", "export format")
    size, root = header.get("tree_size"), _hex(header.get("merkle_root"), "merkle_root")
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise VerificationFailed("tree_size is not a positive integer")
    checkpoint = _anchor(header, size, root, key)
    body = records[1:]
    if len(body) != header.get("records"):
        raise VerificationFailed(f"the header declares {header.get('records')} records; the file holds {len(body)}")
    last, verified, unverified, withheld = -1, 0, 0, 0
    for line, rec in enumerate(body, 2):
        if not isinstance(rec, dict):
            raise VerificationFailed(f"line {line} is not a JSON object")
        check_fields(rec, RECORD_FIELDS, f"line {line}", "export format")
        event = rec.get("event")
        if not isinstance(event, dict):
            raise VerificationFailed(f"line {line}: no event")
        check_fields(event, EVENT_FIELDS, f"line {line}: the event", "event hash")
        offset = event.get("offset")
        if not isinstance(offset, int) or isinstance(offset, bool) or not last < offset < size:
            raise VerificationFailed(f"line {line}: offset {offset!r} out of order or beyond the tree size {size}")
        if event_hash(event) != event.get("hash"):
            raise VerificationFailed(f"line {line}: the event at offset {offset} does not match its hash (modified)")
        proof = rec.get("proof")
        if not isinstance(proof, list):
            raise VerificationFailed(f"line {line}: no inclusion proof")
        path = [_hex(p, f"line {line} proof[{i}]") for i, p in enumerate(proof)]
        if root_from_inclusion(offset, size, leaf_hash(_hex(event["hash"], f"line {line} hash")), path) != root:
            raise VerificationFailed(f"line {line}: the inclusion proof of offset {offset} does not lead to the root")
        if _check_content(rec, line):
            verified += 1
        elif "content" in rec:
            unverified += 1
        withheld += "withheld" in rec
        last = offset
    return {
        "ok": True,
        "kind": "subject-export",
        "subject": header.get("subject"),
        "records": len(body),
        "verified_contents": verified,
        "unverified_contents": unverified,
        "withheld": withheld,
        "checkpoint": checkpoint,
    }


def read_lines(text: str) -> list[Any]:
    """The JSON objects of a JSON-lines text (blank lines skipped)."""
    out = []
    for i, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                out.append(json.loads(line))
            except ValueError as exc:
                raise UnusableInput(f"line {i} is not valid JSON: {exc}") from None
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ledger.governance.subject_verifier",
        description="Verify a memledger subject access export offline.",
    )
    parser.add_argument("export", help="the export file ('-' for standard input)")
    parser.add_argument(
        "--public-key", required=True, help="the ledger's checkpoint public key (PEM file, hex or base64)"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable result")
    args = parser.parse_args(argv)
    try:
        key = load_public_key(args.public_key)
        records = read_lines(sys.stdin.read() if args.export == "-" else Path(args.export).read_text())
    except (UnusableInput, OSError, UnicodeDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        result = verify_subject_export(records, key)
    except VerificationFailed as exc:
        print(json.dumps({"ok": False, "problem": str(exc)}) if args.json else f"NOT VERIFIED: {exc}")
        return 1
    if args.json:
        print(json.dumps(result))
    else:
        cp = result["checkpoint"]
        print(
            f"VERIFIED: {result['records']} records about {result['subject']} are in the log signed in checkpoint "
            f"#{cp['seq']} ({cp['log_size']} events); {result['verified_contents']} contents match the log, "
            f"{result['withheld']} withheld"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
