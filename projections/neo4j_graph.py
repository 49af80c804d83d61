"""Graph view on Neo4j (official ``neo4j`` driver, Cypher): entities and relations between memories.

Same relations and scores as the embedded graph view, kept temporal in the graph itself:

* ``(:<ns>Version {vid, memory_id, cube, state, subject, exists, valid_from, valid_to})`` — one
  node per memory version (``valid_to`` is ``OPEN`` while current);
* ``(:<ns>Version)-[:MENTIONS]->(:<ns>Entity {name})`` — entities named in that version's text;
* ``(:<ns>Memory {memory_id})-[:RELATED {relation, weight, offset, cube}]->(:<ns>Memory)`` —
  explicit ``memory.linked`` edges and ``memory.merged`` provenance, valid from ``offset`` on;
* ``(:<ns>Checkpoint {view})`` — the last applied offset.

``neighbours(as_of=N)`` only walks versions with ``valid_from <= N < valid_to`` and edges with
``offset <= N``. A batch's writes and its checkpoint are one Bolt transaction, so a crash
commits all of it or none (exactly once); the writes are also idempotent ``MERGE``s keyed by
deterministic ids, so even two consumers racing on one view cannot double anything.

Partitions (a consumer group): ``partition=k`` makes the instance the view of partition ``k``.
Its checkpoint is the node ``{view: "<name>.p<k>"}``, written in the batch's transaction as
above, and its version nodes and ``RELATED`` edges carry ``partition: k``. All partitions share
one graph (``Entity`` and ``Memory`` nodes are merged by name / id, so entities link memories of
different partitions); a query without ``as_of`` covers every partition. Offsets are
partition-local: an ``as_of`` query on a partition instance walks only its own partition, and
one on the whole-log instance is refused once the graph holds partitioned nodes. ``reset`` of a
partition instance deletes only its own versions, edges and checkpoint (shared entity and
memory nodes stay; queries reach them only through versions and edges).
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.parse import unquote, urlparse

import neo4j

from ledger import events as ev
from ledger.errors import InvalidRequest, unavailable_on
from ledger.events import Event
from ledger.memory_state import SCOPE_KEYS, Opener, erasure_of
from projections.base import OPEN, Hit
from projections.graph_walk import spread
from projections.text_analysis import entities
from projections.version_tracker import VersionTracker, version_id

MERGE_RELATION = "merged_from"
CONSTRAINT_RETRIES = 5  # a batch whose MERGE of a shared node raced another partition's is run again


def scope_list(metadata: dict[str, Any], key: str) -> list[str]:
    """A version node's scope property: the string ids of ``metadata[key]`` (a list; empty if none)."""
    v = metadata.get(key)
    return [x for x in (v if isinstance(v, list) else [v]) if isinstance(x, str)]


_NS = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,40}$")


def _default_entities() -> Callable[[str], set[str]]:
    return entities  # the embedded views' extractor, so both graph views link the same entities


def parse_bolt_url(url: str) -> tuple[str, tuple[str, str] | None, str | None]:
    """``bolt://user:password@host:port/database`` -> (uri without credentials, auth, database)."""
    u = urlparse(url)
    if u.scheme not in ("bolt", "neo4j", "bolt+s", "neo4j+s", "bolt+ssc", "neo4j+ssc"):
        raise InvalidRequest(f"not a Bolt URL: {url!r}")
    auth = (unquote(u.username), unquote(u.password or "")) if u.username else None
    database = u.path.strip("/") or None
    return f"{u.scheme}://{u.hostname}:{u.port or 7687}", auth, database


# an as-of query of a partition instance walks only its partition's versions and edges ($p null: all)
_OWN_V = " AND ($p IS NULL OR v.partition = $p)"
_OWN_O = " AND ($p IS NULL OR o.partition = $p)"
_OWN_X = " AND ($p IS NULL OR x.partition = $p)"

_UNREACHABLE = (neo4j.exceptions.DriverError, neo4j.exceptions.AuthError, OSError)
_WHERE = "the Neo4j graph view ({self.url_shown})"


class Neo4jGraphView:
    """Temporal entity/relation graph over memories on a Neo4j-protocol server (``GraphSearch``)."""

    def __init__(
        self,
        url: str,
        source: object,
        namespace: str = "Memledger",
        opener: Opener | None = None,
        max_entity_df: int = 50,
        entities: Callable[[str], set[str]] | None = None,
        name: str = "neo4j",
        driver: Any = None,
        partition: int | None = None,
    ):
        if partition is not None and (isinstance(partition, bool) or not isinstance(partition, int) or partition < 0):
            raise InvalidRequest(f"partition must be a non-negative integer, not {partition!r}")
        if not _NS.match(namespace):
            raise InvalidRequest(f"graph namespace {namespace!r} must match {_NS.pattern}")
        uri, auth, database = parse_bolt_url(url)
        self.url_shown = uri
        self.name = name
        self.partition = partition
        self.checkpoint_key = name if partition is None else f"{name}.p{partition}"
        self.database = database
        self.driver = driver or neo4j.GraphDatabase.driver(uri, auth=auth)
        self.max_entity_df = max_entity_df
        self.entities = entities or _default_entities()
        self.tracker = VersionTracker(source, opener)
        self.V, self.E, self.M, self.C = (
            f"{namespace}Version",
            f"{namespace}Entity",
            f"{namespace}Memory",
            f"{namespace}Checkpoint",
        )
        self._schema()

    def _session(self) -> Any:
        return self.driver.session(database=self.database) if self.database else self.driver.session()

    @unavailable_on(*_UNREACHABLE, what=_WHERE)
    def _schema(self) -> None:
        stmts = [
            f"CREATE CONSTRAINT IF NOT EXISTS FOR (n:{self.V}) REQUIRE n.vid IS UNIQUE",
            f"CREATE INDEX IF NOT EXISTS FOR (n:{self.V}) ON (n.memory_id)",
            f"CREATE INDEX IF NOT EXISTS FOR (n:{self.V}) ON (n.partition)",
            *(f"CREATE INDEX IF NOT EXISTS FOR (n:{self.V}) ON (n.{key})" for key in SCOPE_KEYS),
            f"CREATE CONSTRAINT IF NOT EXISTS FOR (n:{self.E}) REQUIRE n.name IS UNIQUE",
            f"CREATE CONSTRAINT IF NOT EXISTS FOR (n:{self.M}) REQUIRE n.memory_id IS UNIQUE",
        ]
        with self._session() as s:
            for stmt in stmts:
                s.run(stmt).consume()

    # -- Projection ------------------------------------------------------------------------
    @unavailable_on(*_UNREACHABLE, what=_WHERE)
    def checkpoint(self) -> int:
        with self._session() as s:
            rec = s.run(f"MATCH (c:{self.C} {{view: $v}}) RETURN c.offset AS o", v=self.checkpoint_key).single()
        return -1 if rec is None or rec["o"] is None else int(rec["o"])

    @unavailable_on(*_UNREACHABLE, what=_WHERE)
    def reset(self) -> None:
        """Drop the view; a partition instance deletes only its own versions, edges and checkpoint."""
        if self.partition is not None:
            with self._session() as s:
                s.execute_write(self._reset_partition)
            self.tracker.invalidate()
            return
        with self._session() as s:
            for label in (self.V, self.E, self.M, self.C):
                s.run(f"MATCH (n:{label}) DETACH DELETE n").consume()
        self.tracker.invalidate()

    def _reset_partition(self, tx: Any) -> None:
        p = self.partition
        tx.run(f"MATCH (c:{self.C} {{view: $v}}) DELETE c", v=self.checkpoint_key).consume()
        tx.run(f"MATCH (:{self.M})-[x:RELATED {{partition: $p}}]->(:{self.M}) DELETE x", p=p).consume()
        tx.run(f"MATCH (v:{self.V} {{partition: $p}}) DETACH DELETE v", p=p).consume()

    def close(self) -> None:
        self.driver.close()

    @unavailable_on(*_UNREACHABLE, what=_WHERE)
    def apply_batch(self, events: Sequence[Event]) -> None:
        cp = self.checkpoint()
        todo = [e for e in events if e.offset > cp]
        if not todo:
            return
        try:
            plan = self._plan(todo)
            with self._session() as s:
                for attempt in range(CONSTRAINT_RETRIES):
                    try:
                        s.execute_write(self._write, plan, todo[-1].offset)
                        break
                    except neo4j.exceptions.ConstraintError:
                        # another partition's writer created the same shared Entity / Memory node
                        # concurrently; this transaction was rolled back whole, so running it again is safe
                        if attempt == CONSTRAINT_RETRIES - 1:
                            raise
        except BaseException:
            self.tracker.invalidate()
            raise
        self.tracker.committed()

    def _plan(self, events: Sequence[Event]) -> dict[str, list[dict[str, Any]]]:
        versions: dict[str, dict[str, Any]] = {}
        closes: dict[str, int] = {}
        for ch in self.tracker.changes(events):
            if ch.closed_from is not None and ch.closed_from != ch.offset:
                closed = version_id(ch.memory_id, ch.closed_from)
                if closed in versions:
                    versions[closed]["valid_to"] = ch.offset
                else:
                    closes[closed] = ch.offset
            s = ch.state
            live = bool(s.exists and s.text and not s.forgotten)
            versions[version_id(s.memory_id, ch.offset)] = {
                "vid": version_id(s.memory_id, ch.offset),
                "memory_id": s.memory_id,
                "cube": s.cube,
                "state": s.state,
                "subject": s.subject,
                "exists": bool(s.exists),
                "valid_from": ch.offset,
                "valid_to": OPEN,
                "partition": self.partition,
                "entities": sorted(self.entities(s.text or "")) if live else [],
                **{k: scope_list(s.metadata, k) for k in SCOPE_KEYS},
            }
        rels: list[dict[str, Any]] = []
        forgotten: list[dict[str, Any]] = []
        for e in events:
            p = e.payload
            if e.type == ev.MEMORY_LINKED:
                rels.append(
                    {
                        "src": p["source"],
                        "dst": p["target"],
                        "relation": p["relation"],
                        "weight": float(p.get("weight", 1.0)),
                        "offset": e.offset,
                        "cube": e.stream,
                        "partition": self.partition,
                    }
                )
            elif e.type == ev.MEMORY_MERGED:
                rels += [
                    {
                        "src": p["memory_id"],
                        "dst": src,
                        "relation": MERGE_RELATION,
                        "weight": 1.0,
                        "offset": e.offset,
                        "cube": e.stream,
                        "partition": self.partition,
                    }
                    for src in p["sources"]
                ]
            elif (erasure := erasure_of(e)) is not None:
                forgotten.append(
                    {"subjects": list(erasure.subjects), "memory_ids": list(erasure.memory_ids), "before": e.offset}
                )
                for v in versions.values():
                    if v["valid_from"] < e.offset and (
                        v["subject"] in erasure.subjects or v["memory_id"] in erasure.memory_ids
                    ):
                        v["entities"] = []
        return {
            "versions": list(versions.values()),
            "closes": [{"vid": k, "to": v} for k, v in closes.items()],
            "rels": rels,
            "forgotten": forgotten,
        }

    def _write(self, tx: Any, plan: dict[str, list[Any]], last: int) -> None:
        if plan["versions"]:
            tx.run(
                f"UNWIND $rows AS r MERGE (v:{self.V} {{vid: r.vid}}) "
                "SET v.memory_id = r.memory_id, v.cube = r.cube, v.state = r.state, v.subject = r.subject, "
                "v.exists = r.exists, v.valid_from = r.valid_from, v.valid_to = r.valid_to, "
                "v.user_id = r.user_id, v.agent_id = r.agent_id, v.run_id = r.run_id, v.partition = r.partition",
                rows=plan["versions"],
            ).consume()
            mentions = [{"vid": v["vid"], "name": n} for v in plan["versions"] for n in v["entities"]]
            if mentions:
                tx.run(
                    f"UNWIND $rows AS r MERGE (e:{self.E} {{name: r.name}}) WITH e, r "
                    f"MATCH (v:{self.V} {{vid: r.vid}}) MERGE (v)-[:MENTIONS]->(e)",
                    rows=mentions,
                ).consume()
        if plan["closes"]:
            tx.run(
                f"UNWIND $rows AS r MATCH (v:{self.V} {{vid: r.vid}}) SET v.valid_to = r.to", rows=plan["closes"]
            ).consume()
        if plan["rels"]:
            tx.run(
                f"UNWIND $rows AS r MERGE (a:{self.M} {{memory_id: r.src}}) MERGE (b:{self.M} {{memory_id: r.dst}}) "
                "MERGE (a)-[x:RELATED {relation: r.relation, offset: r.offset}]->(b) "
                "SET x.weight = r.weight, x.cube = r.cube, x.partition = r.partition",
                rows=plan["rels"],
            ).consume()
        own = "" if self.partition is None else " AND v.partition = $p"  # offsets compare within a partition
        for erased in plan["forgotten"]:
            # crypto-shredding: the entity names came from text that no longer exists
            for subject in erased["subjects"]:
                tx.run(
                    f"MATCH (v:{self.V} {{subject: $s}})-[m:MENTIONS]->() WHERE v.valid_from < $before{own} DELETE m",
                    s=subject,
                    before=erased["before"],
                    p=self.partition,
                ).consume()
            if erased["memory_ids"]:
                tx.run(
                    f"UNWIND $ids AS id MATCH (v:{self.V} {{memory_id: id}})-[m:MENTIONS]->() "
                    f"WHERE v.valid_from < $before{own} DELETE m",
                    ids=erased["memory_ids"],
                    before=erased["before"],
                    p=self.partition,
                ).consume()
        tx.run(f"MERGE (c:{self.C} {{view: $v}}) SET c.offset = $o", v=self.checkpoint_key, o=last).consume()

    # -- queries ---------------------------------------------------------------------------
    def _when(self, s: Any, as_of: int | None) -> tuple[int, int | None]:
        """(offset bound, partition the query is restricted to): offsets are partition-local, so an
        ``as_of`` query walks one partition, and the whole-log instance refuses one over a partitioned graph."""
        if as_of is None:
            return OPEN - 1, None
        if self.partition is None:
            found = s.run(f"MATCH (v:{self.V}) WHERE v.partition IS NOT NULL RETURN 1 AS x LIMIT 1").single()
            if found is not None:
                raise InvalidRequest(
                    f"the graph {self.V} holds a partitioned ledger's rows: an as-of offset is partition-local, "
                    "query the partition's view instead"
                )
        return as_of, self.partition

    @unavailable_on(*_UNREACHABLE, what=_WHERE)
    def entities_of(self, memory_id: str, as_of: int | None = None) -> list[str]:
        """Entity names mentioned by the memory's version current at ``as_of``."""
        with self._session() as s:
            at, p = self._when(s, as_of)
            rows = s.run(
                f"MATCH (v:{self.V} {{memory_id: $m}})-[:MENTIONS]->(e:{self.E}) "
                f"WHERE v.valid_from <= $at AND v.valid_to > $at{_OWN_V} RETURN e.name AS n",
                m=memory_id,
                at=at,
                p=p,
            )
            return sorted(r["n"] for r in rows)

    @unavailable_on(*_UNREACHABLE, what=_WHERE)
    def entity_names(self, memory_ids: Sequence[str], as_of: int | None = None) -> dict[str, set[str]]:
        """Entity names mentioned by each memory's version current at ``as_of``."""
        out: dict[str, set[str]] = defaultdict(set)
        with self._session() as s:
            at, p = self._when(s, as_of)
            for r in s.run(
                f"MATCH (v:{self.V})-[:MENTIONS]->(e:{self.E}) WHERE v.memory_id IN $ids "
                f"AND v.valid_from <= $at AND v.valid_to > $at{_OWN_V} RETURN v.memory_id AS m, e.name AS n",
                ids=list(dict.fromkeys(memory_ids)),
                at=at,
                p=p,
            ):
                out[r["m"]].add(r["n"])
        return dict(out)

    @unavailable_on(*_UNREACHABLE, what=_WHERE)
    def edges(
        self, memory_ids: Sequence[str], as_of: int | None = None, cubes: Sequence[str] | None = None
    ) -> list[tuple[str, str, str, float]]:
        """Explicit and merge edges ``(src, dst, relation, weight)`` touching ``memory_ids`` as of
        ``as_of``, both ends existing then (and in ``cubes`` when given)."""
        with self._session() as s:
            at, p = self._when(s, as_of)
            found = {
                (r["a"], r["b"], r["rel"], float(r["w"]))
                for r in s.run(
                    f"MATCH (a:{self.M})-[x:RELATED]->(b:{self.M}) WHERE (a.memory_id IN $ids OR b.memory_id IN $ids) "
                    f"AND x.offset <= $at{_OWN_X} "
                    "RETURN a.memory_id AS a, b.memory_id AS b, x.relation AS rel, x.weight AS w",
                    ids=list(dict.fromkeys(memory_ids)),
                    at=at,
                    p=p,
                )
            }
            if not found:
                return []
            live = self._live(s, sorted({x for e in found for x in e[:2]}), at, p)
        ok = {m for m, (cube, _) in live.items() if cubes is None or cube in cubes}
        return sorted(e for e in found if e[0] in ok and e[1] in ok)

    @unavailable_on(*_UNREACHABLE, what=_WHERE)
    def neighbours(
        self,
        memory_ids: Sequence[str],
        cubes: Sequence[str] | None = None,
        as_of: int | None = None,
        hops: int = 1,
        limit: int = 50,
        states: Iterable[str] | None = None,
    ) -> list[Hit]:
        """Memories related to ``memory_ids`` as of ``as_of``, strongest first (seeds excluded)."""
        with self._session() as s:
            at, p = self._when(s, as_of)
            return spread(
                memory_ids,
                lambda frontier: self._one_hop(s, frontier, cubes, at, p),
                lambda ids: {m: state for m, (_, state) in self._live(s, ids, at, p).items()},
                hops,
                limit,
                states,
            )

    def _live(self, s: Any, ids: list[str], at: int, p: int | None) -> dict[str, tuple[str, str]]:
        """memory_id -> (cube, state) of versions that exist at offset ``at`` (of partition ``p``, if given)."""
        rows = s.run(
            f"MATCH (v:{self.V}) WHERE v.memory_id IN $ids AND v.valid_from <= $at AND v.valid_to > $at{_OWN_V} "
            "AND v.exists = true RETURN v.memory_id AS m, v.cube AS c, v.state AS st",
            ids=ids,
            at=at,
            p=p,
        )
        return {r["m"]: (r["c"], r["st"]) for r in rows}

    def _one_hop(self, s: Any, seeds: Sequence[str], cubes: Sequence[str] | None, at: int, p: int | None) -> dict:
        seed_set = set(seeds)
        out: dict[str, float] = defaultdict(float)
        cube_clause = "" if cubes is None else " AND o.cube IN $cubes"
        rows = s.run(
            f"MATCH (v:{self.V})-[:MENTIONS]->(e:{self.E}) WHERE v.memory_id IN $seeds AND v.valid_from <= $at "
            f"AND v.valid_to > $at AND v.exists = true{_OWN_V} WITH DISTINCT e "
            f"MATCH (e)<-[:MENTIONS]-(o:{self.V}) WHERE o.valid_from <= $at AND o.valid_to > $at AND o.exists = true"
            f"{_OWN_O}{cube_clause} RETURN e.name AS name, collect(DISTINCT o.memory_id) AS members",
            seeds=list(seeds),
            at=at,
            p=p,
            cubes=list(cubes or []),
        )
        for r in rows:
            members = [m for m in r["members"]]
            if len(members) > self.max_entity_df:
                continue
            w = 1.0 / math.log(1.0 + len(members))
            for mid in members:
                if mid not in seed_set:
                    out[mid] += w
        linked: dict[str, float] = defaultdict(float)
        for r in s.run(
            f"MATCH (a:{self.M})-[x:RELATED]-(b:{self.M}) WHERE a.memory_id IN $seeds AND x.offset <= $at{_OWN_X} "
            "RETURN a.memory_id AS a, b.memory_id AS b, x.weight AS w",
            seeds=list(seeds),
            at=at,
            p=p,
        ):
            if r["b"] not in seed_set:
                linked[r["b"]] += float(r["w"])
        if linked:
            live = self._live(s, list(linked), at, p)
            for mid, w in linked.items():
                row = live.get(mid)
                if row is not None and (cubes is None or row[0] in cubes):
                    out[mid] += w
        return dict(out)


def from_options(
    options: dict[str, Any], source: object, opener: Opener | None = None, partition: int | None = None
) -> Neo4jGraphView:
    """Build the view from adapter options: ``url`` (or ``$MEMLEDGER_NEO4J``), ``namespace``, ``max_entity_df``."""
    import os

    url = os.environ.get("MEMLEDGER_NEO4J") or options.get("url")
    if not url:
        raise InvalidRequest(
            'the neo4j view needs url = "bolt://user:password@host:7687/db" in [views.graph] '
            '(with adapter = "neo4j") or $MEMLEDGER_NEO4J'
        )
    return Neo4jGraphView(
        str(url),
        source,
        namespace=str(options.get("namespace", "Memledger")),
        opener=opener,
        max_entity_df=int(options.get("max_entity_df", 50)),
        partition=partition,
    )


def from_config(config: Any, source: object, partition: int | None = None) -> Neo4jGraphView:
    """The view configured in ``memledger.toml`` (``[views.graph] adapter = "neo4j"`` or ``[views.neo4j]``);
    ``partition``: the view of that partition, ``source`` then being a handle on the partition's log."""
    from projections.es_views import adapter_options

    return from_options(adapter_options(config, "neo4j"), source, getattr(source, "opener", None), partition)


def from_view_set(ledger: Any, views_dir: Any, options: dict[str, Any]) -> Neo4jGraphView:
    """``projections.view_set`` adapter for ``[views.graph] adapter = "neo4j"``."""
    from projections.es_views import adapter_options

    opts = options or adapter_options(ledger.config, "neo4j")
    return from_options(opts, ledger, opener=ledger.opener)
