"""``ViewSet``: every configured view of a data directory, kept caught up with the log.

Views live under ``<data>/views/`` (one file or folder per view) and are chosen by name in the
``[views]`` table of ``memledger.toml``::

    [views]
    keyword = "embedded"     # the temporal BM25 view (required: it is also the record view)
    graph = "embedded"       # embedded | none
    vector = "embedded"      # embedded | none  (needs an embedder)

Other adapters register with :func:`register_view_adapter`. Before a query the set catches
every view up from the log, so a search always sees every committed event.

Views recover on their own (the log is the only source of truth): an embedded view file that
is not a database, is truncated or corrupt, or has another layout is deleted at open and
folded again; so is one found damaged later, when a query or catch-up hits the damage. A view
whose checkpoint is ahead of the log's head, or whose recorded hash at its checkpoint is not
the log's event there (the log was restored from an older copy), is reset and folded again.
Each repair is logged as a warning (``memledger`` logger) and listed in ``ViewSet.repairs``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from ledger import events as ev
from ledger.api import Ledger
from ledger.config import resolve
from ledger.errors import InvalidRequest
from ledger.events import NewEvent
from ledger.listing import Page
from ledger.memory_state import MemoryState
from ledger.rules.filters import Filter, conjunction, from_metadata_equality, parse_filter
from projections import view_health
from projections.base import GraphSearch, Projection, VectorSearch, catch_up, rebuild
from projections.graph_view import GraphView
from projections.retrieval import FusionWeights, Retriever, SearchHit
from projections.text_view import KeywordView
from projections.vector.view import VectorView

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
# the files of each embedded view under <data>/views (its database first): a damaged view loses them all
EMBEDDED_FILES = {
    "keyword": ("keyword.sqlite",),
    "graph": ("graph.sqlite",),
    "vector": ("vector.sqlite", "vector.sqlite.usearch", "vector.sqlite.usearch.json"),
}

log = logging.getLogger("memledger")
T = TypeVar("T")


def register_view_adapter(kind: str, name: str, target: str) -> None:
    """Register a view adapter factory ``"module:function"`` for ``kind`` under ``name``."""
    VIEW_ADAPTERS[(kind, name)] = target


def _embedded_keyword(ledger: Ledger, views_dir: Path, options: Mapping[str, Any]) -> KeywordView:
    return KeywordView(views_dir / "keyword.sqlite", opener=ledger.opener)


def _embedded_graph(ledger: Ledger, views_dir: Path, options: Mapping[str, Any]) -> GraphView:
    return GraphView(
        views_dir / "graph.sqlite", opener=ledger.opener, max_entity_df=int(options.get("max_entity_df", 50))
    )


def _embedded_vector(ledger: Ledger, views_dir: Path, options: Mapping[str, Any]) -> Any:
    from projections.vector.setup import open_vector_view

    return open_vector_view(views_dir.parent, ledger.config, opener=ledger.opener)


class ViewSet:
    """The views of one ledger: catch-up, rebuild and hybrid search."""

    def __init__(
        self,
        ledger: Ledger,
        views: Mapping[str, Any],
        weights: FusionWeights | None = None,
        embed_query: Callable[[str], Sequence[float]] | None = None,
        embed_texts: Callable[[Sequence[str]], Sequence[Sequence[float]]] | None = None,
    ):
        if not isinstance(views.get("keyword"), KeywordView):
            raise InvalidRequest("a view set needs the embedded keyword view (it holds the memory records)")
        self.ledger = ledger
        self.views: dict[str, Projection] = {k: v for k, v in views.items() if v is not None}
        self._weights, self._embed_query, self._embed_texts = weights, embed_query, embed_texts
        self.repairs: dict[str, str] = {}  # view (or "embedding_cache") -> why it was rebuilt or dropped
        self._reopen: dict[str, Callable[[], Any]] = {}  # embedded view -> a fresh view object on its files
        self._files: dict[str, list[Path]] = {}
        self._make_retriever()

    def _make_retriever(self) -> None:
        vector = self.views.get("vector")
        embed_query, embed_texts = self._embed_query, self._embed_texts
        if vector is not None and embed_query is None:
            embed_query = getattr(vector, "embed_query", None)
            embed_texts = embed_texts or getattr(vector, "embed_texts", None)
        keyword, graph = self.views["keyword"], self.views.get("graph")
        if not isinstance(keyword, KeywordView):
            raise InvalidRequest("a view set needs the embedded keyword view (it holds the memory records)")
        self.retriever = Retriever(
            keyword,
            vector if isinstance(vector, VectorSearch) else None,
            graph if isinstance(graph, GraphSearch) else None,
            embed_query=embed_query,
            embed_texts=embed_texts,
            weights=self._weights,
        )

    @classmethod
    def open(
        cls,
        ledger: Ledger,
        data_dir: str | Path | None = None,
        kinds: Iterable[str] | None = None,
        weights: FusionWeights | None = None,
        **overrides: Any,
    ) -> ViewSet:
        """Open the views configured for ``data_dir`` (default: the ledger's data directory).

        ``kinds`` limits which views open (e.g. ``["keyword", "graph"]`` for a search without
        embeddings); ``overrides`` maps a kind to a view object to use instead of the adapter.
        """
        config = ledger.config
        base = Path(data_dir) if data_dir is not None else (config.data_dir if config is not None else None)
        if base is None:
            raise InvalidRequest("ViewSet.open needs a data directory")
        section: dict[str, Any] = config.section("views") if config is not None else {}
        wanted = set(kinds) if kinds is not None else set(ORDER)
        views: dict[str, Any] = {}
        reopen: dict[str, Callable[[], Any]] = {}
        repairs: dict[str, str] = {}
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
            make = functools.partial(resolve(target, f"{kind} view adapter"), ledger, base / "views", options)
            if name != "embedded":
                views[kind] = make()
                continue
            reopen[kind] = make
            views[kind] = _open_embedded(kind, base / "views", make, repairs)
        vs = cls(ledger, views, weights)
        vs._reopen = reopen
        vs._files = {k: [base / "views" / f for f in EMBEDDED_FILES[k]] for k in reopen}
        for kind, problem in repairs.items():
            vs._repaired(kind, problem)
        for kind, v in vs.views.items():
            behind = vs._log_problem(v)
            if behind is not None:
                v.reset()
                vs._repaired(kind, behind)
        for kind in list(vs.repairs):
            if kind in vs.views:
                catch_up(ledger.events, vs.views[kind])  # rebuilt from the log right away
        return vs

    # -- recovery ------------------------------------------------------------------------
    def _repaired(self, kind: str, problem: str) -> None:
        self.repairs[kind] = problem
        if kind not in self.views:
            return  # the embedding cache warned about itself
        where = f" ({self._files[kind][0]})" if kind in self._files else ""
        log.warning("view %s%s is %s: rebuilding it from the log", kind, where, problem)

    def _log_problem(self, view: Any) -> str | None:
        """Why ``view`` cannot be caught up from the log as it is (None: it can)."""
        cp = view.checkpoint()  # before the head: a view never gets ahead of a log that only grows
        recorded = view.checkpoint_hash() if hasattr(view, "checkpoint_hash") else None
        head = self.ledger.head()
        if cp > head:
            return (
                f"ahead of the log (its checkpoint is offset {cp}, the log's head is {head}: "
                "the log was restored from an older copy?)"
            )
        if cp >= 0 and recorded is not None:
            event = next(iter(self.ledger.log.read(cp, cp)), None)
            if event is None or event.hash != recorded:
                return (
                    f"of another history (the log's event at its checkpoint {cp} is not the one it "
                    "folded: the log was replaced?)"
                )
        return None

    def check(self) -> dict[str, str]:
        """Check every embedded view file in depth (``PRAGMA quick_check``; cost grows with the file),
        rebuild the damaged ones from the log, and return ``repairs``."""
        self._repair_damaged()
        return self.repairs

    def _guard(self, op: Callable[[], T]) -> T:
        """Run ``op``; if it hits a damaged view file, repair what is damaged and run it once more."""
        try:
            return op()
        except sqlite3.DatabaseError as exc:
            if not view_health.is_damage(exc) or not self._repair_damaged():
                raise
            return op()

    def _repair_damaged(self) -> bool:
        """Check every embedded view's files in depth; replace and refold the damaged ones."""
        found = False
        for kind, files in self._files.items():
            problem = view_health.deep_problem(files[0])
            if problem is None and kind == "vector":
                problem = view_health.schema_problem(files[0], _vector_schema())
            if problem is None:
                continue
            with contextlib.suppress(Exception):
                self.views[kind].close()
            view_health.discard(files)
            self.views[kind] = self._reopen[kind]()
            self._repaired(kind, problem)
            catch_up(self.ledger.events, self.views[kind])
            found = True
        cache = getattr(self.views.get("vector"), "cache", None)
        if cache is not None and hasattr(cache, "check"):
            problem = cache.check()
            if problem is not None:
                self.repairs["embedding_cache"] = f"{problem}: dropped (it is only a cache)"
                found = True
        if found:
            self._make_retriever()
        return found

    # -- maintenance ---------------------------------------------------------------------
    def catch_up(self, to: int | None = None, progress: bool = False) -> dict[str, int]:
        """Apply every new event to every view; returns each view's checkpoint."""
        total = self.ledger.head() if progress else None
        return self._guard(
            lambda: {
                name: catch_up(self.ledger.events, v, to=to, progress=progress, total=total)
                for name, v in self.views.items()
            }
        )

    def rebuild(
        self, to: int | None = None, progress: bool = False, kinds: Iterable[str] | None = None
    ) -> dict[str, int]:
        """Drop the views (all, or ``kinds``) and fold the log again from offset 0 (up to ``to``)."""
        head = self.ledger.head()
        if to is not None and (to < -1 or to > head):
            raise InvalidRequest(f"--to {to} is out of range (head is {head})")
        chosen = set(kinds) if kinds is not None else set(self.views)
        unknown = chosen - set(self.views)
        if unknown:
            raise InvalidRequest(f"no such view configured: {', '.join(sorted(unknown))}")
        total = head if to is None else to
        return self._guard(
            lambda: {
                name: rebuild(self.ledger.events, v, to=to, progress=progress, total=total)
                for name, v in self.views.items()
                if name in chosen
            }
        )

    def status(self) -> dict[str, int]:
        """Each view's checkpoint."""
        return self._guard(lambda: {name: v.checkpoint() for name, v in self.views.items()})

    def close(self) -> None:
        for v in self.views.values():
            with contextlib.suppress(Exception):
                v.close()

    def __enter__(self) -> ViewSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- search --------------------------------------------------------------------------
    def search(
        self,
        query: str,
        cube: str | Sequence[str] | None = None,
        k: int = 10,
        as_of: int | str | None = None,
        states: Iterable[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        all_states: bool = False,
        actor: str | None = None,
        record_read: bool | None = None,
        overlay: Mapping[str, MemoryState | None] | None = None,
        branch: str | None = None,
        where: dict[str, Any] | None = None,
        min_score: float | None = None,
    ) -> list[SearchHit]:
        """Hybrid search (see ``projections.retrieval``); records a ``memory.read`` per cube when
        an ``actor`` is given, as ``Ledger.get`` does.

        ``where`` is a filter of ``ledger.rules.filters`` (applied inside the views, before
        ranking); ``metadata`` is the older equality-only form (``{"k": v}`` means
        ``{"metadata.k": v}``), combined with ``where`` by and. ``min_score`` drops hits whose
        fused score is lower (see ``SearchHit.score`` in docs/projections.md for its scale)."""
        if not isinstance(k, int) or isinstance(k, bool) or k < 1 or k > 1000:
            raise InvalidRequest(f"k must be an integer between 1 and 1000, not {k!r}")
        flt = conjunction(parse_filter(where, "where"), parse_filter(from_metadata_equality(metadata), "metadata"))
        min_score = check_min_score(min_score)
        offset = None if as_of is None else self.ledger.resolve_as_of(as_of)
        cubes = [cube] if isinstance(cube, str) else (list(cube) if cube is not None else None)

        def run() -> list[SearchHit]:
            self.catch_up()
            return self.retriever.search(query, cubes, k, offset, states, flt, all_states, overlay, min_score=min_score)

        hits = self._guard(run)
        self._provenance(hits)
        self._record(hits, cubes, query, actor, record_read, offset, branch)
        return hits

    def list_memories(
        self,
        cube: str,
        where: dict[str, Any] | None = None,
        as_of: int | str | None = None,
        limit: int = 100,
        after: str | None = None,
        actor: str | None = None,
        record_read: bool | None = None,
    ) -> Page:
        """``Ledger.list_memories`` answered by the record (keyword) view, caught up first: the
        filter's scope pins go through the view's scope index instead of a fold of the cube."""
        keyword = self.views["keyword"]
        if not isinstance(keyword, KeywordView):
            raise InvalidRequest("a view set needs the embedded keyword view (it holds the memory records)")

        def states_at(c: str, end: int, flt: Filter) -> list[MemoryState]:
            self.catch_up(to=None)
            return self._guard(lambda: keyword.matching_states(flt, end, [c]))

        return self.ledger.list_memories(cube, where, as_of, limit, after, actor, record_read, states_at=states_at)

    def _provenance(self, hits: list[SearchHit]) -> None:
        for h in hits:
            h.event_ids = [e.event_id for o in h.memory.event_offsets for e in self.ledger.log.read(o, o)]

    def _record(
        self,
        hits: list[SearchHit],
        cubes: list[str] | None,
        query: str,
        actor: str | None,
        record_read: bool | None,
        as_of: int | None,
        branch: str | None,
    ) -> None:
        if record_read is False or (record_read is None and (not self.ledger.record_reads or actor is None)):
            return
        by_cube: dict[str, list[str]] = {c: [] for c in (cubes or [])}
        for h in hits:
            by_cube.setdefault(h.memory.cube, []).append(h.memory_id)
        batch = []
        for cube, ids in by_cube.items():
            if not self.ledger.cube_exists(cube):
                continue
            payload: dict[str, Any] = {
                "memory_ids": ids,
                "operation": "search",
                "query": query[:100_000],
                "as_of": as_of,
            }
            if branch is not None:
                payload["branch"] = branch
            batch.append(NewEvent(cube, ev.MEMORY_READ, payload, actor or "anonymous"))
        if batch:
            self.ledger.log.append(batch)


def check_min_score(min_score: Any) -> float | None:
    """A relevance cutoff: None, or a finite number."""
    if min_score is None:
        return None
    if isinstance(min_score, bool) or not isinstance(min_score, int | float) or not math.isfinite(min_score):
        raise InvalidRequest(f"min_score must be a finite number, not {min_score!r}")
    return float(min_score)


def _vector_schema() -> str:
    from projections.vector.view import SCHEMA

    return SCHEMA


def _open_embedded(kind: str, views_dir: Path, make: Callable[[], Any], repairs: dict[str, str]) -> Any:
    """Open an embedded view; a damaged file (or one of another layout) is deleted and opened afresh."""
    files = [views_dir / f for f in EMBEDDED_FILES[kind]]
    problem = view_health.file_problem(files[0])
    if problem is None and kind == "vector":
        problem = view_health.schema_problem(files[0], _vector_schema())
    if problem is None:
        try:
            view = make()
            view.checkpoint()
        except sqlite3.DatabaseError as exc:
            if not view_health.is_damage(exc):
                raise
            problem = view_health.describe(exc)
        else:
            if getattr(view, "dropped_layout", None):
                repairs[kind] = view.dropped_layout  # it dropped the file's tables itself
            _note_cache_repair(view, repairs)
            return view
    view_health.discard(files)
    repairs[kind] = problem
    view = make()
    _note_cache_repair(view, repairs)
    return view


def _note_cache_repair(view: Any, repairs: dict[str, str]) -> None:
    """Record that the vector view's embedding cache was damaged and started afresh."""
    cache = view.cache if isinstance(view, VectorView) else None
    if cache is not None and cache.repaired:
        repairs["embedding_cache"] = f"{cache.repaired}: dropped (it is only a cache)"
