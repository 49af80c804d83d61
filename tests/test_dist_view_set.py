"""Hybrid search with the distributed views chosen by configuration only (no code changes)."""

from __future__ import annotations

import pytest

from ledger.factory import open_ledger
from projections.es_views import ElasticsearchView
from projections.neo4j_graph import Neo4jGraphView
from projections.view_set import ViewSet
from tests.dist_env import endpoint, unique_name

pytestmark = pytest.mark.integration


@pytest.fixture
def data(tmp_path):
    es, bolt, pg = endpoint("elasticsearch"), endpoint("neo4j"), endpoint("postgres")
    d = tmp_path / "data"
    d.mkdir()
    (d / "memledger.toml").write_text(f"""
[log]
backend = "postgres"
dsn = "{pg}"
schema = "{unique_name("vs")}"

[views.vector]
adapter = "elasticsearch"
url = "{es}"
index_prefix = "{unique_name("vs").lower()}"
embedder = "hashing"

[views.graph]
adapter = "neo4j"
url = "{bolt}"
namespace = "{"Vs" + unique_name("g").replace("_", "")}"
""")
    return d


def test_search_runs_on_postgres_elasticsearch_and_neo4j_by_configuration(data):
    ledger = open_ledger(data)
    views = ViewSet.open(ledger)
    try:
        assert isinstance(views.views["vector"], ElasticsearchView)
        assert isinstance(views.views["graph"], Neo4jGraphView)
        a = ledger.add("trip", "Caroline booked flights to Lisbon for the offsite", "alice")
        b = ledger.add("trip", "Hotel near the Lisbon riverside is confirmed", "alice")
        ledger.add("trip", "Quarterly budget spreadsheet is due", "bob")
        ledger.link(a.id, b.id, "same_trip", "alice")
        before = ledger.head()
        ledger.update(a.id, "Caroline booked flights to Porto for the offsite", "alice")
        hits = views.search("flights to Lisbon", k=3)
        assert hits and hits[0].memory_id == b.id  # a no longer mentions Lisbon
        past = views.search("flights to Lisbon", k=3, as_of=before)
        assert past[0].memory_id == a.id and "vector" in past[0].signals
        assert views.status()["vector"] == views.status()["graph"] == ledger.head()
        assert views.views["graph"].edges([a.id]) == [(a.id, b.id, "same_trip", 1.0)]
        assert "lisbon" in views.views["graph"].entity_names([b.id])[b.id]
    finally:
        for v in views.views.values():
            v.reset()
        views.views["vector"].es.indices.delete(
            index=[views.views["vector"].versions_index, views.views["vector"].meta_index]
        )
        views.close()
        ledger.log.drop()
        ledger.log.close()
