"""Who may apply a view right now: one active consumer per view, the others stand by.

* ``KafkaGroupLease`` — a Kafka consumer group per view (``<topic>.view.<name>``) subscribed to
  the ledger's single-partition sequencer topic. The group coordinator gives that partition to
  exactly one member; that member is active. When it dies or stops polling, the group
  rebalances and a standby takes over (after about one session timeout).
* ``PostgresAdvisoryLease`` — a session-level ``pg_try_advisory_lock`` on the ledger's database;
  released by the server when the holder's connection ends (crash included).
* ``FileLease`` — an exclusive ``flock`` on a file in the data directory (embedded SQLite log).

A lease only decides who works. Exactly-once does not depend on it: every projection applies a
batch and its checkpoint atomically (or idempotently), so even two holders at once during a
rebalance cannot double-apply anything.
"""

from __future__ import annotations

import fcntl
import os
import zlib
from pathlib import Path
from typing import Protocol


class Lease(Protocol):
    """Exclusive right to apply one view."""

    description: str

    def poll(self) -> bool:
        """Keep the lease alive; True while this consumer holds it."""
        ...

    def release(self) -> None:
        """Give the lease up (a standby takes over)."""
        ...


class KafkaGroupLease:
    """Consumer-group membership on the sequencer topic decides the active consumer of a view."""

    def __init__(self, bootstrap_servers: str, topic: str, view: str, session_timeout_ms: int = 6000):
        from kafka import ConsumerRebalanceListener, KafkaConsumer

        self.group_id = f"{topic}.view.{view}"
        self.description = f"kafka consumer group {self.group_id}"
        self._active = False
        lease = self

        class _Listener(ConsumerRebalanceListener):
            def on_partitions_assigned(self, assigned):  # noqa: D401 - kafka-python callback
                lease._active = bool(assigned)
                if assigned:
                    lease._consumer.pause(*assigned)  # membership only; events come from the Log

            def on_partitions_revoked(self, revoked):
                lease._active = False

        self._consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=self.group_id,
                                       enable_auto_commit=False, session_timeout_ms=session_timeout_ms,
                                       heartbeat_interval_ms=max(500, session_timeout_ms // 6),
                                       max_poll_interval_ms=300_000)
        self._consumer.subscribe([f"{topic}.seq"], listener=_Listener())

    def poll(self) -> bool:
        self._consumer.poll(timeout_ms=100)
        return self._active and bool(self._consumer.assignment())

    def release(self) -> None:
        self._active = False
        self._consumer.close()


class PostgresAdvisoryLease:
    """A PostgreSQL session advisory lock per (ledger schema, view)."""

    def __init__(self, dsn: str, schema: str, view: str):
        import psycopg

        self.key = zlib.crc32(f"memledger-view:{schema}:{view}".encode()) - 2**31
        self.description = f"postgres advisory lock {self.key} ({schema}/{view})"
        self._conn = psycopg.connect(dsn, autocommit=True)
        self._held = False

    def poll(self) -> bool:
        if not self._held:
            self._held = bool(self._conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()[0])
        else:
            self._conn.execute("SELECT 1")  # notices a dead connection (lease lost)
        return self._held

    def release(self) -> None:
        try:
            if self._held:
                self._conn.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
        finally:
            self._held = False
            self._conn.close()


class FileLease:
    """An exclusive ``flock`` on ``<data_dir>/consumers/<view>.lock`` (one machine)."""

    def __init__(self, data_dir: str | Path, view: str):
        path = Path(data_dir) / "consumers" / f"{view}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.description = f"file lock {path}"
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        self._held = False

    def poll(self) -> bool:
        if not self._held:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self._held = True
            except BlockingIOError:
                return False
        return True

    def release(self) -> None:
        if self._held:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._held = False
        os.close(self._fd)


def lease_for(log: object, view: str, data_dir: str | Path) -> Lease:
    """The natural lease for the log backend in use."""
    from ledger.backends.kafka_log import KafkaLog
    from ledger.backends.postgres_log import PostgresLog

    if isinstance(log, KafkaLog):
        return KafkaGroupLease(log.bootstrap_servers, log.topic, view)
    if isinstance(log, PostgresLog):
        return PostgresAdvisoryLease(log.dsn, log.schema, view)
    return FileLease(data_dir, view)
