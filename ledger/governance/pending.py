"""What an erasure still has to finish, kept so an interrupted erasure can be completed.

An erasure destroys a key first (the irreversible step), then purges views and caches, scrubs the
files and greps them for the erased texts. A crash between those steps must not leave a re-run
unable to check for residue: once the key is gone the texts can no longer be decrypted. So before
the key is destroyed, the texts to look for (and the erased memory ids) are written to a *pending
record*, encrypted under a fresh key of its own:

- the record ``<data>/governance/pending/<id>.bin`` (nonce + AES-256-GCM ciphertext, mode 0600);
- its key ``<keys dir>/pending/<id>.key`` (mode 0600), beside the subject keys (so a key directory
  on a separate volume keeps the two apart, as it does for sealed payloads).

A completed erasure shreds both (overwrite, fsync, unlink). ``<id>`` is the SHA-256 of the erasure's
name (e.g. ``subject:cust-9``), so file names reveal nothing.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ledger.storage.file_modes import shred, write_private

NONCE = 12


@dataclass(frozen=True, slots=True)
class PendingErasure:
    """The needles and memory ids of an erasure that has not finished yet."""

    name: str
    texts: list[str]
    memory_ids: list[str]


class PendingErasures:
    """Pending records of one data directory."""

    def __init__(self, data_dir: Path, keys_dir: Path):
        self.records = Path(data_dir) / "governance" / "pending"
        self.keys = Path(keys_dir) / "pending"

    def _paths(self, name: str) -> tuple[Path, Path]:
        ident = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()
        return self.records / f"{ident}.bin", self.keys / f"{ident}.key"

    def save(self, name: str, texts: list[str], memory_ids: list[str]) -> PendingErasure:
        """Record (durably) what the erasure ``name`` must still check; replaces an older record."""
        record, key_path = self._paths(name)
        key = AESGCM.generate_key(bit_length=256)
        nonce = os.urandom(NONCE)
        body = orjson.dumps({"name": name, "texts": texts, "memory_ids": memory_ids})
        self.clear(name)
        write_private(key_path, key)
        write_private(record, nonce + AESGCM(key).encrypt(nonce, body, name.encode("utf-8", "surrogatepass")))
        return PendingErasure(name, list(texts), list(memory_ids))

    def load(self, name: str) -> PendingErasure | None:
        """The record of an unfinished erasure, or None (none, or unreadable: then it is dropped)."""
        record, key_path = self._paths(name)
        try:
            raw, key = record.read_bytes(), key_path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            body = AESGCM(key).decrypt(raw[:NONCE], raw[NONCE:], name.encode("utf-8", "surrogatepass"))
            d: Any = orjson.loads(body)
            return PendingErasure(name, [str(t) for t in d["texts"]], [str(m) for m in d["memory_ids"]])
        except (InvalidTag, ValueError, KeyError, TypeError):
            return None

    def clear(self, name: str) -> None:
        """Shred the record and its key (the erasure finished)."""
        for path in self._paths(name):
            shred(path)
