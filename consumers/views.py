"""Which projection a consumer runs: view names -> factories, chosen by configuration.

Built in: ``elasticsearch`` (keyword + vector) and ``neo4j`` (graph), and the view set's kinds
``keyword``, ``graph`` and ``vector``, which run whatever adapter ``[views]`` configures for that
kind (embedded, elasticsearch, neo4j). Any other view is named in ``memledger.toml``::

    [consumers.views.my_view]
    factory = "my_package.my_module:build"   # build(config, ledger) -> Projection

A factory that also accepts ``partition`` (and optionally ``partition_log``, the partition's own
``Log``) can be consumed by a consumer group (``consumers.group_setup``).
"""

from __future__ import annotations

from typing import Any

from ledger.config import resolve
from ledger.errors import InvalidRequest

BUILTIN_VIEWS: dict[str, str] = {
    "elasticsearch": "consumers.views:build_elasticsearch",
    "neo4j": "consumers.views:build_neo4j",
    "keyword": "consumers.views:build_keyword",
    "graph": "consumers.views:build_graph",
    "vector": "consumers.views:build_vector",
}


def partition_source(ledger: Any, partition: int | None, partition_log: Any) -> Any:
    """What a view folds prior memory states from: the ledger, or partition ``partition``'s own log
    (offsets are partition-local, so a partition's view must never read another partition)."""
    if partition is None:
        return ledger
    if partition_log is None:
        raise InvalidRequest(f"the view of partition {partition} needs that partition's log (partition_log)")
    from projections.version_tracker import LogSource

    return LogSource(partition_log, ledger.registry, getattr(ledger, "opener", None))


def build_elasticsearch(config: Any, ledger: Any, partition: int | None = None, partition_log: Any = None) -> Any:
    """The Elasticsearch view; with ``partition`` (a consumer group) that partition's instance."""
    from projections.es_views import from_config

    return from_config(config, partition_source(ledger, partition, partition_log), partition=partition)


def build_neo4j(config: Any, ledger: Any, partition: int | None = None, partition_log: Any = None) -> Any:
    """The Neo4j graph view; with ``partition`` (a consumer group) that partition's instance."""
    from projections.neo4j_graph import from_config

    return from_config(config, partition_source(ledger, partition, partition_log), partition=partition)


def _view_set_kind(kind: str, config: Any, ledger: Any) -> Any:
    """The view the view set would open for ``kind`` (same adapter, same options, same files)."""
    from projections.view_set import DEFAULTS, VIEW_ADAPTERS

    spec = config.section("views").get(kind, DEFAULTS[kind])
    name, options = (spec, {}) if isinstance(spec, str) else (spec.get("adapter", "embedded"), spec)
    if name == "none":
        raise InvalidRequest(f"[views] {kind} is 'none': there is no {kind} view to consume into")
    target = VIEW_ADAPTERS.get((kind, name))
    if target is None:
        raise InvalidRequest(f"unknown {kind} view adapter {name!r}")
    view = resolve(target, f"{kind} view adapter")(ledger, config.data_dir / "views", options)
    if view is None:
        raise InvalidRequest(f"the {kind} view ({name}) is not available in this installation")
    return view


def build_keyword(config: Any, ledger: Any) -> Any:
    return _view_set_kind("keyword", config, ledger)


def build_graph(config: Any, ledger: Any) -> Any:
    return _view_set_kind("graph", config, ledger)


def build_vector(config: Any, ledger: Any) -> Any:
    return _view_set_kind("vector", config, ledger)


def known_views(config: Any) -> dict[str, str]:
    """View name -> ``module:function`` for this configuration."""
    out = dict(BUILTIN_VIEWS)
    extra = config.section("consumers").get("views", {})
    if not isinstance(extra, dict):
        raise InvalidRequest("[consumers.views] must be a table of tables")
    for name, spec in extra.items():
        if not isinstance(spec, dict) or not isinstance(spec.get("factory"), str) or ":" not in spec["factory"]:
            raise InvalidRequest(f'[consumers.views.{name}] needs factory = "module:function"')
        out[name] = spec["factory"]
    return out


def build_view(name: str, config: Any, ledger: Any) -> Any:
    """Build the projection called ``name``."""
    views = known_views(config)
    if name not in views:
        raise InvalidRequest(f"unknown view {name!r}; known: {', '.join(sorted(views))}")
    return resolve(views[name], f"view {name!r}")(config, ledger)
