"""Per-subject key storage: the ``KeyStore`` protocol and the file-based default.

One AES-256 key per data subject. Destroying a subject's key is the erasure (crypto-shredding):
every payload sealed with it becomes unreadable, wherever copies of the ciphertext live.

``FileKeyStore`` keeps one file per subject under ``<data>/keys/subjects/``, named by the
SHA-256 of the subject id (so directory listings do not reveal subject ids), mode 0600.
Creation is atomic and race-free across processes (write a temporary file, fsync, ``link``
it into place: exactly one key wins). Destruction overwrites the file in place with random
bytes, fsyncs, unlinks it and fsyncs the directory. Cached keys are re-validated against the
file on every lookup, so a key destroyed by another process stops working here too.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import orjson

from ledger.errors import LedgerError
from ledger.rules.names import check_name
from ledger.storage.file_modes import create_private_once, shred

KEY_BYTES = 32  # AES-256
_FORMAT = "memledger-subject-key/v1"


class KeyStoreError(LedgerError):
    """The key store is unusable (corrupt key file, unwritable directory, ...)."""


@dataclass(frozen=True, slots=True)
class SubjectKey:
    """The live key of one data subject."""

    subject: str
    key_id: str
    key: bytes

    def __repr__(self) -> str:  # never print key material
        return f"SubjectKey(subject={self.subject!r}, key_id={self.key_id!r})"


@runtime_checkable
class KeyStore(Protocol):
    """Where subject keys live. Implementations must make ``destroy`` irreversible."""

    def get(self, subject: str) -> SubjectKey | None:
        """The subject's live key, or None (never created, or destroyed)."""
        ...

    def get_or_create(self, subject: str) -> SubjectKey:
        """The subject's live key, created on first use (race-free)."""
        ...

    def destroy(self, subject: str) -> str | None:
        """Irreversibly destroy the subject's key; return its key id (None if there was none)."""
        ...

    def subjects(self) -> list[str]:
        """Subjects that have a live key."""
        ...


def check_subject(subject: object) -> str:
    """Validate the id of a data subject that may already hold data (reads, erasure).

    Subjects named before the name grammar existed (1-200 printable characters) stay accepted
    here, so their payloads remain readable and erasable; new subjects must follow the grammar
    (``check_new_subject``).
    """
    if not isinstance(subject, str) or not subject or len(subject) > 200 or not subject.isprintable():
        return check_new_subject(subject)  # raises, naming the rule of the grammar that is broken
    return subject


def check_new_subject(subject: object) -> str:
    """Validate the id of a data subject getting new data: the name grammar of ``ledger.rules.names``."""
    return check_name(subject, "data subject")


class FileKeyStore:
    """The default ``KeyStore``: one key file per subject in a private directory."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self._cache: dict[str, tuple[tuple[int, int, int], SubjectKey]] = {}
        self._lock = threading.Lock()

    def _path(self, subject: str) -> Path:
        return self.directory / (hashlib.sha256(subject.encode()).hexdigest() + ".key")

    # -- reads --------------------------------------------------------------------------------
    def get(self, subject: str) -> SubjectKey | None:
        check_subject(subject)
        path = self._path(subject)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            with self._lock:
                self._cache.pop(subject, None)
            return None
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        with self._lock:
            hit = self._cache.get(subject)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        key = self._parse(path, raw, subject)
        with self._lock:
            self._cache[subject] = (stamp, key)
        return key

    @staticmethod
    def _parse(path: Path, raw: bytes, subject: str | None) -> SubjectKey:
        try:
            d = orjson.loads(raw)
            key = base64.b64decode(d["key"], validate=True)
            if d.get("format") != _FORMAT or len(key) != KEY_BYTES or not isinstance(d["key_id"], str):
                raise ValueError("unexpected format")
            out = SubjectKey(d["subject"], d["key_id"], key)
        except (ValueError, KeyError, TypeError) as exc:
            raise KeyStoreError(f"key file {path} is corrupt: {exc}") from None
        if subject is not None and out.subject != subject:
            raise KeyStoreError(f"key file {path} belongs to {out.subject!r}, not {subject!r}")
        return out

    def subjects(self) -> list[str]:
        if not self.directory.exists():
            return []
        out = []
        for p in sorted(self.directory.glob("*.key")):
            try:
                out.append(self._parse(p, p.read_bytes(), None).subject)
            except (FileNotFoundError, KeyStoreError):
                continue
        return out

    # -- writes -------------------------------------------------------------------------------
    def get_or_create(self, subject: str) -> SubjectKey:
        found = self.get(subject)
        if found is not None:
            return found
        check_new_subject(subject)
        key = SubjectKey(subject, os.urandom(16).hex(), os.urandom(KEY_BYTES))
        body = orjson.dumps(
            {"format": _FORMAT, "subject": subject, "key_id": key.key_id, "key": base64.b64encode(key.key).decode()}
        )
        # exactly one concurrent creator wins; a losing key encrypted nothing
        create_private_once(self._path(subject), body)
        got = self.get(subject)
        if got is None:  # destroyed between our link and our read: try again
            return self.get_or_create(subject)
        return got

    def destroy(self, subject: str) -> str | None:
        check_subject(subject)
        path = self._path(subject)
        try:
            key_id: str | None = self._parse(path, path.read_bytes(), subject).key_id
        except FileNotFoundError:
            key_id = None
        except KeyStoreError:
            key_id = None  # corrupt: destroy it all the same
        shred(path)  # overwrite, unlink, fsync the directory
        with self._lock:
            self._cache.pop(subject, None)
        return key_id
