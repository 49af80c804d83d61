"""Sealing data-subject payloads with the subject's own key (AES-256-GCM).

``seal(subject, content)`` returns the ``sealed`` object of the memory schemas::

    {"subject": S, "key_id": K, "alg": "AES-256-GCM", "nonce": b64, "ciphertext": b64}

The plaintext is the canonical JSON of ``content``; the associated data binds the algorithm,
the subject and the key id, so a ciphertext moved to another subject or relabelled with another
key id fails authentication. ``open(sealed)`` returns the content, ``None`` when the subject's
key was destroyed (forgotten), and raises ``TamperedPayload`` when the ciphertext, nonce or
labels were modified.
"""

from __future__ import annotations

import base64
import binascii
import os
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ledger.canonical import canonical_bytes
from ledger.errors import InvalidRequest, LedgerError
from ledger.governance.keystore import KeyStore, check_new_subject, check_subject

ALG = "AES-256-GCM"
NONCE_BYTES = 12


class TamperedPayload(LedgerError):
    """A sealed payload failed authentication: it was modified (or is malformed)."""


def associated_data(subject: str, key_id: str) -> bytes:
    """The AEAD associated data of a sealed payload."""
    return canonical_bytes({"alg": ALG, "key_id": key_id, "subject": subject, "v": 1})


class SubjectCipher:
    """Seals and opens payloads with per-subject keys from a ``KeyStore``."""

    def __init__(self, keystore: KeyStore):
        self.keystore = keystore

    def seal(self, subject: str, content: dict[str, Any]) -> dict[str, Any]:
        """Encrypt ``content`` for ``subject`` (its key is created on first use); new data needs a grammar name."""
        check_new_subject(subject)
        if not isinstance(content, dict):
            raise InvalidRequest("sealed content must be a JSON object")
        key = self.keystore.get_or_create(subject)
        nonce = os.urandom(NONCE_BYTES)
        ct = AESGCM(key.key).encrypt(nonce, canonical_bytes(content), associated_data(subject, key.key_id))
        return {"subject": subject, "key_id": key.key_id, "alg": ALG,
                "nonce": base64.b64encode(nonce).decode(), "ciphertext": base64.b64encode(ct).decode()}

    def open(self, sealed: dict[str, Any]) -> dict[str, Any] | None:
        """Decrypt a sealed payload; ``None`` when the subject's key no longer exists."""
        try:
            subject, key_id, alg = sealed["subject"], sealed["key_id"], sealed["alg"]
            nonce = base64.b64decode(sealed["nonce"], validate=True)
            ct = base64.b64decode(sealed["ciphertext"], validate=True)
        except (KeyError, TypeError, binascii.Error) as exc:
            raise TamperedPayload(f"malformed sealed payload: {exc}") from None
        if alg != ALG:
            raise TamperedPayload(f"unsupported sealing algorithm {alg!r}")
        key = self.keystore.get(check_subject(subject))
        if key is None or key.key_id != key_id:
            return None  # destroyed: the subject was forgotten (a later key has another id)
        if len(nonce) != NONCE_BYTES:
            raise TamperedPayload(f"sealed payload of {subject!r}: nonce has {len(nonce)} bytes")
        try:
            plain = AESGCM(key.key).decrypt(nonce, ct, associated_data(subject, key_id))
        except InvalidTag:
            raise TamperedPayload(f"sealed payload of {subject!r} (key {key_id}) failed authentication: "
                                  "it was modified") from None
        out = orjson.loads(plain)
        if not isinstance(out, dict):
            raise TamperedPayload("sealed content is not a JSON object")
        return out
