"""Sealing payloads with data subjects' own keys (AES-256-GCM).

Two forms of the ``sealed`` object of the memory schemas:

- v1, one subject (``seal(subject, content)``; what older events hold)::

    {"subject": S, "key_id": K, "alg": "AES-256-GCM", "nonce": b64, "ciphertext": b64}

- v2, any number of key components (``seal_under(subjects, content)``; what memledger writes)::

    {"v": 2, "alg": "AES-256-GCM", "keys": [{"scope": "subject", "id": S, "key_id": K}, ...],
     "nonce": b64, "ciphertext": b64}

  The content key is HKDF-SHA256 over the concatenated component keys, with the component list as
  the HKDF info, so it can be derived only while *every* component key exists: destroying any one
  of them (forgetting any one subject) makes the payload unreadable. A memory derived from sealed
  sources (a chat answer, a merge) is sealed under the union of its sources' components.

The plaintext is the canonical JSON of ``content``; the associated data binds the algorithm and
the key labels, so a ciphertext moved to another subject or relabelled with another key id fails
authentication. ``open(sealed)`` returns the content, ``None`` when a key was destroyed
(forgotten), and raises ``TamperedPayload`` when the ciphertext, nonce or labels were modified.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ledger.canonical import canonical_bytes
from ledger.errors import InvalidRequest, LedgerError
from ledger.governance.keystore import KeyStore, check_new_subject, check_subject

ALG = "AES-256-GCM"
NONCE_BYTES = 12
SEAL_V2 = 2
SUBJECT_SCOPE = "subject"
MAX_COMPONENTS = 100


class TamperedPayload(LedgerError):
    """A sealed payload failed authentication: it was modified (or is malformed)."""


def associated_data(subject: str, key_id: str) -> bytes:
    """The AEAD associated data of a sealed payload."""
    return canonical_bytes({"alg": ALG, "key_id": key_id, "subject": subject, "v": 1})


def seal_components(sealed: Any) -> list[tuple[str, str]]:
    """The ``(scope, id)`` key components a sealed payload needs (v1: its one subject)."""
    if not isinstance(sealed, dict):
        return []
    if sealed.get("v") == SEAL_V2:
        keys = sealed.get("keys")
        return [(k["scope"], k["id"]) for k in keys if isinstance(k, dict) and isinstance(k.get("scope"), str)
                and isinstance(k.get("id"), str)] if isinstance(keys, list) else []
    subject = sealed.get("subject")
    return [(SUBJECT_SCOPE, subject)] if isinstance(subject, str) else []


def sealed_subjects(sealed: Any) -> list[str]:
    """The data subjects whose keys a sealed payload needs, in order."""
    return [i for scope, i in seal_components(sealed) if scope == SUBJECT_SCOPE]


def _v2_associated_data(keys: list[dict[str, str]]) -> bytes:
    return canonical_bytes({"alg": ALG, "keys": keys, "v": SEAL_V2})


@lru_cache(maxsize=4096)
def _derive(secret: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"memledger-seal/v2", info=info).derive(secret)


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

    def seal_under(self, subjects: Sequence[str], content: dict[str, Any]) -> dict[str, Any]:
        """Encrypt ``content`` so that it opens only while every subject's key exists (v2 form)."""
        names = sorted({check_subject(s) for s in subjects})
        if not names:
            raise InvalidRequest("sealing needs at least one data subject")
        if len(names) > MAX_COMPONENTS:
            raise InvalidRequest(f"a payload can be sealed under at most {MAX_COMPONENTS} subjects, not {len(names)}")
        if not isinstance(content, dict):
            raise InvalidRequest("sealed content must be a JSON object")
        found = [self.keystore.get_or_create(s) for s in names]
        keys = [{"scope": SUBJECT_SCOPE, "id": k.subject, "key_id": k.key_id} for k in found]
        nonce = os.urandom(NONCE_BYTES)
        aad = _v2_associated_data(keys)
        ct = AESGCM(_derive(b"".join(k.key for k in found), aad)).encrypt(nonce, canonical_bytes(content), aad)
        return {"v": SEAL_V2, "alg": ALG, "keys": keys, "nonce": base64.b64encode(nonce).decode(),
                "ciphertext": base64.b64encode(ct).decode()}

    def open(self, sealed: dict[str, Any]) -> dict[str, Any] | None:
        """Decrypt a sealed payload; ``None`` when a key it needs no longer exists."""
        if isinstance(sealed, dict) and sealed.get("v") == SEAL_V2:
            return self._open_v2(sealed)
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
        return _content_of(plain)

    def _open_v2(self, sealed: dict[str, Any]) -> dict[str, Any] | None:
        try:
            keys, alg = sealed["keys"], sealed["alg"]
            nonce = base64.b64decode(sealed["nonce"], validate=True)
            ct = base64.b64decode(sealed["ciphertext"], validate=True)
            labels = [(k["scope"], k["id"], k["key_id"]) for k in keys]
        except (KeyError, TypeError, binascii.Error) as exc:
            raise TamperedPayload(f"malformed sealed payload: {exc}") from None
        if alg != ALG:
            raise TamperedPayload(f"unsupported sealing algorithm {alg!r}")
        if not labels or len(labels) > MAX_COMPONENTS or len(nonce) != NONCE_BYTES:
            raise TamperedPayload("malformed sealed payload: bad key list or nonce")
        parts = []
        for scope, ident, key_id in labels:
            if scope != SUBJECT_SCOPE:
                raise TamperedPayload(f"sealed payload names an unknown key scope {scope!r}")
            key = self.keystore.get(check_subject(ident))
            if key is None or key.key_id != key_id:
                return None  # destroyed: that subject was forgotten
            parts.append(key.key)
        aad = _v2_associated_data([dict(k) for k in keys])
        try:
            plain = AESGCM(_derive(b"".join(parts), aad)).decrypt(nonce, ct, aad)
        except InvalidTag:
            raise TamperedPayload("sealed payload failed authentication: it was modified") from None
        return _content_of(plain)


def _content_of(plain: bytes) -> dict[str, Any]:
    out = orjson.loads(plain)
    if not isinstance(out, dict):
        raise TamperedPayload("sealed content is not a JSON object")
    return out
