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
from ledger.governance.checkpoints import CheckpointError, CheckpointSigner, CheckpointStore

_DDL = """
CREATE TABLE IF NOT EXISTS {s}.checkpoints(seq BIGINT PRIMARY KEY, body BYTEA NOT NULL);
CREATE TABLE IF NOT EXISTS {s}.checkpoint_key(id INTEGER PRIMARY KEY CHECK (id = 1), pem BYTEA NOT NULL);
CREATE TABLE IF NOT EXISTS {s}.global_checkpoints(seq BIGINT PRIMARY KEY, body BYTEA NOT NULL);
"""
TABLES = frozenset({"checkpoints", "global_checkpoints"})  # the numbered tables (names are never input)


def _prepare(log: Any) -> None:
    log.run(lambda c: c.execute(log.q(_DDL)))


class PostgresRows:
    """``all``, ``any_stored`` and ``append`` of numbered records on ``<schema>.<table>``, for a
    ``NumberedJsonLines`` store (whose ``parse`` and ``error`` it uses) kept in PostgreSQL."""

    log: Any
    table: str

    def _on(self, log: Any, table: str) -> None:
        if table not in TABLES:
            raise ValueError(f"not a numbered table: {table!r}")
        self.log, self.table = log, table
        _prepare(log)

    def _q(self, text: str) -> Any:
        return self.log.q(text.replace("{t}", self.table))

    def all(self) -> list[Any]:
        q = self._q("SELECT body FROM {s}.{t} ORDER BY seq")
        out = []
        for (body,) in self.log.run(lambda c: c.execute(q).fetchall()):
            try:
                d = orjson.loads(bytes(body))
            except orjson.JSONDecodeError:
                raise CheckpointError(f"{self.where} holds a row that is not valid JSON") from None
            out.append(self.parse(d))  # type: ignore[attr-defined]
        return out

    @property
    def where(self) -> str:
        return f"postgresql:{self.log.schema}.{self.table}"

    def any_stored(self) -> bool:
        q = self._q("SELECT EXISTS (SELECT 1 FROM {s}.{t})")
        return bool(self.log.run(lambda c: c.execute(q).fetchone()[0]))

    def append(self, make: Callable[[int], Any]) -> Any:
        """Append ``make(next_seq)``; servers signing at once take turns on a transaction lock."""
        lock = f"memledger-{self.table}:{self.log.schema}"

        def work(conn: Any) -> Any:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (lock,))
                row = conn.execute(self._q("SELECT COALESCE(MAX(seq), 0) FROM {s}.{t}")).fetchone()
                record = make(int(row[0]) + 1)
                conn.execute(
                    self._q("INSERT INTO {s}.{t}(seq, body) VALUES (%s, %s)"),
                    (record.seq, orjson.dumps(record.to_dict())),
                )
                return record

        return self.log.run(work)


class PostgresCheckpointStore(PostgresRows, CheckpointStore):
    """The checkpoint store (``all``, ``append``; ``get`` as the file's) on ``<schema>.checkpoints``."""

    def __init__(self, log: Any):
        CheckpointStore.__init__(self, Path(f"postgresql:{log.schema}.checkpoints"))  # named in messages
        self._on(log, "checkpoints")


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
