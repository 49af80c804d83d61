"""Test helper: the Elasticsearch and Neo4j views of a consumer group on the real servers, as data
directory configuration and as probes that read what the group wrote (rows, checkpoints, search).

Each target is a data directory whose ``[consumers.group] partitioned_log`` hook opens PostgreSQL
partitions ``<schema>_p<k>`` and whose view settings name a fresh ``pviews`` index prefix or
Neo4j label namespace, so nothing collides with other tests.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from consumers.group_setup import partition_view_factory
from ledger import events as ev
from ledger.config import load_config
from ledger.events import NewEvent
from ledger.partitions.base import PartitionedLog
from ledger.schema_registry import SchemaRegistry
from projections.base import OPEN
from tests.group_partitions import ListPartitionedLog
from tests.group_scenarios import cubes_per_partition
from tests.log_contract import added

SHARED_ENTITY = "ottoline"  # named by the first memory of every partition (links them in the graph)


def write_config(data: Path, dsn: str, schema: str, partitions: int, es_url: str, neo4j_url: str) -> str:
    """``memledger.toml`` of a target; returns its suffix (index prefix ``pviews-<suffix>``, Neo4j labels
    ``Pviews<suffix>...``)."""
    suffix = uuid.uuid4().hex[:10]
    (data / "memledger.toml").write_text(
        f'[log]\nbackend = "postgres"\ndsn = "{dsn}"\nschema = "{schema}"\n\n'
        f'[consumers.group]\npartitioned_log = "tests.group_partitions:from_config"\npartitions = {partitions}\n\n'
        f'[views.elasticsearch]\nurl = "{es_url}"\nindex_prefix = "pviews-{suffix}"\nembedder = "hashing"\n\n'
        f'[views.neo4j]\nurl = "{neo4j_url}"\nnamespace = "Pviews{suffix}"\n'
    )
    return suffix


def handle() -> Any:
    """What the view factories need of a ledger in a group: the registry and the key opener."""
    return SimpleNamespace(registry=SchemaRegistry(), opener=None)


def write_memories(plog: ListPartitionedLog, per_partition: int, tag: str = "a") -> dict[str, int]:
    """``per_partition`` memories into every partition (batches of 5), then an update of every third;
    memory id -> its partition."""
    where: dict[str, int] = {}
    for k, (cube,) in cubes_per_partition(plog.count, per=1).items():
        mids = [f"mem_pv{tag}{k}x{i}" for i in range(per_partition)]
        where.update(dict.fromkeys(mids, k))
        texts = [
            f"we met Ottoline near the harbour in partition {k}" if i == 0 and tag == "a" else f"harbour note {i} p{k}"
            for i in range(per_partition)
        ]
        for start in range(0, per_partition, 5):
            batch = zip(mids[start : start + 5], texts[start : start + 5], strict=True)
            plog.append([added(cube, m, t) for m, t in batch])
        updates = [
            NewEvent(cube, ev.MEMORY_UPDATED, {"memory_id": m, "text": f"revised harbour note {i} p{k}"}, "alice")
            for i, m in enumerate(mids)
            if i % 3 == 2
        ]
        for start in range(0, len(updates), 5):
            plog.append(updates[start : start + 5])
    return where


def expected_versions(plog: PartitionedLog) -> dict[str, tuple[int, int]]:
    """A fresh fold of every partition: version id (``memory@valid_from``) -> (partition, valid_to)."""
    out: dict[str, tuple[int, int]] = {}
    for k in range(plog.count):
        current: dict[str, str] = {}
        for e in plog.partition(k).read():
            mid = e.payload.get("memory_id")
            if e.type not in (ev.MEMORY_ADDED, ev.MEMORY_UPDATED) or not isinstance(mid, str):
                continue
            if mid in current:
                out[current[mid]] = (k, e.offset)
            current[mid] = f"{mid}@{e.offset}"
            out[current[mid]] = (k, OPEN)
    return out


@dataclass
class Probe:
    """Reads one view of a target: each partition's instance (checkpoints) and the whole-log one (rows, search)."""

    view: str
    data: Path
    plog: PartitionedLog

    def __post_init__(self) -> None:
        self.config = load_config(self.data)
        make = partition_view_factory(self.view, self.config, handle(), self.plog)
        self.parts = [make(k) for k in range(self.plog.count)]
        from consumers.views import build_view

        self.whole = build_view(self.view, self.config, handle())

    def checkpoints(self) -> list[int]:
        return [v.checkpoint() for v in self.parts]

    def rows(self) -> list[tuple[str, int | None, int]]:
        """Every stored version: (version id, partition, valid_to)."""
        if self.view == "elasticsearch":
            es = self.whole
            es.es.indices.refresh(index=es.versions_index)
            return [
                (h["_id"], h["_source"].get("partition"), int(h["_source"]["valid_to"]))
                for h in es._scan({"match_all": {}})
            ]
        with self.whole._session() as s:
            return [
                (r["vid"], r["p"], int(r["to"]))
                for r in s.run(f"MATCH (v:{self.whole.V}) RETURN v.vid AS vid, v.partition AS p, v.valid_to AS to")
            ]

    def found(self, seed: str) -> set[str]:
        """Memories a query over the whole view finds: a keyword search for "harbour" (Elasticsearch), or
        ``seed`` and its graph neighbours (Neo4j)."""
        if self.view == "elasticsearch":
            return {m for m, _ in self.whole.keyword_search("harbour", 10_000)}
        return {seed} | {m for m, _ in self.whole.neighbours([seed], limit=100)}

    def close(self) -> None:
        for v in self.parts:
            v.close()
        self.whole.close()

    def drop(self) -> None:
        """Delete everything the target's view stored."""
        if self.view == "elasticsearch":
            es = self.whole
            for index in (es.versions_index, es.meta_index):
                es.es.options(ignore_status=404).indices.delete(index=index)
            return
        g = self.whole
        with g._session() as s:
            for label in (g.V, g.E, g.M, g.C):
                s.run(f"MATCH (n:{label}) DETACH DELETE n").consume()
