"""Lineage: which memories a memory was derived from, and which were derived from it.

Every derived memory records its sources in the event that wrote it: ``sources`` (a merge, manual
or by the scheduler) or ``derived_from`` (a chat answer, an extracted fact), with the offsets it
read them at. Both fields are in the log's ref index, so ``read_refs(source)`` finds every event
derived from ``source``; lineage needs nothing but the log.

Governance follows these edges: a derived memory is sealed under its sources' keys and inherits
their scope (``ledger.memory_state.merged_metadata``); erasing or forgetting a source makes every
descendant unreadable (``ledger.governance.erase``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ledger import events as ev
from ledger.api import Ledger
from ledger.errors import InvalidRequest, NotFound
from ledger.events import Event
from ledger.memory_state import CONTENT_EVENTS

MAX_DEPTH = 50
MAX_NODES = 10_000
WRITES = frozenset({ev.MEMORY_ADDED, ev.MEMORY_MERGED, ev.MESSAGE_ADDED})  # an ingested message is a root


@dataclass(frozen=True, slots=True)
class Edge:
    """``child`` was derived from ``parent`` by the event at ``offset`` (a merge or a derivation)."""

    parent: str
    child: str
    relation: str  # "merged" | "derived"
    offset: int
    cube: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "parent": self.parent,
            "child": self.child,
            "relation": self.relation,
            "offset": self.offset,
            "cube": self.cube,
        }


def _parents_in(e: Event) -> list[tuple[str, str]]:
    p = e.payload
    out = [(s, "merged") for s in p.get("sources", []) if isinstance(s, str)]
    out += [(s, "derived") for s in p.get("derived_from", []) if isinstance(s, str) and s not in p.get("sources", [])]
    return out


def parent_edges(ledger: Ledger, memory_id: str, end: int | None = None) -> list[Edge]:
    """The edges from the memories ``memory_id``'s content was derived from (any version)."""
    out: dict[tuple[str, str], Edge] = {}
    for e in ledger.log.read_refs(memory_id, end):
        if e.type in CONTENT_EVENTS and e.payload.get("memory_id") == memory_id:
            for parent, rel in _parents_in(e):
                out.setdefault((parent, rel), Edge(parent, memory_id, rel, e.offset, e.stream))
    return list(out.values())


def child_edges(ledger: Ledger, memory_id: str, end: int | None = None) -> list[Edge]:
    """The edges to the memories derived from ``memory_id``."""
    out: dict[str, Edge] = {}
    for e in ledger.log.read_refs(memory_id, end):
        child = e.payload.get("memory_id")
        if e.type not in CONTENT_EVENTS or not isinstance(child, str) or child == memory_id:
            continue
        for parent, rel in _parents_in(e):
            if parent == memory_id:
                out.setdefault(child, Edge(memory_id, child, rel, e.offset, e.stream))
    return list(out.values())


def _walk(ledger: Ledger, start: Iterable[str], up: bool, end: int | None, depth: int) -> tuple[list[Edge], bool]:
    """Breadth-first over parent (``up``) or child edges; (edges, truncated)."""
    seen: set[str] = set(start)
    frontier = list(start)
    edges: list[Edge] = []
    for _ in range(depth):
        nxt: list[str] = []
        for mid in frontier:
            for edge in parent_edges(ledger, mid, end) if up else child_edges(ledger, mid, end):
                edges.append(edge)
                other = edge.parent if up else edge.child
                if other not in seen:
                    seen.add(other)
                    nxt.append(other)
                if len(seen) > MAX_NODES:
                    return edges, True
        if not nxt:
            return edges, False
        frontier = nxt
    return edges, bool(frontier)


def descendants(ledger: Ledger, memory_ids: Iterable[str], end: int | None = None) -> list[str]:
    """Every memory derived, directly or not, from any of ``memory_ids`` (not including them)."""
    roots = list(dict.fromkeys(memory_ids))
    edges, truncated = _walk(ledger, roots, False, end, MAX_DEPTH)
    if truncated:
        raise InvalidRequest(
            f"the lineage of {', '.join(roots[:3])} is deeper than {MAX_DEPTH} or wider than {MAX_NODES} memories"
        )
    out = dict.fromkeys(e.child for e in edges)
    for r in roots:
        out.pop(r, None)
    return list(out)


@dataclass
class Lineage:
    """A memory's sources (ancestors) and descendants, with the derived artifacts outside the log."""

    memory_id: str
    as_of: int
    sources: list[Edge] = field(default_factory=list)
    descendants: list[Edge] = field(default_factory=list)
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    truncated: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "memory_id": self.memory_id,
            "as_of": self.as_of,
            "sources": [e.to_dict() for e in self.sources],
            "descendants": [e.to_dict() for e in self.descendants],
            "artifacts": self.artifacts,
            "truncated": self.truncated,
        }


def lineage(ledger: Ledger, memory_id: str, as_of: int | str | None = None, depth: int = 10) -> Lineage:
    """The lineage of ``memory_id`` as of an offset: ancestors and descendants up to ``depth`` hops,
    and the artifacts derived from it outside the log (embeddings, KV caches) that the data
    directory's erasure participants know of."""
    if not isinstance(depth, int) or isinstance(depth, bool) or not 1 <= depth <= MAX_DEPTH:
        raise InvalidRequest(f"depth must be an integer from 1 to {MAX_DEPTH}")
    end = ledger.resolve_as_of(as_of)
    if not any(
        e.type in WRITES and memory_id in (e.payload.get("memory_id"), e.payload.get("message_id"))
        for e in ledger.log.read_refs(memory_id, end)
    ):
        raise NotFound(f"memory {memory_id} not found" + ("" if as_of is None else f" as of offset {end}"))
    up, cut_up = _walk(ledger, [memory_id], True, end, depth)
    down, cut_down = _walk(ledger, [memory_id], False, end, depth)
    out = Lineage(memory_id, end, up, down, truncated=cut_up or cut_down)
    config = ledger.config
    if as_of is None and config is not None:
        for part in ledger.participants_for_erasure(config.data_dir):
            out.artifacts += part.artifacts([memory_id])
    return out
