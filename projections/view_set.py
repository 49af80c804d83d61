"""``ViewSet``: every configured view of a data directory, kept caught up with the log.

Views live under ``<data>/views/`` (one file or folder per view) and are chosen by name in the
``[views]`` table of ``memledger.toml``::

    [views]
    keyword = "embedded"     # the temporal BM25 view (required: it is also the record view)
    graph = "embedded"       # embedded | none
    vector = "embedded"      # embedded | none  (needs an embedder)

Other adapters register with :func:`register_view_adapter`. Before a query the set catches
every view up from the log, so a search always sees every committed event.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ledger import events as ev
from ledger.api import Ledger
from ledger.errors import InvalidRequest
from ledger.events import NewEvent
from ledger.memory_state import MemoryState
from projections.base import Projection, catch_up, rebuild
from projections.graph_view import GraphView
from projections.retrieval import FusionWeights, Retriever, SearchHit
from projections.text_view import KeywordView

# (kind, adapter name) -> "module:function" taking (ledger, views_dir, options) and returning a view
VIEW_ADAPTERS: dict[tuple[str, str], str] = {
    ("keyword", "embedded"): "projections.view_set:_embedded_keyword",
    ("graph", "embedded"): "projections.view_set:_embedded_graph",
    ("vector", "embedded"): "projections.view_set:_embedded_vector",
    ("vector", "elasticsearch"): "projections.es_views:from_view_set",
    ("graph", "neo4j"): "projections.neo4j_graph:from_view_set",
}
DEFAULTS = {"keyword": "embedded", "graph": "embedded", "vector": "embedded"}
ORDER = ("keyword", "graph", "vector")


def register_view_adapter(kind: str, name: str, target: str) -> None:
    """Register a view adapter factory ``"module:function"`` for ``kind`` under ``name``."""
    VIEW_ADAPTERS[(kind, name)] = target


def _embedded_keyword(ledger: Ledger, views_dir: Path, options: Mapping[str, Any]) -> KeywordView:
    return KeywordView(views_dir / "keyword.sqlite", opener=ledger.opener)


def _embedded_graph(ledger: Ledger, views_dir: Path, options: Mapping[str, Any]) -> GraphView:
    return GraphView(views_dir / "graph.sqlite", opener=ledger.opener,
                     max_entity_df=int(options.get("max_entity_df", 50)))


def _embedded_vector(ledger: Ledger, views_dir: Path, options: Mapping[str, Any]) -> Any:
    from projections.vector_setup import open_vector_view

    return open_vector_view(views_dir.parent, getattr(ledger, "config", None), opener=ledger.opener)


class ViewSet:
    """The views of one ledger: catch-up, rebuild and hybrid search."""

    def __init__(self, ledger: Ledger, views: Mapping[str, Any], weights: FusionWeights | None = None,
                 embed_query: Callable[[str], Sequence[float]] | None = None,
                 embed_texts: Callable[[Sequence[str]], Sequence[Sequence[float]]] | None = None):
        if not isinstance(views.get("keyword"), KeywordView):
            raise InvalidRequest("a view set needs the embedded keyword view (it holds the memory records)")
        self.ledger = ledger
        self.views: dict[str, Projection] = {k: v for k, v in views.items() if v is not None}
        vector = self.views.get("vector")
        if vector is not None and embed_query is None:
            embed_query = getattr(vector, "embed_query", None)
            embed_texts = embed_texts or getattr(vector, "embed_texts", None)
        self.retriever = Retriever(self.views["keyword"], vector, self.views.get("graph"),  # type: ignore[arg-type]
                                   embed_query=embed_query, embed_texts=embed_texts, weights=weights)

    @classmethod
    def open(cls, ledger: Ledger, data_dir: str | Path | None = None, kinds: Iterable[str] | None = None,
             weights: FusionWeights | None = None, **overrides: Any) -> ViewSet:
        """Open the views configured for ``data_dir`` (default: the ledger's data directory).

        ``kinds`` limits which views open (e.g. ``["keyword", "graph"]`` for a search without
        embeddings); ``overrides`` maps a kind to a view object to use instead of the adapter.
        """
        config = getattr(ledger, "config", None)
        base = Path(data_dir) if data_dir is not None else (config.data_dir if config is not None else None)
        if base is None:
            raise InvalidRequest("ViewSet.open needs a data directory")
        section: dict[str, Any] = config.section("views") if config is not None else {}
        wanted = set(kinds) if kinds is not None else set(ORDER)
        views: dict[str, Any] = {}
        for kind in ORDER:
            if kind in overrides:
                views[kind] = overrides[kind]
                continue
            if kind not in wanted:
                continue
            spec = section.get(kind, DEFAULTS[kind])
            name, options = (spec, {}) if isinstance(spec, str) else (spec.get("adapter", "embedded"), spec)
            if name == "none":
                if kind == "keyword":
                    raise InvalidRequest("[views] keyword cannot be 'none'")
                continue
            target = VIEW_ADAPTERS.get((kind, name))
            if target is None:
                known = sorted(n for k, n in VIEW_ADAPTERS if k == kind)
                raise InvalidRequest(f"unknown {kind} view adapter {name!r}; known: {', '.join(known)}, none")
            module, func = target.split(":")
            views[kind] = getattr(importlib.import_module(module), func)(ledger, base / "views", options)
        return cls(ledger, views, weights)

    # -- maintenance ---------------------------------------------------------------------
    def catch_up(self, to: int | None = None, progress: bool = False) -> dict[str, int]:
        """Apply every new event to every view; returns each view's checkpoint."""
        total = self.ledger.head() if progress else None
        return {name: catch_up(self.ledger.events, v, to=to, progress=progress, total=total)
                for name, v in self.views.items()}

    def rebuild(self, to: int | None = None, progress: bool = False,
                kinds: Iterable[str] | None = None) -> dict[str, int]:
        """Drop the views (all, or ``kinds``) and fold the log again from offset 0 (up to ``to``)."""
        head = self.ledger.head()
        if to is not None and (to < -1 or to > head):
            raise InvalidRequest(f"--to {to} is out of range (head is {head})")
        chosen = set(kinds) if kinds is not None else set(self.views)
        unknown = chosen - set(self.views)
        if unknown:
            raise InvalidRequest(f"no such view configured: {', '.join(sorted(unknown))}")
        total = head if to is None else to
        return {name: rebuild(self.ledger.events, v, to=to, progress=progress, total=total)
                for name, v in self.views.items() if name in chosen}

    def status(self) -> dict[str, int]:
        """Each view's checkpoint."""
        return {name: v.checkpoint() for name, v in self.views.items()}

    def close(self) -> None:
        for v in self.views.values():
            with contextlib.suppress(Exception):
                v.close()

    def __enter__(self) -> ViewSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- search --------------------------------------------------------------------------
    def search(self, query: str, cube: str | Sequence[str] | None = None, k: int = 10,
               as_of: int | str | None = None, states: Iterable[str] | None = None,
               metadata: Mapping[str, Any] | None = None, all_states: bool = False, actor: str | None = None,
               record_read: bool | None = None, overlay: Mapping[str, MemoryState | None] | None = None,
               branch: str | None = None) -> list[SearchHit]:
        """Hybrid search (see ``projections.retrieval``); records a ``memory.read`` per cube when
        an ``actor`` is given, as ``Ledger.get`` does."""
        if not isinstance(k, int) or isinstance(k, bool) or k < 1 or k > 1000:
            raise InvalidRequest(f"k must be an integer between 1 and 1000, not {k!r}")
        offset = None if as_of is None else self.ledger.resolve_as_of(as_of)
        self.catch_up()
        cubes = [cube] if isinstance(cube, str) else (list(cube) if cube is not None else None)
        hits = self.retriever.search(query, cubes, k, offset, states, metadata, all_states, overlay)
        self._provenance(hits)
        self._record(hits, cubes, query, actor, record_read, offset, branch)
        return hits

    def _provenance(self, hits: list[SearchHit]) -> None:
        for h in hits:
            h.event_ids = [e.event_id for o in h.memory.event_offsets for e in self.ledger.log.read(o, o)]

    def _record(self, hits: list[SearchHit], cubes: list[str] | None, query: str, actor: str | None,
                record_read: bool | None, as_of: int | None, branch: str | None) -> None:
        if record_read is False or (record_read is None and (not self.ledger.record_reads or actor is None)):
            return
        by_cube: dict[str, list[str]] = {c: [] for c in (cubes or [])}
        for h in hits:
            by_cube.setdefault(h.memory.cube, []).append(h.memory_id)
        batch = []
        for cube, ids in by_cube.items():
            if not self.ledger.cube_exists(cube):
                continue
            payload: dict[str, Any] = {"memory_ids": ids, "operation": "search", "query": query[:100_000],
                                       "as_of": as_of}
            if branch is not None:
                payload["branch"] = branch
            batch.append(NewEvent(cube, ev.MEMORY_READ, payload, actor or "anonymous"))
        if batch:
            self.ledger.log.append(batch)
