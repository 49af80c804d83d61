"""The built-in Elasticsearch and Neo4j factories in a consumer group: a partition's instance is given
its partition's own log, and refuses to fold prior states from anything else (no server needed)."""

from __future__ import annotations

import pytest

from consumers.group_setup import partition_view_factory
from consumers.views import build_elasticsearch, build_neo4j, partition_source
from ledger.config import load_config
from ledger.errors import InvalidRequest
from projections.version_tracker import LogSource
from tests.group_views import handle


@pytest.mark.parametrize("view", ["elasticsearch", "neo4j"])
def test_a_group_of_a_log_reading_view_needs_the_partitioned_log(tmp_path, view):
    with pytest.raises(InvalidRequest, match="pass the partitioned log"):
        partition_view_factory(view, load_config(tmp_path), handle(), None)


@pytest.mark.parametrize("build", [build_elasticsearch, build_neo4j])
def test_a_partition_instance_without_its_log_is_refused_before_any_server(tmp_path, build):
    with pytest.raises(InvalidRequest, match="partition 2 needs that partition's log"):
        build(load_config(tmp_path), handle(), partition=2)


def test_a_partition_instance_folds_from_its_partition_log_with_the_ledgers_keys():
    ledger, log = handle(), object()
    source = partition_source(ledger, 3, log)
    assert isinstance(source, LogSource) and source.log is log and source.registry is ledger.registry
    assert partition_source(ledger, None, log) is ledger  # the single log: the ledger itself
