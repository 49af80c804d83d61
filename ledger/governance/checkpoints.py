"""Signed checkpoints: an ed25519 signature over (log size, Merkle root, head hash, time).

A checkpoint says "the first ``log_size`` events of this log have Merkle root R and the last of
them has hash H", signed with the ledger's checkpoint key. Stored checkpoints are re-checked by
``verify``: a log whose history was rewritten (even with every hash recomputed) no longer has
root R at that size, and a truncated log no longer reaches that size. Checkpoints handed to
auditors (or any third party) protect even against an attacker who controls the data directory:
a consistency proof from their copy to a later checkpoint proves the log only grew.

The signed message is a fixed text (easy to re-implement in any language)::

    memledger-checkpoint/v1
    <seq>
    <log_size>
    <root hex>
    <head_hash hex>
    <ts_us>
    <key_id>

Storage: ``<data>/checkpoints.jsonl`` (one JSON object per line, appended under a file lock
and fsynced). The signing key lives in ``<keys dir>/checkpoint-signing.key`` (PKCS#8 PEM, mode
0600); ``public_key_pem()`` exports the public half for auditors.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ledger.canonical import GENESIS_HASH
from ledger.config import Config
from ledger.errors import InvalidRequest, LedgerError, NotFound
from ledger.events import CHECKPOINT_SIGNED, SYSTEM_STREAM, NewEvent, now_us, us_to_iso
from ledger.governance.keystore_factory import keys_dir
from ledger.governance.log_tree import log_tree
from ledger.governance.merkle import MerkleTree, leaf_hash
from ledger.log import Log
from ledger.storage.file_modes import create_private_once
from ledger.storage.numbered_jsonl import NumberedJsonLines

FORMAT = "memledger-checkpoint/v1"
SIGNING_KEY_NAME = "checkpoint-signing.key"
STORE_NAME = "checkpoints.jsonl"


def shared_governance(config: Config) -> bool:
    """True when keys and checkpoints live with a PostgreSQL log (``[keys] backend = "postgres"``)."""
    return str(config.section("keys").get("backend", "file")) == "postgres"


class CheckpointError(LedgerError):
    """A stored checkpoint is malformed or its key is unusable."""


def key_id_of(public_key: Ed25519PublicKey) -> str:
    """Fingerprint of a public key: the first 16 bytes of SHA-256 over its raw 32 bytes, in hex."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """One signed statement about the log's state."""

    seq: int
    log_size: int
    root: str
    head_hash: str
    ts_us: int
    key_id: str
    signature: str  # base64 ed25519 signature of message()

    def message(self) -> bytes:
        """The exact bytes that are signed."""
        return (
            f"{FORMAT}\n{self.seq}\n{self.log_size}\n{self.root}\n{self.head_hash}\n{self.ts_us}\n{self.key_id}\n"
        ).encode()

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "seq": self.seq,
            "log_size": self.log_size,
            "root": self.root,
            "head_hash": self.head_hash,
            "ts_us": self.ts_us,
            "time": us_to_iso(self.ts_us),
            "key_id": self.key_id,
            "signature": self.signature,
        }

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Checkpoint:
        try:
            if d.get("format") != FORMAT:
                raise ValueError(f"format is {d.get('format')!r}, expected {FORMAT!r}")
            cp = Checkpoint(
                int(d["seq"]),
                int(d["log_size"]),
                str(d["root"]),
                str(d["head_hash"]),
                int(d["ts_us"]),
                str(d["key_id"]),
                str(d["signature"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"malformed checkpoint: {exc}") from None
        return cp

    def verify_signature(self, public_key: Ed25519PublicKey) -> bool:
        """True when the signature is valid for ``public_key``."""
        if self.key_id != key_id_of(public_key):
            return False
        try:
            public_key.verify(base64.b64decode(self.signature, validate=True), self.message())
        except (InvalidSignature, ValueError):
            return False
        return True


class CheckpointSigner:
    """Loads (or creates, once) the ed25519 checkpoint key."""

    def __init__(self, path: Path):
        self.path = path
        self._key: Ed25519PrivateKey | None = None

    def exists(self) -> bool:
        return self.path.exists()

    def private_key(self, create: bool = True) -> Ed25519PrivateKey:
        if self._key is not None:
            return self._key
        if not self.path.exists():
            if not create:
                raise NotFound(f"no checkpoint signing key at {self.path}; create a checkpoint first")
            self._create()
        try:
            key = serialization.load_pem_private_key(self.path.read_bytes(), password=None)
        except (ValueError, TypeError) as exc:
            raise CheckpointError(f"checkpoint signing key {self.path} is unreadable: {exc}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise CheckpointError(f"{self.path} is not an ed25519 private key")
        self._key = key
        return key

    def _create(self) -> None:
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        create_private_once(self.path, pem)  # exactly one concurrent creator wins

    def public_key(self, create: bool = False) -> Ed25519PublicKey:
        return self.private_key(create).public_key()

    def public_key_pem(self, create: bool = True) -> str:
        """The public key as SubjectPublicKeyInfo PEM (what auditors keep)."""
        return (
            self.public_key(create=create)
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )

    def sign(self, message: bytes) -> str:
        return base64.b64encode(self.private_key().sign(message)).decode()


class CheckpointStore(NumberedJsonLines[Checkpoint]):
    """Append-only file of checkpoints, numbered from 1."""

    what = "checkpoint"
    error = CheckpointError

    def parse(self, d: dict[str, Any]) -> Checkpoint:
        return Checkpoint.from_dict(d)


@dataclass(slots=True)
class CheckpointReport:
    """Outcome of checking stored checkpoints against the current log."""

    ok: bool
    checked: int
    log_size: int
    problem: str | None = None
    seq: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "log_size": self.log_size,
            "problem": self.problem,
            "seq": self.seq,
        }


class Checkpoints:
    """Creating, listing and verifying the signed checkpoints of one data directory."""

    def __init__(self, signer: CheckpointSigner, store: CheckpointStore):
        self.signer = signer
        self.store = store

    @classmethod
    def for_config(cls, config: Config, log: Log | None = None) -> Checkpoints:
        """The checkpoint key (``<keys dir>/checkpoint-signing.key``) and store of a data directory; with
        ``[keys] backend = "postgres"``, the ones in the PostgreSQL log's schema that every server shares
        (``log``: that log, opened from ``config`` when not given)."""
        if shared_governance(config):
            from ledger.backends.postgres_log import PostgresLog
            from ledger.backends.postgres_log import from_config as postgres_log
            from ledger.governance.pg_checkpoints import PostgresCheckpointSigner, PostgresCheckpointStore
            from ledger.log import DelegatingLog

            while isinstance(log, DelegatingLog):  # the service's counting wrapper
                log = log.inner
            pg = log if isinstance(log, PostgresLog) else postgres_log(config)
            return cls(PostgresCheckpointSigner(pg), PostgresCheckpointStore(pg))
        return cls(CheckpointSigner(keys_dir(config) / SIGNING_KEY_NAME), CheckpointStore(config.data_dir / STORE_NAME))

    def create(self, log: Log, tree: MerkleTree | None = None, actor: str = "memledger") -> Checkpoint:
        """Sign and store a checkpoint of the log as it is now, then record it in the log.

        The record (``checkpoint.signed`` on ``_system``, after the events it covers) is what lets
        ``verify`` notice a checkpoint store that was deleted or replaced later.
        """
        cp = self._sign_and_store(log, tree)
        payload = {k: v for k, v in cp.to_dict().items() if k not in ("format", "time")}
        log.append([NewEvent(SYSTEM_STREAM, CHECKPOINT_SIGNED, payload, actor)])
        return cp

    def _sign_and_store(self, log: Log, tree: MerkleTree | None) -> Checkpoint:
        key_id = key_id_of(self.signer.public_key(create=True))

        def make(seq: int) -> Checkpoint:
            t = tree or log_tree(log)
            size = t.size
            head_hash = GENESIS_HASH
            if size:
                last = next(iter(log.read(size - 1, size - 1)), None)
                if last is None:
                    raise InvalidRequest(f"the log lost offset {size - 1} while checkpointing")
                head_hash = last.hash
            unsigned = Checkpoint(seq, size, t.root().hex(), head_hash, now_us(), key_id, "")
            return Checkpoint(
                seq, size, unsigned.root, head_hash, unsigned.ts_us, key_id, self.signer.sign(unsigned.message())
            )

        return self.store.append(make)

    def list(self) -> list[Checkpoint]:
        return self.store.all()

    def any_stored(self) -> bool:
        """True when the store holds anything (without parsing it)."""
        return self.store.any_stored()

    def get(self, seq: int) -> Checkpoint:
        return self.store.get(seq)

    def latest_covering(self, offset: int) -> Checkpoint | None:
        """The newest stored checkpoint whose log size includes ``offset``."""
        for cp in reversed(self.store.all()):
            if cp.log_size > offset:
                return cp
        return None

    def verify(
        self, log: Log, public_key: Ed25519PublicKey | None = None, tree: MerkleTree | None = None
    ) -> CheckpointReport:
        """Check every stored checkpoint's signature and its root/head hash against the log.

        ``public_key``: a trusted key (e.g. one an auditor holds); default the local key.
        """
        t = tree or log_tree(log)
        try:
            cps = self.store.all()
        except CheckpointError as exc:
            return CheckpointReport(False, 0, t.size, f"the checkpoint store is damaged: {exc}")
        if not cps:
            missing = self._missing_from_store(log, cps)
            return CheckpointReport(missing is None, 0, t.size, missing)
        if public_key is None and not self.signer.exists():
            return CheckpointReport(
                False,
                0,
                t.size,
                f"{len(cps)} checkpoints are stored but the signing key "
                f"{self.signer.path} is gone; verify with the published public key",
            )
        pub = public_key or self.signer.public_key(create=False)
        prev_seq, prev_size = 0, 0
        for i, cp in enumerate(cps):
            if cp.seq != prev_seq + 1:
                return CheckpointReport(
                    False,
                    i,
                    t.size,
                    f"checkpoint #{cp.seq} follows #{prev_seq} (checkpoints were removed or reordered)",
                    cp.seq,
                )
            if not cp.verify_signature(pub):
                return CheckpointReport(
                    False, i, t.size, f"checkpoint #{cp.seq}: signature is not valid for key {key_id_of(pub)}", cp.seq
                )
            if cp.log_size < prev_size:
                return CheckpointReport(
                    False,
                    i,
                    t.size,
                    f"checkpoint #{cp.seq} covers {cp.log_size} events, fewer than the {prev_size} of the one before",
                    cp.seq,
                )
            if cp.log_size > t.size:
                return CheckpointReport(
                    False,
                    i,
                    t.size,
                    f"checkpoint #{cp.seq} covers {cp.log_size} events but "
                    f"the log has only {t.size}: the log was truncated",
                    cp.seq,
                )
            if t.root(cp.log_size).hex() != cp.root:
                return CheckpointReport(
                    False,
                    i,
                    t.size,
                    f"checkpoint #{cp.seq}: the Merkle root of the first "
                    f"{cp.log_size} events differs: history was rewritten",
                    cp.seq,
                )
            try:
                head_leaf = leaf_hash(bytes.fromhex(cp.head_hash))
            except ValueError:
                head_leaf = b""
            if (t.leaf(cp.log_size - 1) != head_leaf) if cp.log_size else cp.head_hash != GENESIS_HASH:
                return CheckpointReport(
                    False,
                    i,
                    t.size,
                    f"checkpoint #{cp.seq}: head hash differs from the event at offset {cp.log_size - 1}",
                    cp.seq,
                )
            prev_seq, prev_size = cp.seq, cp.log_size
        missing = self._missing_from_store(log, cps)
        if missing is not None:
            return CheckpointReport(False, len(cps), t.size, missing)
        return CheckpointReport(True, len(cps), t.size)

    def _missing_from_store(self, log: Log, stored: Sequence[Checkpoint]) -> str | None:
        """Why the store disagrees with the checkpoints the log recorded (None when it agrees)."""
        by_seq = {cp.seq: cp for cp in stored}
        recorded = list(recorded_checkpoints(log))
        if recorded and not stored:
            at, last = recorded[-1]
            return (
                f"the log records {len(recorded)} signed checkpoints (the last, #{last.seq} covering "
                f"{last.log_size} events, at offset {at}) but the checkpoint store {self.store.path} holds none: "
                "it was deleted or replaced"
            )
        for at, cp in recorded:
            have = by_seq.get(cp.seq)
            if have is None:
                return (
                    f"checkpoint #{cp.seq} (recorded in the log at offset {at}) is missing from the checkpoint "
                    f"store {self.store.path}: checkpoints were removed"
                )
            if have.message() != cp.message() or have.signature != cp.signature:
                return (
                    f"checkpoint #{cp.seq} in the store differs from the one the log recorded at offset {at}: "
                    "the store was replaced"
                )
        return None

    def verify_pinned(
        self,
        log: Log,
        pinned: Sequence[Checkpoint],
        public_key: Ed25519PublicKey | None = None,
        tree: MerkleTree | None = None,
    ) -> CheckpointReport:
        """Check the log against checkpoints held elsewhere (a trusted copy, as Certificate
        Transparency clients keep the last signed tree head): each must be validly signed, the log
        must still hold its events, and their Merkle root and head hash must be unchanged."""
        t = tree or log_tree(log)
        if not pinned:
            return CheckpointReport(False, 0, t.size, "the trusted checkpoint file holds no checkpoint")
        if public_key is None and not self.signer.exists():
            return CheckpointReport(
                False,
                0,
                t.size,
                "no public key to check the trusted checkpoints with: "
                "pass --public-key (the local signing key is gone)",
            )
        pub = public_key or self.signer.public_key(create=False)
        try:
            stored: dict[int, Checkpoint] = {cp.seq: cp for cp in self.store.all()}
        except CheckpointError:
            stored = {}
        for i, cp in enumerate(pinned):
            problem = _pinned_problem(cp, pub, t, stored.get(cp.seq))
            if problem is not None:
                return CheckpointReport(False, i, t.size, f"trusted checkpoint #{cp.seq}: {problem}", cp.seq)
        return CheckpointReport(True, len(pinned), t.size)


def _pinned_problem(cp: Checkpoint, pub: Ed25519PublicKey, t: MerkleTree, stored: Checkpoint | None) -> str | None:
    if not cp.verify_signature(pub):
        return f"signature is not valid for key {key_id_of(pub)}"
    if cp.log_size > t.size:
        return f"covers {cp.log_size} events but the log has only {t.size}: the log was truncated"
    if t.root(cp.log_size).hex() != cp.root:
        return f"the Merkle root of the first {cp.log_size} events differs: history was rewritten"
    head_ok = (
        t.leaf(cp.log_size - 1) == leaf_hash(bytes.fromhex(cp.head_hash))
        if cp.log_size
        else cp.head_hash == GENESIS_HASH
    )
    if not head_ok:
        return f"head hash differs from the event at offset {cp.log_size - 1}"
    if stored is not None and (stored.message() != cp.message() or stored.signature != cp.signature):
        return "the local checkpoint store holds a different checkpoint under the same number (a forked history)"
    return None


def recorded_checkpoints(log: Log) -> list[tuple[int, Checkpoint]]:
    """``(offset, checkpoint)`` of every ``checkpoint.signed`` record in the log, oldest first."""
    source = log.read_filtered(types=[CHECKPOINT_SIGNED], stream=SYSTEM_STREAM)
    out = []
    for e in source:
        if e.type == CHECKPOINT_SIGNED and e.stream == SYSTEM_STREAM:
            out.append((e.offset, Checkpoint.from_dict({**e.payload, "format": FORMAT})))
    return out


def load_checkpoints_file(path: str) -> list[Checkpoint]:
    """Checkpoints from a file: one JSON object (``memledger checkpoint --json``), a JSON list, or
    JSON lines (a copy of ``checkpoints.jsonl``)."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise InvalidRequest(f"cannot read trusted checkpoints {path}: {exc.strerror or exc}") from None
    try:
        doc = orjson.loads(raw)
        items = doc if isinstance(doc, list) else [doc]
    except orjson.JSONDecodeError:
        try:
            items = [orjson.loads(line) for line in raw.splitlines() if line.strip()]
        except orjson.JSONDecodeError:
            raise InvalidRequest(f"{path} is neither JSON nor JSON lines of checkpoints") from None
    out = []
    for n, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            raise InvalidRequest(f"{path}: item {n} is not a checkpoint object")
        try:
            out.append(Checkpoint.from_dict(item))
        except CheckpointError as exc:
            raise InvalidRequest(f"{path}: item {n}: {exc}") from None
    return out


def load_public_key(text_or_path: str) -> Ed25519PublicKey:
    """A public key from a PEM file path, PEM text, or raw 32 bytes in hex or base64."""
    data: bytes
    p = Path(text_or_path)
    try:
        is_file = p.is_file()
    except OSError:
        is_file = False
    data = p.read_bytes() if is_file else text_or_path.encode()
    if b"BEGIN" in data:
        try:
            key = serialization.load_pem_public_key(data)
        except ValueError as exc:
            raise InvalidRequest(f"not a PEM public key: {exc}") from None
        if not isinstance(key, Ed25519PublicKey):
            raise InvalidRequest("the public key is not an ed25519 key")
        return key
    s = data.strip().decode(errors="replace")
    raw: bytes | None = None
    try:
        raw = bytes.fromhex(s)
    except ValueError:
        try:
            raw = base64.b64decode(s, validate=True)
        except ValueError:
            raw = None
    if raw is None or len(raw) != 32:
        raise InvalidRequest("public key must be a PEM file, PEM text, or 32 raw bytes in hex or base64")
    return Ed25519PublicKey.from_public_bytes(raw)
