"""Distributed log backends for re-running the embedded behaviour suites against real servers."""

from __future__ import annotations

from ledger.api import Ledger
from ledger.config import Config
from tests.dist_env import endpoint, unique_name

BACKENDS = ["postgres", "kafka"]


def open_log(backend: str, tmp_path):
    """(log, drop) for a fresh ledger on ``backend`` ("sqlite", "postgres" or "kafka")."""
    if backend == "postgres":
        from ledger.backends.postgres_log import PostgresLog

        log = PostgresLog(endpoint("postgres"), schema=unique_name("led"))
        return log, log.drop
    if backend == "kafka":
        from ledger.backends.kafka_log import KafkaLog

        log = KafkaLog(endpoint("kafka"), topic=unique_name("led"), partitions=3)
        return log, log.drop
    from ledger.backends.sqlite_log import SqliteLog

    return SqliteLog(tmp_path / "log.sqlite"), lambda: None


def ledger_on(backend: str, tmp_path, **kw):
    """A generator fixture body: a Ledger on ``backend`` whose data directory is ``tmp_path``."""
    log, drop = open_log(backend, tmp_path)
    led = Ledger(log, **kw)
    led.config = Config(tmp_path)  # branches, keys and views live in the data directory
    try:
        yield led
    finally:
        log.close()
        drop()


def drop_tests(namespace: dict, *names: str) -> None:
    """Remove tests that are about the embedded files themselves from a re-run suite."""
    for n in names:
        namespace.pop(n, None)
