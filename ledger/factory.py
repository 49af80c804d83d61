"""Builds the configured adapters. The core never imports a vendor client; this module does,
lazily, by the name in the configuration."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ledger.api import Ledger
from ledger.config import Config, load_config, resolve
from ledger.errors import InvalidRequest
from ledger.governance.keystore_factory import open_cipher
from ledger.log import Log, LogBase
from ledger.partitions.base import PartitionedLog
from ledger.partitions.composite import CompositePartitionedLog
from ledger.partitions.settings import partition_count
from ledger.storage.file_modes import tighten_data_dir
from projections.erasure import data_dir_participants

if TYPE_CHECKING:
    from ledger.partitions.partitioned_ledger import PartitionedLedger

# backend name -> "module:function" taking (config) and returning a Log
LOG_BACKENDS: dict[str, str] = {
    "sqlite": "ledger.backends.sqlite_log:from_config",
    "postgres": "ledger.backends.postgres_log:from_config",
    "kafka": "ledger.backends.kafka_log:from_config",
}


def register_log_backend(name: str, target: str) -> None:
    """Register a log backend factory ``"module:function"`` under ``name``."""
    LOG_BACKENDS[name] = target


def _load(target: str) -> Callable[[Config], Log]:
    factory: Callable[[Config], Log] = resolve(target, "log backend")
    return factory


# shared logs a server can lose or replace under a data directory: guarded by ``ledger.log_guard``
GUARDED_BACKENDS = frozenset({"postgres", "kafka"})


def open_log(config: Config) -> Log:
    """Open the configured log backend (shared ones with a ``LogGuard`` in the data directory).

    One log only: a ledger of several partitions (``[log] partitions``, or stored with several) is
    refused with one clear error rather than opened as an empty single log beside its partitions."""
    name = config.log_backend
    if name not in LOG_BACKENDS:
        raise InvalidRequest(f"unknown log backend {name!r}; known: {', '.join(sorted(LOG_BACKENDS))}")
    count = partition_count(config)
    if count > 1:
        raise InvalidRequest(
            f"this ledger has {count} partitions ([log] partitions; ledger_partitions on Kafka): this runs "
            "on a ledger of one partition. A partitioned ledger runs the memory commands (init, add, update, "
            "get, history, list, delete, lifecycle, merge, ingest, search, rebuild, views, forget, head, verify, "
            "checkpoint, checkpoints; the service; in Python: ledger.factory.open_partitioned_memory, "
            "ledger.client.open_embedded_client) and consumer "
            "groups (`memledger consume --view V --group G`)"
        )
    if name in ("sqlite", "postgres", "kafka"):
        _refuse_partitioned(config, name)
    log = _load(LOG_BACKENDS[name])(config)
    if name in GUARDED_BACKENDS and isinstance(log, LogBase):
        from ledger.governance.checkpoints import STORE_NAME, shared_governance
        from ledger.log_guard import LogGuard

        # checkpoints kept in the shared store vanish with it; the local log.seen still notices
        local_checkpoints = None if shared_governance(config) else config.data_dir / STORE_NAME
        log.reset_guard = LogGuard(config.data_dir, local_checkpoints)
    return log


def open_partitioned_log(config: Config) -> PartitionedLog:
    """Open the configured log as a partitioned ledger of ``[log] partitions`` (default 1).

    One partition is exactly ``open_log(config)`` (any backend); more partitions are SQLite files in
    the data directory or PostgreSQL schemas (``ledger.partitions``). A stored ledger with another
    count is refused.
    """
    count = partition_count(config)
    name = config.log_backend
    if count == 1:
        return CompositePartitionedLog([open_log(config)])  # refuses a layout stored with several
    if name == "sqlite":
        from ledger.partitions.sqlite_partitions import open_sqlite_partitions

        synchronous = str(config.section("log").get("synchronous", "FULL"))
        return open_sqlite_partitions(config.data_dir, count, synchronous)
    if name == "postgres":
        from ledger.backends.postgres_log import connection_settings
        from ledger.partitions.postgres_partitions import open_postgres_partitions

        dsn, schema, timeout = connection_settings(config)
        return _guarded(open_postgres_partitions(dsn, count, schema, connect_timeout=timeout), config)
    if name == "kafka":
        from ledger.backends.kafka_log import kafka_settings
        from ledger.partitions.kafka_partitions import open_kafka_partitions

        k = kafka_settings(config)
        plog = open_kafka_partitions(
            k["servers"],
            count,
            k["topic"],
            config.data_dir,
            topic_partitions=k["partitions"],
            replication_factor=k["replication_factor"],
            connect_timeout=k["connect_timeout"],
        )
        return _guarded(plog, config)
    raise InvalidRequest(f"[log] partitions = {count} needs the sqlite, postgres or kafka backend, not {name!r}")


def _guarded(plog: CompositePartitionedLog, config: Config) -> CompositePartitionedLog:
    """``plog`` with a ``LogGuard`` on each partition of a shared log (its ``log.seen`` in
    ``<data>/partitions/p<k>``): a partition reset or replaced on the server takes no writes."""
    from ledger.log_guard import LogGuard
    from ledger.partitions.partitioned_ledger import partition_dir

    for k, part in enumerate(plog.partitions()):
        inner = getattr(part, "inner", part)
        if isinstance(inner, LogBase):
            inner.reset_guard = LogGuard(partition_dir(config.data_dir, k))
    return plog


def _refuse_partitioned(config: Config, backend: str) -> None:
    """Refuse to open one partition over a ledger stored with several (``PartitionCountMismatch``)."""
    if backend == "sqlite":
        from ledger.partitions.sqlite_partitions import check_layout

        check_layout(config.data_dir, 1)
    elif backend == "postgres":
        from ledger.backends.postgres_log import connection_settings
        from ledger.partitions.postgres_partitions import check_layout as check_pg_layout

        dsn, schema, timeout = connection_settings(config)
        check_pg_layout(dsn, schema, 1, timeout)
    elif backend == "kafka":
        from ledger.backends.kafka_log import kafka_settings
        from ledger.partitions.kafka_partitions import check_layout as check_kafka_layout

        k = kafka_settings(config)
        check_kafka_layout(k["servers"], k["topic"], 1, connect_timeout=k["connect_timeout"])


def open_ledger(data_dir: str | Path) -> Ledger:
    """Open the ledger of a data directory with its configured adapters."""
    config = load_config(data_dir)
    tighten_data_dir(config.data_dir)
    log = open_log(config)
    keys = open_cipher(config, log)
    return Ledger(log, sealer=keys, opener=keys.open, config=config, erasure_participants=data_dir_participants)


def open_partitioned_ledger(data_dir: str | Path) -> tuple[Ledger, PartitionedLog]:
    """A data directory's partitioned log and a ``Ledger`` handle over its system partition (0), for
    what consumer groups need of a ledger (registry, key opener, configuration): the memory API
    itself does not run on a partitioned ledger yet (``open_ledger`` refuses one)."""
    config = load_config(data_dir)
    tighten_data_dir(config.data_dir)
    plog = open_partitioned_log(config)
    try:
        system = plog.partition(0)
        keys = open_cipher(config, system)
        ledger = Ledger(
            system, sealer=keys, opener=keys.open, config=config, erasure_participants=data_dir_participants
        )
    except BaseException:
        plog.close()
        raise
    return ledger, plog


def _partition_participants(ledger: Ledger, index: int, root: Path | None) -> list[Any]:
    """The erasure participants of partition ``index``: its embedded views (``<data>/partitions/p<k>``)."""
    if root is None:
        return []
    from ledger.partitions.partitioned_ledger import partition_dir
    from projections.erasure import SearchViews

    return [SearchViews(partition_dir(root, index))]


def open_partitioned_memory(data_dir: str | Path) -> PartitionedLedger:
    """The memory API over a data directory's partitioned log (``ledger.partitions.partitioned_ledger``):
    a ``Ledger`` per partition, sharing the key store, each cube's operations on its partition."""
    from ledger.partitions.partitioned_ledger import PartitionedLedger

    config = load_config(data_dir)
    tighten_data_dir(config.data_dir)
    plog = open_partitioned_log(config)
    try:
        if not isinstance(plog, CompositePartitionedLog):
            raise InvalidRequest(f"the memory API needs a partitioned log of backend logs, not {plog!r}")
        keys = open_cipher(config, plog.partition(0))
        return PartitionedLedger(
            plog, opener=keys.open, sealer=keys, config=config, participants=_partition_participants
        )
    except BaseException:
        plog.close()
        raise
