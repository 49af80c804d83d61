"""The embedded graph view: entities and relations between memories, temporal, in SQLite.

Nodes are memories (their versions, as in every view) and entities extracted from their text
(``projections.text_analysis.entities``). Relations:

* co-mention: two memories whose versions current at the offset mention the same entity;
  rare entities weigh more (``1 / ln(1 + df)``), entities mentioned by more than
  ``max_entity_df`` memories are too common to relate anything and are skipped;
* explicit links: ``memory.linked`` events (directed, with a relation name and weight);
* merges: ``memory.merged`` relates the new memory to each of its sources.

``neighbours`` expands a set of memories by these relations as of any offset, which is how
hybrid retrieval adds context the keyword and vector views miss.
"""

from __future__ import annotations

import math
import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ledger import events as ev
from ledger.errors import present
from ledger.events import Event
from ledger.memory_state import MemoryState, Opener
from projections.base import OPEN, Hit
from projections.graph_walk import spread
from projections.temporal_store import Current, TemporalSqliteView, _chunks
from projections.text_analysis import entities

_DDL = """
CREATE TABLE IF NOT EXISTS entities(entity_id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS mentions(
  entity_id INTEGER NOT NULL, text_id INTEGER NOT NULL, PRIMARY KEY(entity_id, text_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS mentions_text ON mentions(text_id);
CREATE TABLE IF NOT EXISTS edges(
  src TEXT NOT NULL, dst TEXT NOT NULL, relation TEXT NOT NULL, weight REAL NOT NULL,
  cube TEXT NOT NULL, offset INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS edges_src ON edges(src, offset);
CREATE INDEX IF NOT EXISTS edges_dst ON edges(dst, offset);
"""

MERGE_RELATION = "merged_from"


class GraphView(TemporalSqliteView):
    """Temporal entity/relation graph over memories (``GraphSearch`` port)."""

    name = "graph"

    def __init__(self, path: str | Path, opener: Opener | None = None, max_entity_df: int = 50):
        self.max_entity_df = max_entity_df
        self._entity_ids: dict[str, int] = {}
        super().__init__(path, opener)

    def _ddl(self) -> str:
        return _DDL

    def reset(self) -> None:
        self._entity_ids.clear()
        super().reset()

    def apply_batch(self, events: Sequence[Event]) -> None:
        try:
            super().apply_batch(events)
        except BaseException:  # ids cached from a rolled-back transaction must not survive it
            self._entity_ids.clear()
            raise

    # -- indexing ------------------------------------------------------------------------
    def _entity_id(self, c: sqlite3.Connection, name: str) -> int:
        eid = self._entity_ids.get(name)
        if eid is None:
            row = c.execute("SELECT entity_id FROM entities WHERE name = ?", (name,)).fetchone()
            eid = row[0] if row else c.execute("INSERT INTO entities(name) VALUES (?)", (name,)).lastrowid
            eid = present(eid, "the id of a new entity row")
            self._entity_ids[name] = eid
        return eid

    def _index_text(self, c: sqlite3.Connection, text_id: int, s: MemoryState, text: str) -> None:
        self._buf_mentions += [(self._entity_id(c, n), text_id) for n in sorted(entities(text))]

    def _invalidate_caches(self) -> None:
        self._entity_ids.clear()

    def _discard_buffers(self) -> None:
        super()._discard_buffers()
        self._buf_mentions: list[tuple[int, int]] = []

    def _flush_extra(self, c: sqlite3.Connection) -> None:
        if self._buf_mentions:
            c.executemany("INSERT OR IGNORE INTO mentions(entity_id, text_id) VALUES (?,?)", self._buf_mentions)

    def _on_version(self, c: sqlite3.Connection, cur: Current, prev: Current | None, e: Event) -> None:
        s = cur.state
        if e.type == ev.MEMORY_MERGED and s.memory_id == e.payload["memory_id"] and prev is None:
            c.executemany(
                "INSERT INTO edges(src, dst, relation, weight, cube, offset) VALUES (?,?,?,?,?,?)",
                [(s.memory_id, src, MERGE_RELATION, 1.0, e.stream, e.offset) for src in e.payload["sources"]],
            )

    def _on_other_event(self, c: sqlite3.Connection, e: Event) -> None:
        if e.type == ev.MEMORY_LINKED:
            p = e.payload
            c.execute(
                "INSERT INTO edges(src, dst, relation, weight, cube, offset) VALUES (?,?,?,?,?,?)",
                (p["source"], p["target"], p["relation"], float(p.get("weight", 1.0)), e.stream, e.offset),
            )

    def _purge_texts(self, c: sqlite3.Connection, text_ids: list[int], memory_ids: list[str]) -> None:
        entity_ids: set[int] = set()
        for chunk in _chunks(text_ids, 500):
            marks = ",".join("?" * len(chunk))
            entity_ids.update(
                r[0] for r in c.execute(f"SELECT entity_id FROM mentions WHERE text_id IN ({marks})", chunk)
            )
            c.execute(f"DELETE FROM mentions WHERE text_id IN ({marks})", chunk)
        for eid in entity_ids:  # an entity name only the purged texts mentioned is their text
            if c.execute("SELECT 1 FROM mentions WHERE entity_id = ? LIMIT 1", (eid,)).fetchone() is None:
                c.execute("DELETE FROM entities WHERE entity_id = ?", (eid,))
        for chunk in _chunks(memory_ids, 400):
            marks = ",".join("?" * len(chunk))
            c.execute(f"DELETE FROM edges WHERE src IN ({marks}) OR dst IN ({marks})", (*chunk, *chunk))
        self._entity_ids.clear()

    # -- queries -------------------------------------------------------------------------
    def entities_of(self, memory_id: str, as_of: int | None = None) -> list[str]:
        """Entity names mentioned by the memory's version current at ``as_of``."""
        at = OPEN - 1 if as_of is None else as_of
        rows = self.conn().execute(
            "SELECT e.name FROM versions v JOIN mentions m ON m.text_id = v.text_id JOIN entities e "
            "ON e.entity_id = m.entity_id WHERE v.memory_id = ? AND v.valid_from <= ? AND v.valid_to > ? "
            "ORDER BY e.name",
            (memory_id, at, at),
        )
        return [r[0] for r in rows]

    def entity_names(self, memory_ids: Sequence[str], as_of: int | None = None) -> dict[str, set[str]]:
        """Entity names mentioned by each memory's version current at ``as_of`` (one query per 400 ids)."""
        at = OPEN - 1 if as_of is None else as_of
        out: dict[str, set[str]] = defaultdict(set)
        for chunk in _chunks(list(dict.fromkeys(memory_ids)), 400):
            marks = ",".join("?" * len(chunk))
            for mid, name in self.conn().execute(
                "SELECT v.memory_id, e.name FROM versions v JOIN mentions m ON m.text_id = v.text_id "
                f"JOIN entities e ON e.entity_id = m.entity_id WHERE v.memory_id IN ({marks}) "
                "AND v.valid_from <= ? AND v.valid_to > ?",
                (*chunk, at, at),
            ):
                out[mid].add(name)
        return dict(out)

    def edges(
        self, memory_ids: Sequence[str], as_of: int | None = None, cubes: Sequence[str] | None = None
    ) -> list[tuple[str, str, str, float]]:
        """Explicit and merge edges ``(src, dst, relation, weight)`` touching ``memory_ids`` as of
        ``as_of``, both ends existing then (and in ``cubes`` when given)."""
        at = OPEN - 1 if as_of is None else as_of
        ids = list(dict.fromkeys(memory_ids))
        found: list[tuple[str, str, str, float]] = []
        for chunk in _chunks(ids, 400):
            marks = ",".join("?" * len(chunk))
            found += (
                self.conn()
                .execute(
                    f"SELECT src, dst, relation, weight FROM edges WHERE offset <= ? AND (src IN ({marks}) OR dst IN "
                    f"({marks}))",
                    (at, *chunk, *chunk),
                )
                .fetchall()
            )
        if not found:
            return []
        live = self.versions_at({x for e in found for x in e[:2]}, as_of)
        ok = {m for m, r in live.items() if r.exists and (cubes is None or r.cube in cubes)}
        return sorted({e for e in found if e[0] in ok and e[1] in ok})

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

        def states_of(ids: list[str]) -> dict[str, str]:
            return {m: r.state for m, r in self.versions_at(ids, as_of).items()}

        return spread(
            memory_ids, lambda frontier: self._one_hop(frontier, cubes, as_of), states_of, hops, limit, states
        )

    def _one_hop(self, seeds: Sequence[str], cubes: Sequence[str] | None, as_of: int | None) -> dict[str, float]:
        c = self.conn()
        at = OPEN - 1 if as_of is None else as_of
        cube_sql = "" if cubes is None else f" AND v.cube IN ({','.join('?' * len(cubes))})"
        cube_args: list[Any] = [] if cubes is None else list(cubes)
        out: dict[str, float] = defaultdict(float)
        seed_set = set(seeds)
        entity_ids: set[int] = set()
        for chunk in _chunks(list(seeds), 400):
            marks = ",".join("?" * len(chunk))
            entity_ids.update(
                r[0]
                for r in c.execute(
                    f"SELECT m.entity_id FROM versions v JOIN mentions m ON m.text_id = v.text_id WHERE v.memory_id IN "
                    f"({marks}) AND v.valid_from <= ? AND v.valid_to > ? AND v.exists_ = 1",
                    (*chunk, at, at),
                )
            )
        if entity_ids:
            members: dict[int, list[str]] = defaultdict(list)
            for chunk in _chunks(sorted(entity_ids), 400):
                marks = ",".join("?" * len(chunk))
                for eid, mid in c.execute(
                    f"SELECT m.entity_id, v.memory_id FROM mentions m JOIN versions v ON v.text_id = m.text_id "
                    f"WHERE m.entity_id IN ({marks}) AND v.valid_from <= ? AND v.valid_to > ? AND v.exists_ = 1"
                    f"{cube_sql}",
                    (*chunk, at, at, *cube_args),
                ):
                    members[eid].append(mid)
            for mids in members.values():
                if len(mids) > self.max_entity_df:
                    continue
                w = 1.0 / math.log(1.0 + len(mids))
                for mid in mids:
                    if mid not in seed_set:
                        out[mid] += w
        linked: dict[str, float] = defaultdict(float)
        for chunk in _chunks(list(seeds), 400):
            marks = ",".join("?" * len(chunk))
            for src, dst, weight in c.execute(
                f"SELECT src, dst, weight FROM edges WHERE offset <= ? AND (src IN ({marks}) OR dst IN ({marks}))",
                (at, *chunk, *chunk),
            ):
                for a, b in ((src, dst), (dst, src)):
                    if a in seed_set and b not in seed_set:
                        linked[b] += weight
        if linked:
            live = self.versions_at(list(linked), as_of)
            for mid, w in linked.items():
                row = live.get(mid)
                if row is not None and row.exists and (cubes is None or row.cube in cubes):
                    out[mid] += w
        return dict(out)
