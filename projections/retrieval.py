"""Hybrid retrieval: keyword + vector candidates, fused, expanded over the graph, reranked.

1. Candidates: the keyword view (temporal BM25) and, when configured, the vector view (cosine
   of the query embedding), each filtered by cube, lifecycle state, ``as_of`` and the ``where``
   filter (a pre-filter: the record view selects the matching memories through its scope index
   and each retriever ranks only those).
2. Fusion: each list's scores are divided by its best score and summed with weights
   (CombSUM). Reciprocal rank fusion is available (``fusion="rrf"``) but measured worse on
   LoCoMo, where one retriever is often confident and the other is not.
3. Pseudo-relevance feedback: the best fused hits contribute their most frequent terms
   (those not too common in the corpus) as a second, lower-weighted BM25 query.
4. Entity focus: memories that mention the entities the query names are boosted.
5. Graph: scores spread over explicit links and merges of the graph view (a memory earns a
   share of the score of the memories linked to it, which adds neighbours as candidates), and
   optionally over co-mentioned entities.
6. Focus: among the best candidates, memories whose speaker/author metadata the query names,
   and for "when" questions memories that contain a time expression, are boosted.

Every step is answered by the views at the requested offset, so an as-of search needs no
replay. A branch search passes ``overlay``: memories the branch changed replace their base
versions and are scored with the same scorers (BM25 with the base corpus statistics, the
same embedder); memories mapped to ``None`` are gone.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ledger.errors import InvalidRequest, present
from ledger.lifecycle import SEARCHABLE_BY_DEFAULT, check_state
from ledger.memory_state import MemoryState
from ledger.rules.filters import Filter, record_of, scope_pins
from projections.base import OPEN, GraphSearch, Hit, VectorSearch
from projections.query_intent import asks_when, mentions_time
from projections.text_analysis import entities, term_frequencies, terms
from projections.text_view import KeywordView

QueryEmbedder = Callable[[str], Sequence[float]]
TextsEmbedder = Callable[[Sequence[str]], Sequence[Sequence[float]]]


@dataclass(frozen=True, slots=True)
class FusionWeights:
    """Weights of the hybrid ranking (tuned on LoCoMo dev; see docs/projections.md)."""

    keyword: float = 1.0
    vector: float = 1.0
    fusion: str = "combsum"  # combsum | rrf
    normalise: str = "max"  # combsum score scale: max (score / best) | minmax ((score - last) / (best - last))
    rrf_k: float = 60.0
    candidates: int = 100  # per retriever
    prf_docs: int = 3  # pseudo-relevance feedback: top fused hits read for expansion terms
    prf_terms: int = 10
    prf_weight: float = 0.3
    prf_max_df: float = 0.25  # expansion terms must occur in at most this share of the corpus
    prf_retrieve: bool = False  # True: the expansion also retrieves new candidates (slower at scale)
    entity_boost: float = 0.6
    link_in: float = 0.25  # share of a linked-from memory's score (e.g. the previous turn)
    link_out: float = 0.1  # share of a linked-to memory's score
    comention: float = 0.0  # share of co-mentioning memories' scores (graph neighbours)
    comention_seeds: int = 5
    speaker_boost: float = 1.5  # factor for memories whose speaker (see speaker_keys) the query names
    speaker_keys: tuple[str, ...] = ("speaker", "author")  # top-level metadata keys naming who said it
    speaker_depth: int = 50  # how many of the best fused candidates the speaker/time focus looks at
    time_boost: float = 1.4  # "when" questions: factor for candidates that contain a time expression


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
            "id": self.memory_id,
            "score": round(self.score, 6),
            "cube": m.cube,
            "text": m.text,
            "state": m.state,
            "metadata": m.metadata,
            "tags": m.tags,
            "version": m.version,
            "subject": m.subject,
            "forgotten": m.forgotten,
            "valid_from": self.valid_from,
            "valid_to": self.valid_to,
            "updated_at": m.updated_at,
            "updated_by": m.updated_by,
            "provenance": {"offsets": list(m.event_offsets), "event_ids": list(self.event_ids)},
            "signals": {k: round(v, 6) for k, v in self.signals.items()},
            "from_branch": self.branch,
        }


def _scale(hits: Sequence[Hit], normalise: str) -> tuple[float, float]:
    """(best, zero point) of a ranked list for CombSUM: scores map to (score - zero) / (best - zero)."""
    top = max((s for _, s in hits), default=0.0)
    if normalise == "minmax" and len(hits) > 1:
        return top, min(s for _, s in hits)
    if normalise not in ("max", "minmax"):
        raise InvalidRequest(f"unknown score normalisation {normalise!r}; use max or minmax")
    return top, 0.0


def resolve_states(states: Iterable[str] | None, all_states: bool = False) -> list[str] | None:
    """The lifecycle states to search: explicit ones, every state, or the default (not merged/archived)."""
    if all_states:
        return None
    if states is None:
        return sorted(SEARCHABLE_BY_DEFAULT)
    return [check_state(s) for s in states]


class Retriever:
    """Hybrid search over a keyword view, an optional vector view and an optional graph view."""

    def __init__(
        self,
        keyword: KeywordView,
        vector: VectorSearch | None = None,
        graph: GraphSearch | None = None,
        embed_query: QueryEmbedder | None = None,
        embed_texts: TextsEmbedder | None = None,
        weights: FusionWeights | None = None,
    ):
        self.keyword = keyword
        self.vector = vector if embed_query is not None else None
        self.graph = graph
        self.embed_query = embed_query
        self.embed_texts = embed_texts
        self.weights = weights or FusionWeights()

    def search(
        self,
        query: str,
        cubes: Sequence[str] | None = None,
        k: int = 10,
        as_of: int | None = None,
        states: Iterable[str] | None = None,
        where: Filter | None = None,
        all_states: bool = False,
        overlay: Mapping[str, MemoryState | None] | None = None,
        query_vector: Sequence[float] | None = None,
        min_score: float | None = None,
    ) -> list[SearchHit]:
        """Top ``k`` memories for ``query`` as of offset ``as_of`` (None: head).

        ``states`` None searches generated, activated and frozen memories (merged and archived
        ones only when asked, or with ``all_states``). ``where`` (``ledger.rules.filters``) is a
        pre-filter: the record view selects the matching memories first (through its scope
        index) and every retriever ranks only those, so ``k`` hits come back whenever ``k``
        matching memories match the query. ``min_score`` drops hits whose fused score is lower.
        """
        if not isinstance(query, str) or not query.strip():
            raise InvalidRequest("search query must be a non-empty string")
        if k <= 0:
            return []
        w = self.weights
        wanted = resolve_states(states, all_states)
        overlay = overlay or {}
        n = max(w.candidates, 2 * k)
        flt = where if where is not None and where.source else None
        allowed = None if flt is None else self.keyword.matching(flt, as_of, cubes, wanted)
        branch_states = self._overlay_candidates(overlay, cubes, wanted, flt)
        branch_texts = {m: s.text or "" for m, s in branch_states.items()}
        signals: dict[str, dict[str, float]] = defaultdict(dict)

        kw = self.keyword.keyword_search(query, n, cubes, as_of, wanted, allowed, exclude=overlay)
        if branch_texts:
            kw = _merge_ranked(kw, self.keyword.score_texts(query, branch_texts, cubes, as_of), n)
        lists: dict[str, list[Hit]] = {"keyword": kw}
        if self.vector is not None and self.embed_query is not None:
            qv = query_vector if query_vector is not None else self.embed_query(query)
            vec = self._vector(qv, n + len(overlay), cubes, as_of, wanted, allowed, flt)
            vec = [(m, s) for m, s in vec if m not in overlay]
            if branch_states and self.embed_texts is not None:
                vec = _merge_ranked(vec, self._cosine(qv, branch_states), n)
            lists["vector"] = vec[:n]
        fused = self._fuse(lists, signals)
        if w.prf_weight > 0 and w.prf_docs > 0 and fused:
            self._feedback(query, fused, lists, signals, cubes, as_of, wanted, allowed, overlay, branch_texts)
        if self.graph is not None and fused:
            self._graph(query, fused, signals, cubes, as_of, wanted, allowed, overlay)
        if fused and ((w.speaker_boost != 1.0 and w.speaker_keys) or (w.time_boost != 1.0 and asks_when(query))):
            self._focus(query, fused, signals, as_of, branch_states)
        ranked = sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))
        if min_score is not None:
            ranked = [(m, s) for m, s in ranked if s >= min_score]
        return self._hits(ranked[:k], signals, as_of, branch_states)

    def _vector(
        self,
        qv: Sequence[float],
        n: int,
        cubes: Sequence[str] | None,
        as_of: int | None,
        states: list[str] | None,
        allowed: Mapping[str, int | None] | None,
        flt: Filter | None,
    ) -> list[Hit]:
        """The vector list: pre-filtered inside the view when it can be (``filters_inside``), else
        over-fetched until ``n`` allowed memories are found or the view has no more."""
        vector: Any = self.vector
        if allowed is None:
            return list(vector.vector_search(qv, n, cubes, as_of, states))
        if not allowed:
            return []
        if getattr(vector, "filters_inside", False):
            kwargs: dict[str, Any] = {"allowed": allowed}
            if getattr(vector, "filters_scopes", False) and flt is not None:
                kwargs["scopes"] = scope_pins(flt.source)
            return list(vector.vector_search(qv, n, cubes, as_of, states, **kwargs))
        want = n
        while True:
            got = vector.vector_search(qv, want, cubes, as_of, states)
            kept = [(m, s) for m, s in got if m in allowed]
            if len(kept) >= n or len(got) < want:
                return kept[:n]
            want *= 4

    def _fuse(self, lists: Mapping[str, list[Hit]], signals: dict[str, dict[str, float]]) -> dict[str, float]:
        w = self.weights
        weight_of = {"keyword": w.keyword, "vector": w.vector}
        fused: dict[str, float] = defaultdict(float)
        for name, hits in lists.items():
            top, low = _scale(hits, w.normalise)
            for rank, (mid, score) in enumerate(hits, start=1):
                signals[mid][name] = score
                if w.fusion == "rrf":
                    fused[mid] += weight_of[name] / (w.rrf_k + rank)
                elif top > low and score > 0:  # a candidate: some retriever finds it relevant at all
                    fused[mid] += weight_of[name] * max(score - low, 0.0) / (top - low)
        if w.fusion != "rrf":
            # a candidate missing from a full list scored at most that list's last score: credit it so
            for name, hits in lists.items():
                top, low = _scale(hits, w.normalise)
                if top <= low or len(hits) < w.candidates:
                    continue
                floor = weight_of[name] * max(hits[-1][1] - low, 0.0) / (top - low)
                if floor <= 0:
                    continue
                present = {m for m, _ in hits}
                for mid in fused:
                    if mid not in present:
                        fused[mid] += floor
        return fused

    def _feedback(
        self,
        query: str,
        fused: dict[str, float],
        lists: dict[str, list[Hit]],
        signals: dict[str, dict[str, float]],
        cubes: Sequence[str] | None,
        as_of: int | None,
        states: list[str] | None,
        allowed: Mapping[str, int | None] | None,
        overlay: Mapping[str, MemoryState | None],
        branch_texts: Mapping[str, str],
    ) -> None:
        """Pseudo-relevance feedback: expand the query with frequent terms of the best hits."""
        w = self.weights
        top = [m for m, _ in sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))[: w.prf_docs]]
        rows = self.keyword.versions_at([m for m in top if m not in branch_texts], as_of)
        counts: Counter[str] = Counter()
        for m in top:
            text = branch_texts.get(m) if m in branch_texts else (rows[m].full().text if m in rows else None)
            if text:
                counts.update(term_frequencies(text)[0])
        qterms = set(terms(query))
        pool = [t for t, _ in counts.most_common(3 * w.prf_terms) if t not in qterms]
        if not pool:
            return
        stats = self.keyword.corpus_stats(pool, cubes, as_of, max_df=w.prf_max_df)
        expansion = [t for t in pool if t in stats.idf][: w.prf_terms]
        if not expansion:
            return
        n = max(w.candidates, 1)
        if w.prf_retrieve:
            extra = self.keyword.search_terms(expansion, n, cubes, as_of, states, allowed, exclude=overlay)
        else:
            rescored = self.keyword.score_memories(
                expansion, [m for m in fused if m not in overlay], cubes, as_of, stats
            )
            extra = sorted(rescored.items(), key=lambda kv: (-kv[1], kv[0]))
        # a branch's own versions as main's memories: without prf_retrieve only the candidates are rescored
        own = branch_texts if w.prf_retrieve else {m: t for m, t in branch_texts.items() if m in fused}
        if own:
            extra = _merge_ranked(extra, self.keyword.score_texts("", own, cubes, as_of, expansion), n)
        kw_top = max((s for _, s in lists.get("keyword", [])), default=0.0)
        if kw_top <= 0:
            return
        for mid, score in extra:
            add = w.keyword * w.prf_weight * score / kw_top
            fused[mid] = fused.get(mid, 0.0) + add
            signals[mid]["feedback"] = score

    def _graph(
        self,
        query: str,
        fused: dict[str, float],
        signals: dict[str, dict[str, float]],
        cubes: Sequence[str] | None,
        as_of: int | None,
        states: list[str] | None,
        allowed: Mapping[str, int | None] | None,
        overlay: Mapping[str, MemoryState | None],
    ) -> None:
        """Entity focus, then spreading scores over links, merges and (optionally) co-mentions."""
        w = self.weights
        graph: Any = self.graph
        base_ids = [m for m in fused if m not in overlay]
        wanted_entities = entities(query)
        if w.entity_boost > 0 and wanted_entities and hasattr(graph, "entity_names"):
            names = graph.entity_names(base_ids, as_of)
            for mid in fused:  # a branch's own versions are not in the graph: same extraction, from the text
                state = overlay.get(mid)
                if state is not None and state.text:
                    names[mid] = entities(state.text)
            for mid, own in names.items():
                shared = len(own & wanted_entities)
                if shared:
                    factor = 1.0 + w.entity_boost * shared / len(wanted_entities)
                    fused[mid] *= factor
                    signals[mid]["entity_boost"] = factor
        bonus: dict[str, float] = defaultdict(float)
        if (w.link_in > 0 or w.link_out > 0) and hasattr(graph, "edges"):
            for src, dst, _relation, weight in graph.edges(base_ids, as_of, cubes):
                if src in fused:
                    bonus[dst] += w.link_in * weight * fused[src]
                if dst in fused:
                    bonus[src] += w.link_out * weight * fused[dst]
        if w.comention > 0:
            seeds = sorted(((m, s) for m, s in fused.items() if m not in overlay), key=lambda kv: (-kv[1], kv[0]))
            for seed, seed_score in seeds[: w.comention_seeds]:
                for mid, strength in graph.neighbours([seed], cubes, as_of, 1, 20):
                    bonus[mid] += w.comention * seed_score * min(1.0, strength)
        bonus = {m: b for m, b in bonus.items() if m not in overlay and b > 0}
        if not bonus:
            return
        new = [m for m in bonus if m not in fused]
        rows = self.keyword.versions_at(new, as_of) if new else {}
        for mid, b in bonus.items():
            if mid not in fused:
                row = rows.get(mid)
                if (
                    row is None
                    or not row.exists
                    or (states is not None and row.state not in states)
                    or (allowed is not None and mid not in allowed)
                    or (cubes is not None and row.cube not in cubes)
                ):
                    continue
            fused[mid] = fused.get(mid, 0.0) + b
            signals[mid]["graph"] = b

    def _focus(
        self,
        query: str,
        fused: dict[str, float],
        signals: dict[str, dict[str, float]],
        as_of: int | None,
        branch_states: Mapping[str, MemoryState],
    ) -> None:
        """Reorder the head of the ranking by what the question is about.

        Speaker focus: "What did Caroline research?" is about what Caroline said, so memories
        whose speaker/author metadata names an entity of the query are boosted over memories
        that merely mention her. Time focus: a "when" question favours memories that contain a
        time expression (``projections.query_intent``). Only the ``speaker_depth`` best
        candidates are looked at (one lookup).
        """
        w = self.weights
        wanted = entities(query) if w.speaker_boost != 1.0 and w.speaker_keys else set()
        when = w.time_boost != 1.0 and asks_when(query)
        if not wanted and not when:
            return
        top = [m for m, _ in sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))[: w.speaker_depth]]
        rows = self.keyword.versions_at([m for m in top if m not in branch_states], as_of)
        for mid in top:
            state = branch_states.get(mid) or (rows[mid].full() if mid in rows else None)
            if state is None:
                continue
            meta = state.metadata or {}
            names = {
                n
                for key in w.speaker_keys
                if isinstance(meta.get(key), str)
                for n in (meta[key].strip().lower(), *entities(meta[key]))
            }
            if wanted and names & wanted:
                fused[mid] *= w.speaker_boost
                signals[mid]["speaker_boost"] = w.speaker_boost
            if when and state.text and mentions_time(state.text):
                fused[mid] *= w.time_boost
                signals[mid]["time_boost"] = w.time_boost

    # -- steps ---------------------------------------------------------------------------
    def _overlay_candidates(
        self,
        overlay: Mapping[str, MemoryState | None],
        cubes: Sequence[str] | None,
        states: list[str] | None,
        flt: Filter | None,
    ) -> dict[str, MemoryState]:
        out = {}
        for mid, s in overlay.items():
            if s is None or not s.exists or s.text is None:
                continue
            if cubes is not None and s.cube not in cubes:
                continue
            if states is not None and s.state not in states:
                continue
            if flt is not None and not flt.matches(record_of(s)):
                continue
            out[mid] = s
        return out

    def _cosine(self, qv: Sequence[float], states: Mapping[str, MemoryState]) -> dict[str, float]:
        embed_texts = present(self.embed_texts, "the text embedder of a vector rescoring")
        ids = list(states)
        mat = np.asarray(embed_texts([states[m].text or "" for m in ids]), dtype=np.float32)
        q = np.asarray(qv, dtype=np.float32)
        q = q / (np.linalg.norm(q) or 1.0)
        norms = np.linalg.norm(mat, axis=1)
        norms[norms == 0] = 1.0
        sims = (mat @ q) / norms
        return {m: float(s) for m, s in zip(ids, sims, strict=True)}

    def _hits(
        self,
        ranked: list[tuple[str, float]],
        signals: dict[str, dict[str, float]],
        as_of: int | None,
        branch_states: Mapping[str, MemoryState],
    ) -> list[SearchHit]:
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
            out.append(
                SearchHit(
                    mid,
                    score,
                    row.full(),
                    row.valid_from,
                    None if row.valid_to == OPEN else row.valid_to,
                    signals.get(mid, {}),
                )
            )
        return out


def _merge_ranked(base: list[Hit], extra: Mapping[str, float], n: int) -> list[Hit]:
    merged = list(base) + [(m, s) for m, s in extra.items() if s > 0]
    merged.sort(key=lambda kv: (-kv[1], kv[0]))
    return merged[:n]
