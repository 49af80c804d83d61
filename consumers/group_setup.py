"""Build a consumer-group member from a data directory's configuration (what ``consume --group`` runs).

Three things come from ``memledger.toml``:

- the partitioned log: the ledger's own log when it is partitioned, else the factory named by
  ``[consumers.group] partitioned_log = "module:function"`` (``build(config, ledger)``);
- each partition's view: the view's factory called with ``partition=k``
  (``build(config, ledger, partition=k)``), so every partition has a store and a checkpoint of
  its own; a factory without a ``partition`` parameter cannot be consumed by a group;
- the coordinator: PostgreSQL at ``[consumers.group] dsn`` (default: ``$MEMLEDGER_PG_DSN``, then
  ``[log] dsn``), its member table in ``[consumers.group] schema`` (default: ``[log] schema``).
"""

from __future__ import annotations

import inspect
import os
from typing import Any

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
        raise InvalidRequest(
            "consume --group needs a partitioned log: this ledger's log has one partition, and "
            '[consumers.group] partitioned_log = "module:function" is not set'
        )
    plog = resolve(target, "[consumers.group] partitioned_log")(config, ledger)
    if not isinstance(plog, PartitionedLog):
        raise InvalidRequest(f"[consumers.group] partitioned_log {target!r} did not return a PartitionedLog")
    return plog


def partition_view_factory(name: str, config: Config, ledger: Any) -> ViewFactory:
    """``k -> the view `name` of partition k`` (its factory called with ``partition=k``)."""
    views = known_views(config)
    if name not in views:
        raise InvalidRequest(f"unknown view {name!r}; known: {', '.join(sorted(views))}")
    build = resolve(views[name], f"view {name!r}")
    if "partition" not in inspect.signature(build).parameters:
        raise InvalidRequest(
            f"view {name!r} keeps one checkpoint for the whole log; a consumer group needs a view "
            "factory build(config, ledger, partition) that opens one store per partition"
        )
    return lambda k: build(config, ledger, partition=k)


def postgres_coordinator(
    config: Config, group: str, view: str, member: str, heartbeat_timeout: float
) -> PostgresGroupCoordinator:
    """The PostgreSQL coordinator configured for this data directory."""
    section, log = group_section(config), config.section("log")
    dsn = section.get("dsn") or os.environ.get("MEMLEDGER_PG_DSN") or log.get("dsn")
    if not dsn:
        raise InvalidRequest(
            'consume --group needs PostgreSQL as its coordinator: [consumers.group] dsn = "postgresql://..." '
            "(or $MEMLEDGER_PG_DSN, or a PostgreSQL [log])"
        )
    schema = section.get("schema") or log.get("schema") or "memledger"
    return PostgresGroupCoordinator(
        str(dsn),
        str(schema),
        group,
        view,
        member,
        heartbeat_timeout=heartbeat_timeout,
        detect_closed_sessions=bool(section.get("detect_closed_sessions", True)),
        fence_expired=bool(section.get("fence_expired", True)),
    )
