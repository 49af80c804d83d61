"""Signed checkpoints in the PostgreSQL schema of a shared ledger (with ``[keys] backend = "postgres"``).

Every app server on one PostgreSQL log lists, verifies and extends the same numbered checkpoints
(``<schema>.checkpoints``, appended under a transaction lock so numbers never repeat) signed with the
same ed25519 key (``<schema>.checkpoint_key``, created once by whichever server signs first).

The signing key then lives with the data it vouches for: whoever can write the schema can also sign.
What protects against that is outside the database: publish the public key (``memledger keys
export-public``) and keep checkpoints elsewhere (``verify --checkpoint`` pins one), as auditors do.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.errors import NotFound
from ledger.governance.checkpoints import Checkpoint, CheckpointError, CheckpointSigner, CheckpointStore

_DDL = """
CREATE TABLE IF NOT EXISTS {s}.checkpoints(seq BIGINT PRIMARY KEY, body BYTEA NOT NULL);
CREATE TABLE IF NOT EXISTS {s}.checkpoint_key(id INTEGER PRIMARY KEY CHECK (id = 1), pem BYTEA NOT NULL);
"""


def _prepare(log: Any) -> None:
    log.run(lambda c: c.execute(log.q(_DDL)))


class PostgresCheckpointStore(CheckpointStore):
    """The checkpoint store (``all``, ``append``; ``get`` as the file's) on ``<schema>.checkpoints``."""

    def __init__(self, log: Any):
        super().__init__(Path(f"postgresql:{log.schema}.checkpoints"))  # the path is named in messages
        self.log = log
        _prepare(log)

    def all(self) -> list[Checkpoint]:
        q = self.log.q("SELECT body FROM {s}.checkpoints ORDER BY seq")
        out = []
        for (body,) in self.log.run(lambda c: c.execute(q).fetchall()):
            try:
                d = orjson.loads(bytes(body))
            except orjson.JSONDecodeError:
                raise CheckpointError(f"{self.path} holds a row that is not valid JSON") from None
            out.append(Checkpoint.from_dict(d))
        return out

    def any_stored(self) -> bool:
        q = self.log.q("SELECT EXISTS (SELECT 1 FROM {s}.checkpoints)")
        return bool(self.log.run(lambda c: c.execute(q).fetchone()[0]))

    def append(self, make: Callable[[int], Checkpoint]) -> Checkpoint:
        """Append ``make(next_seq)``; servers signing at once take turns on a transaction lock."""
        lock = f"memledger-checkpoints:{self.log.schema}"

        def work(conn: Any) -> Checkpoint:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (lock,))
                row = conn.execute(self.log.q("SELECT COALESCE(MAX(seq), 0) FROM {s}.checkpoints")).fetchone()
                cp = make(int(row[0]) + 1)
                conn.execute(
                    self.log.q("INSERT INTO {s}.checkpoints(seq, body) VALUES (%s, %s)"),
                    (cp.seq, orjson.dumps(cp.to_dict())),
                )
                return cp

        return self.log.run(work)


class PostgresCheckpointSigner(CheckpointSigner):
    """The ed25519 checkpoint key in ``<schema>.checkpoint_key``, shared by every server of the log."""

    def __init__(self, log: Any):
        super().__init__(Path(f"postgresql:{log.schema}.checkpoint_key"))
        self.log = log
        _prepare(log)

    def _pem(self) -> bytes | None:
        q = self.log.q("SELECT pem FROM {s}.checkpoint_key WHERE id = 1")
        row = self.log.run(lambda c: c.execute(q).fetchone())
        return None if row is None else bytes(row[0])

    def exists(self) -> bool:
        return self._pem() is not None

    def private_key(self, create: bool = True) -> Ed25519PrivateKey:
        if self._key is not None:
            return self._key
        pem = self._pem()
        if pem is None:
            if not create:
                raise NotFound(f"no checkpoint signing key in {self.path}; create a checkpoint first")
            self._create()
            pem = self._pem()
        try:
            key = serialization.load_pem_private_key(pem or b"", password=None)
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
        q = self.log.q("INSERT INTO {s}.checkpoint_key(id, pem) VALUES (1, %s) ON CONFLICT (id) DO NOTHING")
        self.log.run(lambda c: c.execute(q, (pem,)))  # exactly one concurrent creator wins
