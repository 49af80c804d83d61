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
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ledger.canonical import canonical_bytes
from ledger.errors import InvalidRequest, LedgerError
from ledger.governance.key_vault import MemoryKeyVault
from ledger.governance.keystore import KeyStore, check_new_subject, check_subject

ALG = "AES-256-GCM"
NONCE_BYTES = 12
SEAL_V2 = 2
SUBJECT_SCOPE = "subject"
MEMORY_SCOPE = "memory"
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
        return (
            [
                (k["scope"], k["id"])
                for k in keys
                if isinstance(k, dict) and isinstance(k.get("scope"), str) and isinstance(k.get("id"), str)
            ]
            if isinstance(keys, list)
            else []
        )
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


@dataclass(frozen=True, slots=True)
class KeyRef:
    """One key component of a sealed payload: a subject's key or a memory's key (by key id)."""

    scope: str  # "subject" | "memory"
    id: str  # the subject id, or the memory id
    key_id: str

    def to_dict(self) -> dict[str, str]:
        return {"scope": self.scope, "id": self.id, "key_id": self.key_id}

    @staticmethod
    def from_dict(d: Any) -> KeyRef:
        try:
            return KeyRef(str(d["scope"]), str(d["id"]), str(d["key_id"]))
        except (KeyError, TypeError) as exc:
            raise TamperedPayload(f"malformed key label in a sealed payload: {exc}") from None


def key_refs(sealed: Any) -> list[KeyRef]:
    """The key components of a sealed payload (v1: its one subject)."""
    if not isinstance(sealed, dict):
        return []
    if sealed.get("v") == SEAL_V2 and isinstance(sealed.get("keys"), list):
        return [KeyRef.from_dict(k) for k in sealed["keys"]]
    if isinstance(sealed.get("subject"), str) and isinstance(sealed.get("key_id"), str):
        return [KeyRef(SUBJECT_SCOPE, sealed["subject"], sealed["key_id"])]
    return []


class KeyRing:
    """Seals and opens payloads with data subjects' keys (a ``KeyStore``) and memories' own keys
    (a ``KeyVault``): every memory's content is sealed under a key of its own, so any one memory can
    be erased by destroying that key; a subject's memories also need the subject's key."""

    def __init__(self, keystore: KeyStore, vault: MemoryKeyVault | None = None):
        self.keystore = keystore
        self.vault = vault
        self.seals_every_memory = vault is not None  # every memory gets a key of its own
        self._fresh: dict[str, bytes] = {}  # keys just handed out by ``memory_ref``, used once

    # -- keys ----------------------------------------------------------------------------
    def subject_ref(self, subject: str) -> KeyRef:
        """The live key of ``subject`` (created on first use)."""
        key = self.keystore.get_or_create(check_subject(subject))
        return KeyRef(SUBJECT_SCOPE, key.subject, key.key_id)

    def memory_ref(self, memory_id: str) -> KeyRef:
        """A new key for ``memory_id`` (its first, or a new generation after a redaction)."""
        if self.vault is None:
            raise InvalidRequest("this key ring has no key vault: memories cannot get keys of their own")
        key_id, key = self.vault.new_key()
        if len(self._fresh) > 1024:  # refs made but never sealed with (a write that failed): forget them
            self._fresh.clear()
        self._fresh[key_id] = key  # sealing with it next needs no vault lookup
        return KeyRef(MEMORY_SCOPE, memory_id, key_id)

    def key_of(self, ref: KeyRef) -> bytes | None:
        """The key a component names, None once it was destroyed."""
        if ref.scope == SUBJECT_SCOPE:
            key = self.keystore.get(check_subject(ref.id))
            return key.key if key is not None and key.key_id == ref.key_id else None
        if ref.scope == MEMORY_SCOPE:
            return self.vault.get(ref.key_id) if self.vault is not None else None
        raise TamperedPayload(f"sealed payload names an unknown key scope {ref.scope!r}")

    def memory_keys(self, key_ids: Sequence[str]) -> dict[str, bytes]:
        """The memory keys among ``key_ids`` that still exist (a cube export carries them)."""
        if self.vault is None:
            return {}
        found = {k: self.vault.get(k) for k in key_ids}
        return {k: v for k, v in found.items() if v is not None}

    def install_memory_keys(self, keys: Sequence[tuple[str, bytes]]) -> int:
        """Store memory keys made elsewhere (a cube import); returns how many were new."""
        if self.vault is None:
            raise InvalidRequest(
                "this ledger has no key vault to hold the imported memories' keys (open it from a data directory)"
            )
        return self.vault.install(keys)

    def destroy_memory_keys(self, key_ids: Sequence[str]) -> tuple[list[str], str | None]:
        """Destroy memory keys; (the ids that existed, a problem or None)."""
        if self.vault is None:
            raise InvalidRequest("this key ring has no key vault: there are no memory keys to destroy")
        return self.vault.destroy(key_ids)

    # -- sealing -------------------------------------------------------------------------
    def seal(self, subject: str, content: dict[str, Any]) -> dict[str, Any]:
        """Encrypt ``content`` for ``subject`` alone, in the v1 form (older events; tests); a new subject
        needs a name of the grammar."""
        check_new_subject(subject)
        if not isinstance(content, dict):
            raise InvalidRequest("sealed content must be a JSON object")
        key = self.keystore.get_or_create(subject)
        nonce = os.urandom(NONCE_BYTES)
        ct = AESGCM(key.key).encrypt(nonce, canonical_bytes(content), associated_data(subject, key.key_id))
        return {
            "subject": subject,
            "key_id": key.key_id,
            "alg": ALG,
            "nonce": base64.b64encode(nonce).decode(),
            "ciphertext": base64.b64encode(ct).decode(),
        }

    def seal_under(self, subjects: Sequence[str], content: dict[str, Any]) -> dict[str, Any]:
        """Encrypt ``content`` so that it opens only while every subject's key exists (v2 form)."""
        names = sorted({check_subject(s) for s in subjects})
        if not names:
            raise InvalidRequest("sealing needs at least one data subject")
        return self.seal_with([self.subject_ref(s) for s in names], content)

    def seal_with(self, refs: Sequence[KeyRef], content: dict[str, Any]) -> dict[str, Any]:
        """Encrypt ``content`` under every component in ``refs`` (v2 form); it opens only while all
        of them exist. A component whose key is already gone cannot seal anything."""
        unique = sorted(set(refs), key=lambda r: (r.scope, r.id, r.key_id))
        if not unique:
            raise InvalidRequest("sealing needs at least one key")
        if len(unique) > MAX_COMPONENTS:
            raise InvalidRequest(f"a payload can be sealed under at most {MAX_COMPONENTS} keys, not {len(unique)}")
        if not isinstance(content, dict):
            raise InvalidRequest("sealed content must be a JSON object")
        keys = [r.to_dict() for r in unique]
        secret = self._secret(unique)
        if secret is None:
            raise InvalidRequest("cannot seal under a key that was destroyed (a source was erased or forgotten)")
        nonce = os.urandom(NONCE_BYTES)
        aad = _v2_associated_data(keys)
        ct = AESGCM(_content_key(secret, len(unique), aad)).encrypt(nonce, canonical_bytes(content), aad)
        return {
            "v": SEAL_V2,
            "alg": ALG,
            "keys": keys,
            "nonce": base64.b64encode(nonce).decode(),
            "ciphertext": base64.b64encode(ct).decode(),
        }

    def _secret(self, refs: Sequence[KeyRef]) -> bytes | None:
        parts = []
        for ref in refs:
            fresh = self._fresh.pop(ref.key_id, None) if ref.scope == MEMORY_SCOPE else None
            key = fresh if fresh is not None else self.key_of(ref)
            if key is None:
                return None
            parts.append(key)
        return b"".join(parts)

    def content_key(self, sealed: dict[str, Any]) -> bytes | None:
        """The AES key of one v2 payload (for a subject access export, which lets its reader check the
        ciphertext); None once a component is destroyed."""
        refs = key_refs(sealed)
        secret = self._secret(refs)
        if secret is None:
            return None
        return _content_key(secret, len(refs), _v2_associated_data([r.to_dict() for r in refs]))

    # -- opening -------------------------------------------------------------------------
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
            raise TamperedPayload(
                f"sealed payload of {subject!r} (key {key_id}) failed authentication: it was modified"
            ) from None
        return _content_of(plain)

    def _open_v2(self, sealed: dict[str, Any]) -> dict[str, Any] | None:
        try:
            keys, alg = sealed["keys"], sealed["alg"]
            nonce = base64.b64decode(sealed["nonce"], validate=True)
            ct = base64.b64decode(sealed["ciphertext"], validate=True)
            refs = [KeyRef.from_dict(k) for k in keys]
        except (KeyError, TypeError, binascii.Error) as exc:
            raise TamperedPayload(f"malformed sealed payload: {exc}") from None
        if alg != ALG:
            raise TamperedPayload(f"unsupported sealing algorithm {alg!r}")
        if not refs or len(refs) > MAX_COMPONENTS or len(nonce) != NONCE_BYTES:
            raise TamperedPayload("malformed sealed payload: bad key list or nonce")
        secret = self._secret(refs)
        if secret is None:
            return None  # destroyed: a subject was forgotten or a memory erased
        aad = _v2_associated_data([dict(k) for k in keys])
        try:
            plain = AESGCM(_content_key(secret, len(refs), aad)).decrypt(nonce, ct, aad)
        except InvalidTag:
            raise TamperedPayload("sealed payload failed authentication: it was modified") from None
        return _content_of(plain)


def _content_key(secret: bytes, components: int, aad: bytes) -> bytes:
    """One component: its key (random, used by no other memory); several: HKDF over all of them."""
    return secret if components == 1 else _derive(secret, aad)


def _content_of(plain: bytes) -> dict[str, Any]:
    out = orjson.loads(plain)
    if not isinstance(out, dict):
        raise TamperedPayload("sealed content is not a JSON object")
    return out
