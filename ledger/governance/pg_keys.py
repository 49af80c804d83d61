"""Subject and memory keys in the PostgreSQL schema of a shared ledger (``[keys] backend = "postgres"``).

With several app servers on one PostgreSQL log, keys in each server's data directory would split the
ledger: a memory sealed on one server could not be read on another, and ``forget`` on one server would
leave the subject's key alive on the others. Here every server uses the same two tables next to the
events, ``subject_keys`` and ``memory_keys``; a destruction is one ``DELETE`` that every server sees
on its next lookup (keys are not cached across calls, except the fresh keys a writer has just taken).

What this costs in erasure strength (see docs/distributed.md): a deleted row is gone for every
reader at once, but its bytes stay in the table's pages until ``VACUUM`` reuses them, and in WAL
archives and backups until those age out. Deployments that need more run a key-management service
behind the ``KeyStore`` protocol (``register_keystore``).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterable
from typing import Any

from ledger.config import Config
from ledger.errors import InvalidRequest
from ledger.governance.keystore import KEY_BYTES, SubjectKey, check_new_subject, check_subject

_DDL = """
CREATE TABLE IF NOT EXISTS {s}.subject_keys(
  subject_hash TEXT PRIMARY KEY, subject TEXT NOT NULL, key_id TEXT NOT NULL, key BYTEA NOT NULL
);
CREATE TABLE IF NOT EXISTS {s}.memory_keys(key_id TEXT PRIMARY KEY, key BYTEA NOT NULL);
"""


def _hash(subject: str) -> str:
    return hashlib.sha256(subject.encode()).hexdigest()


class PostgresKeys:
    """Both key tables of one ledger schema, through the log's connections (reconnects included)."""

    def __init__(self, log: Any):
        self.log = log
        log.run(lambda c: c.execute(log.q(_DDL)))


class PostgresKeyStore:
    """``KeyStore`` on ``<schema>.subject_keys``: one AES-256 key per data subject, shared by every server."""

    def __init__(self, keys: PostgresKeys):
        self.log = keys.log

    def get(self, subject: str) -> SubjectKey | None:
        check_subject(subject)
        q = self.log.q("SELECT subject, key_id, key FROM {s}.subject_keys WHERE subject_hash = %s")
        row = self.log.run(lambda c: c.execute(q, (_hash(subject),)).fetchone())
        return None if row is None else SubjectKey(row[0], row[1], bytes(row[2]))

    def get_or_create(self, subject: str) -> SubjectKey:
        found = self.get(subject)
        if found is not None:
            return found
        check_new_subject(subject)
        q = self.log.q(
            "INSERT INTO {s}.subject_keys(subject_hash, subject, key_id, key) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (subject_hash) DO NOTHING"
        )
        args = (_hash(subject), subject, os.urandom(16).hex(), os.urandom(KEY_BYTES))
        self.log.run(lambda c: c.execute(q, args))  # exactly one concurrent creator wins
        got = self.get(subject)
        return got if got is not None else self.get_or_create(subject)  # destroyed in between: again

    def destroy(self, subject: str) -> str | None:
        check_subject(subject)
        q = self.log.q("DELETE FROM {s}.subject_keys WHERE subject_hash = %s RETURNING key_id")
        row = self.log.run(lambda c: c.execute(q, (_hash(subject),)).fetchone())
        return None if row is None else str(row[0])

    def subjects(self) -> list[str]:
        q = self.log.q("SELECT subject FROM {s}.subject_keys ORDER BY subject")
        return [r[0] for r in self.log.run(lambda c: c.execute(q).fetchall())]


class PostgresKeyVault:
    """Per-memory keys on ``<schema>.memory_keys`` (the ``KeyVault`` methods), handed out from a pool."""

    def __init__(self, keys: PostgresKeys, pool_size: int = 512):
        self.log = keys.log
        self.pool_size = max(1, int(pool_size))
        self._lock = threading.Lock()
        self._spare: list[tuple[str, bytes]] = []

    def close(self) -> None:
        """Nothing of its own to close (the log owns the connections)."""

    def new_key(self) -> tuple[str, bytes]:
        """A fresh key that nothing has used yet, and its id."""
        with self._lock:
            if not self._spare:
                fresh = [(os.urandom(16).hex(), os.urandom(KEY_BYTES)) for _ in range(self.pool_size)]
                self.install(fresh)
                self._spare = fresh
            return self._spare.pop()

    def install(self, keys: Iterable[tuple[str, bytes]]) -> int:
        """Store keys created elsewhere; existing ids are kept. Returns how many were new."""
        rows = [(k, bytes(v)) for k, v in keys]
        q = self.log.q("INSERT INTO {s}.memory_keys(key_id, key) VALUES (%s, %s) ON CONFLICT (key_id) DO NOTHING")

        def work(conn: Any) -> int:
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(q, rows)
                return int(cur.rowcount)

        return self.log.run(work) if rows else 0

    def get(self, key_id: str) -> bytes | None:
        """The key, or None when it was destroyed (on any server) or never existed."""
        q = self.log.q("SELECT key FROM {s}.memory_keys WHERE key_id = %s")
        row = self.log.run(lambda c: c.execute(q, (key_id,)).fetchone())
        return None if row is None else bytes(row[0])

    def exists(self, key_id: str) -> bool:
        return self.get(key_id) is not None

    def destroy(self, key_ids: Iterable[str]) -> tuple[list[str], str | None]:
        """Irreversibly delete keys for every server; return (the ids that existed, None)."""
        ids = sorted(set(key_ids))
        q = self.log.q("DELETE FROM {s}.memory_keys WHERE key_id = ANY(%s) RETURNING key_id")
        destroyed = [r[0] for r in self.log.run(lambda c: c.execute(q, (ids,)).fetchall())] if ids else []
        with self._lock:
            self._spare = [s for s in self._spare if s[0] not in set(ids)]
        return sorted(destroyed), None


def shared_keys(config: Config, log: Any) -> tuple[PostgresKeyStore, PostgresKeyVault]:
    """The key store and vault of ``[keys] backend = "postgres"``: tables in the PostgreSQL log's schema."""
    from ledger.backends.postgres_log import PostgresLog
    from ledger.log import DelegatingLog

    while isinstance(log, DelegatingLog):  # a partition's clock (partition 0 of a partitioned ledger)
        log = log.inner
    if not isinstance(log, PostgresLog):
        raise InvalidRequest('[keys] backend = "postgres" keeps keys with the log: it needs [log] backend = "postgres"')
    keys = PostgresKeys(log)
    return PostgresKeyStore(keys), PostgresKeyVault(keys)
