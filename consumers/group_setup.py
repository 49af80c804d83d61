"""Build a consumer-group member from a data directory's configuration (what ``consume --group`` runs).

Three things come from ``memledger.toml``:

- the partitioned log: the ledger's own log when it is partitioned, else the factory named by
  ``[consumers.group] partitioned_log = "module:function"`` (``build(config, ledger)``), else the
  data directory's ``[log] partitions = N`` (``ledger.factory.open_partitioned_log``; N > 1);
- each partition's view: the view's factory called with ``partition=k``
  (``build(config, ledger, partition=k)``), so every partition has a store and a checkpoint of
  its own; a factory without a ``partition`` parameter cannot be consumed by a group;
- the coordinator, ``[consumers.group] coordinator``: ``"postgres"`` at ``[consumers.group] dsn``
  (default: ``$MEMLEDGER_PG_DSN``, then ``[log] dsn``) with its member table in
  ``[consumers.group] schema`` (default: ``[log] schema``), or ``"file"`` (``flock`` in the data
  directory: members on one machine). The default is ``"postgres"`` when a DSN is known, else
  ``"file"``.
"""

from __future__ import annotations

import inspect
import os
from typing import Any

from consumers.file_group_coordinator import FileGroupCoordinator
from consumers.group_coordinator import GroupCoordinator
from consumers.group_member import ViewFactory
from consumers.pg_group_coordinator import PostgresGroupCoordinator
from consumers.views import known_views
from ledger.config import Config, resolve
from ledger.errors import InvalidRequest
from ledger.partitions.base import PartitionedLog


def group_section(config: Config) -> dict[str, Any]:
    """``[consumers.group]`` (empty when absent)."""
    section = config.section("consumers").get("group", {})
    if not isinstance(section, dict):
        raise InvalidRequest("[consumers.group] must be a table")
    return section


def open_partitioned_log(config: Config, ledger: Any) -> PartitionedLog:
    """The partitioned log the group consumes (see the module docstring)."""
    if isinstance(ledger.log, PartitionedLog):
        return ledger.log
    target = group_section(config).get("partitioned_log")
    if not isinstance(target, str):
        from ledger.factory import open_partitioned_log as open_configured

        plog = open_configured(config)  # [log] partitions
        if plog.count > 1:
            return plog
        plog.close()
        raise InvalidRequest(
            "consume --group needs a partitioned log: this ledger has one partition ([log] partitions = N "
            'with N > 1, or [consumers.group] partitioned_log = "module:function")'
        )
    plog = resolve(target, "[consumers.group] partitioned_log")(config, ledger)
    if not isinstance(plog, PartitionedLog):
        raise InvalidRequest(f"[consumers.group] partitioned_log {target!r} did not return a PartitionedLog")
    return plog


def partition_view_factory(name: str, config: Config, ledger: Any, plog: PartitionedLog | None = None) -> ViewFactory:
    """``k -> the view `name` of partition k`` (its factory called with ``partition=k``, and with
    ``partition_log=plog.partition(k)`` when it takes one: views that read the log themselves)."""
    views = known_views(config)
    if name not in views:
        raise InvalidRequest(f"unknown view {name!r}; known: {', '.join(sorted(views))}")
    build = resolve(views[name], f"view {name!r}")
    if "partition" not in inspect.signature(build).parameters:
        raise InvalidRequest(
            f"view {name!r} keeps one checkpoint for the whole log; a consumer group needs a view "
            "factory build(config, ledger, partition) that opens one store per partition"
        )
    if "partition_log" in inspect.signature(build).parameters:
        if plog is None:
            raise InvalidRequest(f"view {name!r} reads its partition's log: pass the partitioned log")
        return lambda k: build(config, ledger, partition=k, partition_log=plog.partition(k))
    return lambda k: build(config, ledger, partition=k)


def group_coordinator(config: Config, group: str, view: str, member: str, heartbeat_timeout: float) -> GroupCoordinator:
    """The coordinator configured for this data directory (see the module docstring)."""
    section, log = group_section(config), config.section("log")
    dsn = section.get("dsn") or os.environ.get("MEMLEDGER_PG_DSN") or log.get("dsn")
    kind = section.get("coordinator", "postgres" if dsn else "file")
    if kind == "file":
        return FileGroupCoordinator(config.data_dir, group, view, member, heartbeat_timeout=heartbeat_timeout)
    if kind != "postgres":
        raise InvalidRequest(f'[consumers.group] coordinator must be "postgres" or "file", not {kind!r}')
    if not dsn:
        raise InvalidRequest(
            'the postgres coordinator needs [consumers.group] dsn = "postgresql://..." '
            "(or $MEMLEDGER_PG_DSN, or a PostgreSQL [log])"
        )
    return postgres_coordinator(config, str(dsn), group, view, member, heartbeat_timeout)


def postgres_coordinator(
    config: Config, dsn: str, group: str, view: str, member: str, heartbeat_timeout: float
) -> PostgresGroupCoordinator:
    """The PostgreSQL coordinator at ``dsn``, its table in the configured schema."""
    section, log = group_section(config), config.section("log")
    schema = section.get("schema") or log.get("schema") or "memledger"
    return PostgresGroupCoordinator(
        dsn,
        str(schema),
        group,
        view,
        member,
        heartbeat_timeout=heartbeat_timeout,
        detect_closed_sessions=bool(section.get("detect_closed_sessions", True)),
        fence_expired=bool(section.get("fence_expired", True)),
    )
