"""Hybrid retrieval: keyword + vector candidates fused by weighted RRF, graph expansion, rerank.

1. Candidates: the keyword view (BM25) and, when configured, the vector view (cosine of the
   query embedding), each filtered by cube, lifecycle state, metadata and ``as_of``.
2. Fusion: weighted reciprocal rank fusion, ``w / (rrf_k + rank)`` summed over the lists.
3. Graph: the best fused hits seed a neighbourhood expansion (co-mentioned entities, explicit
   links, merges); a neighbour earns a share of its seed's fused score.
4. Rerank: the final score adds to the fused score a small bonus for the normalised raw
   scores (so two candidates tied by rank are told apart by how well they matched).

Every step is answered by the views at the requested offset, so an as-of search needs no
replay. A branch search passes ``overlay``: memories the branch changed replace their base
versions and are scored with the same scorers (BM25 with the base corpus statistics, the
same embedder), memories mapped to ``None`` are gone.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ledger.lifecycle import SEARCHABLE_BY_DEFAULT
from ledger.memory_state import MemoryState
from projections.base import GraphSearch, Hit, VectorSearch
from projections.text_view import KeywordView

QueryEmbedder = Callable[[str], Sequence[float]]
TextsEmbedder = Callable[[Sequence[str]], Sequence[Sequence[float]]]


@dataclass(frozen=True, slots=True)
class FusionWeights:
    """Weights of the hybrid ranking (tuned on LoCoMo dev; see docs/projections.md)."""

    keyword: float = 1.0
    vector: float = 1.0
    graph: float = 0.35
    rrf_k: float = 60.0
    candidates: int = 100  # per retriever
    graph_seeds: int = 5
    graph_hops: int = 1
    graph_limit: int = 20
    raw_bonus: float = 0.004  # weight of the normalised raw scores in the rerank


@dataclass(slots=True)
class SearchHit:
    """One search result with its provenance (the events that produced this version)."""

    memory_id: str
    score: float
    memory: MemoryState
    valid_from: int
    valid_to: int | None
    signals: dict[str, float] = field(default_factory=dict)
    event_ids: list[str] = field(default_factory=list)
    branch: bool = False

    def to_dict(self) -> dict[str, Any]:
        m = self.memory
        return {
            "id": self.memory_id, "score": round(self.score, 6), "cube": m.cube, "text": m.text, "state": m.state,
            "metadata": m.metadata, "tags": m.tags, "version": m.version, "subject": m.subject,
            "forgotten": m.forgotten, "valid_from": self.valid_from, "valid_to": self.valid_to,
            "updated_at": m.updated_at, "updated_by": m.updated_by,
            "provenance": {"offsets": list(m.event_offsets), "event_ids": list(self.event_ids)},
            "signals": {k: round(v, 6) for k, v in self.signals.items()}, "from_branch": self.branch,
        }


def metadata_matches(meta: Mapping[str, Any], wanted: Mapping[str, Any] | None) -> bool:
    """Python twin of the keyword view's SQL metadata filter (top-level equality)."""
    if not wanted:
        return True
    for key, value in wanted.items():
        if key not in meta:
            return False
        have = meta[key]
        if value is None:
            if have is not None:
                return False
            continue
        if isinstance(have, bool):
            have = int(have)
        if isinstance(value, bool):
            value = int(value)
        if have != value or isinstance(have, dict | list):
            return False
    return True


def resolve_states(states: Iterable[str] | None, all_states: bool = False) -> list[str] | None:
    """The lifecycle states to search: explicit ones, every state, or the default (not merged/archived)."""
    if all_states:
        return None
    if states is None:
        return sorted(SEARCHABLE_BY_DEFAULT)
    from ledger.lifecycle import check_state

    return [check_state(s) for s in states]


class Retriever:
    """Hybrid search over a keyword view, an optional vector view and an optional graph view."""

    def __init__(self, keyword: KeywordView, vector: VectorSearch | None = None, graph: GraphSearch | None = None,
                 embed_query: QueryEmbedder | None = None, embed_texts: TextsEmbedder | None = None,
                 weights: FusionWeights | None = None):
        self.keyword = keyword
        self.vector = vector if embed_query is not None else None
        self.graph = graph
        self.embed_query = embed_query
        self.embed_texts = embed_texts
        self.weights = weights or FusionWeights()

    def search(self, query: str, cubes: Sequence[str] | None = None, k: int = 10, as_of: int | None = None,
               states: Iterable[str] | None = None, metadata: Mapping[str, Any] | None = None,
               all_states: bool = False, overlay: Mapping[str, MemoryState | None] | None = None,
               query_vector: Sequence[float] | None = None) -> list[SearchHit]:
        """Top ``k`` memories for ``query`` as of offset ``as_of`` (None: head).

        ``states`` None searches generated, activated and frozen memories (merged and archived
        ones only when asked, or with ``all_states``); ``metadata`` keeps memories whose
        top-level metadata equals every given value.
        """
        if not isinstance(query, str) or not query.strip():
            from ledger.errors import InvalidRequest

            raise InvalidRequest("search query must be a non-empty string")
        if k <= 0:
            return []
        w = self.weights
        wanted = resolve_states(states, all_states)
        overlay = overlay or {}
        n = max(w.candidates, 2 * k)
        lists: dict[str, list[Hit]] = {}
        kw = self.keyword.keyword_search(query, n, cubes, as_of, wanted, metadata, exclude=overlay)
        branch_states = self._overlay_candidates(overlay, cubes, wanted, metadata)
        if branch_states:
            extra = self.keyword.score_texts(query, {m: s.text or "" for m, s in branch_states.items()}, cubes, as_of)
            kw = _merge_ranked(kw, extra, n)
        lists["keyword"] = kw
        if self.vector is not None and self.embed_query is not None:
            qv = query_vector if query_vector is not None else self.embed_query(query)
            vec = self.vector.vector_search(qv, n + len(overlay), cubes, as_of, wanted)
            vec = [(m, s) for m, s in vec if m not in overlay]
            if metadata:
                rows = self.keyword.versions_at([m for m, _ in vec], as_of)
                vec = [(m, s) for m, s in vec if m in rows and metadata_matches(rows[m].memory.metadata, metadata)]
            if branch_states and self.embed_texts is not None:
                vec = _merge_ranked(vec, self._cosine(qv, branch_states), n)
            lists["vector"] = vec[:n]
        fused: dict[str, float] = defaultdict(float)
        signals: dict[str, dict[str, float]] = defaultdict(dict)
        weight_of = {"keyword": w.keyword, "vector": w.vector}
        for name, hits in lists.items():
            top = hits[0][1] if hits else 0.0
            for rank, (mid, score) in enumerate(hits, start=1):
                fused[mid] += weight_of[name] / (w.rrf_k + rank)
                signals[mid][name] = score
                if top > 0:
                    fused[mid] += w.raw_bonus * weight_of[name] * max(score, 0.0) / top
        if self.graph is not None and w.graph > 0 and fused:
            self._expand(fused, signals, cubes, as_of, wanted, metadata, overlay)
        ranked = sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))
        return self._hits(ranked[: k], signals, as_of, branch_states)

    # -- steps ---------------------------------------------------------------------------
    def _overlay_candidates(self, overlay: Mapping[str, MemoryState | None], cubes: Sequence[str] | None,
                            states: list[str] | None, metadata: Mapping[str, Any] | None) -> dict[str, MemoryState]:
        out = {}
        for mid, s in overlay.items():
            if s is None or not s.exists or s.text is None:
                continue
            if cubes is not None and s.cube not in cubes:
                continue
            if states is not None and s.state not in states:
                continue
            if not metadata_matches(s.metadata, metadata):
                continue
            out[mid] = s
        return out

    def _cosine(self, qv: Sequence[float], states: Mapping[str, MemoryState]) -> dict[str, float]:
        import numpy as np

        assert self.embed_texts is not None
        ids = list(states)
        mat = np.asarray(self.embed_texts([states[m].text or "" for m in ids]), dtype=np.float32)
        q = np.asarray(qv, dtype=np.float32)
        q = q / (np.linalg.norm(q) or 1.0)
        norms = np.linalg.norm(mat, axis=1)
        norms[norms == 0] = 1.0
        sims = (mat @ q) / norms
        return {m: float(s) for m, s in zip(ids, sims, strict=True)}

    def _expand(self, fused: dict[str, float], signals: dict[str, dict[str, float]], cubes: Sequence[str] | None,
                as_of: int | None, states: list[str] | None, metadata: Mapping[str, Any] | None,
                overlay: Mapping[str, MemoryState | None]) -> None:
        w = self.weights
        assert self.graph is not None
        seeds = sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))[: w.graph_seeds]
        bonus: dict[str, float] = defaultdict(float)
        for seed, seed_score in seeds:
            if seed in overlay:
                continue  # a branch's own memories are not in the base graph
            for mid, strength in self.graph.neighbours([seed], cubes, as_of, w.graph_hops, w.graph_limit):
                if mid in overlay:
                    continue
                bonus[mid] += w.graph * seed_score * min(1.0, strength)
        if not bonus:
            return
        rows = self.keyword.versions_at(list(bonus), as_of)
        for mid, b in bonus.items():
            row = rows.get(mid)
            if row is None or not row.memory.exists:
                continue
            if states is not None and row.state not in states:
                continue
            if not metadata_matches(row.memory.metadata, metadata):
                continue
            fused[mid] += b
            signals[mid]["graph"] = b

    def _hits(self, ranked: list[tuple[str, float]], signals: dict[str, dict[str, float]], as_of: int | None,
              branch_states: Mapping[str, MemoryState]) -> list[SearchHit]:
        base_ids = [m for m, _ in ranked if m not in branch_states]
        rows = self.keyword.versions_at(base_ids, as_of)
        out = []
        for mid, score in ranked:
            if mid in branch_states:
                s = branch_states[mid]
                out.append(SearchHit(mid, score, s, s.updated_offset, None, signals.get(mid, {}), branch=True))
                continue
            row = rows.get(mid)
            if row is None:
                continue  # a vector view ahead of or behind the record view; never show a ghost
            from projections.base import OPEN

            out.append(SearchHit(mid, score, row.memory, row.valid_from, None if row.valid_to == OPEN else row.valid_to,
                                 signals.get(mid, {})))
        return out


def _merge_ranked(base: list[Hit], extra: Mapping[str, float], n: int) -> list[Hit]:
    merged = list(base) + [(m, s) for m, s in extra.items() if s > 0]
    merged.sort(key=lambda kv: (-kv[1], kv[0]))
    return merged[:n]
