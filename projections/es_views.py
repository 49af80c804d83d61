"""Vector + keyword view on Elasticsearch (official ``elasticsearch`` client, documented APIs only).

One document per memory version in ``<prefix>-versions``: ``memory_id``, ``cube``, ``state``,
``tags``, ``subject``, ``text`` (analysed, BM25), ``embedding`` (``dense_vector``, cosine,
indexed for kNN), ``valid_from`` / ``valid_to`` (offsets; ``OPEN`` while current) and
``searchable`` (false for deleted or crypto-shredded versions). A query as of offset N filters
``valid_from <= N < valid_to``, exactly like the embedded temporal views, so time-travel needs
no replay. The view's checkpoint is a document in ``<prefix>-meta``.

Exactly once without transactions: Elasticsearch has no multi-document transaction, so every
write is made idempotent instead. Document ids are deterministic (``memory_id@valid_from``),
new versions are full-document ``index`` operations, closing a version is an ``update`` that
sets ``valid_to`` to the superseding offset, and the prior state of each memory is folded from
the log (``projections.version_tracker``), never read back from the view. The checkpoint is
written in the same ``_bulk`` request after the view rows, and the request is refreshed before
it returns. A batch interrupted half way leaves the checkpoint behind; its redelivery rewrites
the same documents with the same content, so the end state equals a single application.

Partitions (a consumer group): ``partition=k`` makes the instance the view of partition ``k`` of
a partitioned ledger. Its checkpoint is the document ``checkpoint.p<k>`` and every document it
writes carries ``partition: k``; all partitions share the two indices (a cube lives in one
partition, so document ids never collide) and a query without ``as_of`` covers every partition.
Offsets (``valid_from`` / ``valid_to``) are partition-local, so an ``as_of`` query on a partition
instance is restricted to its own partition, and an ``as_of`` query on the whole-log instance
over an index that holds partitioned documents is refused (one offset cannot name a point of N
logs). ``reset`` of a partition instance deletes only its own documents and checkpoint.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

import elasticsearch
import numpy as np

from ledger.errors import BackendUnavailable, InvalidRequest, LedgerError, unavailable_on
from ledger.events import Event
from ledger.memory_state import SCOPE_KEYS, Erasure, MemoryState, Opener, erasure_of, scope_of
from projections.base import OPEN, Hit
from projections.es_compat import DEFAULT_COMPATIBLE_WITH, check_compatible_with, es_client
from projections.version_tracker import VersionChange, VersionTracker, version_id

CHECKPOINT_ID = "checkpoint"
# dense_vector index: HNSW over float32 vectors, no quantisation (scores are then true cosines)
INDEX_OPTIONS = {"type": "hnsw", "m": 16, "ef_construction": 100}
RESCORE_FACTOR = 4  # kNN candidates fetched per requested hit, rescored exactly here
MAX_CANDIDATES = 10_000  # Elasticsearch's limit on num_candidates


def rescore_window(k: int) -> tuple[int, int]:
    """(hits fetched for exact rescoring, HNSW ``num_candidates``) for a top-``k`` query."""
    candidates = min(MAX_CANDIDATES, max(RESCORE_FACTOR * k, 40))
    return candidates, min(MAX_CANDIDATES, max(100, 10 * k, candidates))


def exact_top_k(query: Any, rows: Sequence[tuple[str, Sequence[float]]], k: int) -> list[Hit]:
    """The top ``k`` of ``rows`` (memory id, stored vector) by exact float32 cosine with ``query``; ties by
    memory id, as in the embedded vector view."""
    if not rows:
        return []
    q = np.asarray(query, dtype=np.float32)
    qn = float(np.linalg.norm(q))
    m = np.asarray([v for _, v in rows], dtype=np.float32)
    norms = np.linalg.norm(m, axis=1)
    norms[norms == 0] = 1.0
    scores = (m @ (q / qn if qn > 0 else q)) / norms
    ranked = sorted(zip((mid for mid, _ in rows), scores.tolist(), strict=True), key=lambda h: (-h[1], h[0]))
    return [(mid, float(score)) for mid, score in ranked[:k]]


MAX_TERMS = 60_000  # ids in one terms filter (Elasticsearch's index.max_terms_count is 65,536)


class ElasticsearchViewError(LedgerError):
    """Elasticsearch refused a write or could not be reached."""


def _client(url_or_client: Any, compatible_with: int = DEFAULT_COMPATIBLE_WITH) -> Any:
    if not isinstance(url_or_client, str):
        return url_or_client
    return es_client(url_or_client, compatible_with, request_timeout=30)


_UNREACHABLE = (elasticsearch.TransportError,)  # connection refused, timeouts, TLS: not HTTP error answers
_WHERE = "the Elasticsearch view ({self.prefix}-*)"


class ElasticsearchView:
    """Temporal keyword (BM25) and vector (dense_vector kNN) view of memories on Elasticsearch."""

    filters_inside = True  # vector_search takes ``allowed`` and ``scopes`` (pre-filtered kNN)
    filters_scopes = True

    def __init__(
        self,
        es: Any,
        source: object,
        index_prefix: str = "memledger",
        embedder: Any = None,
        opener: Opener | None = None,
        name: str = "elasticsearch",
        compatible_with: int = DEFAULT_COMPATIBLE_WITH,
        partition: int | None = None,
    ):
        if partition is not None and (isinstance(partition, bool) or not isinstance(partition, int) or partition < 0):
            raise InvalidRequest(f"partition must be a non-negative integer, not {partition!r}")
        if (
            not index_prefix
            or index_prefix != index_prefix.lower()
            or not all(c.isalnum() or c in "-_." for c in index_prefix)
        ):
            raise InvalidRequest(f"index prefix {index_prefix!r} must be lower-case letters, digits, '-', '_', '.'")
        self.name = name
        self.es = _client(es, compatible_with)
        self.prefix = index_prefix
        self.versions_index = f"{index_prefix}-versions"
        self.meta_index = f"{index_prefix}-meta"
        self.embedder = embedder
        self.partition = partition
        self.checkpoint_id = CHECKPOINT_ID if partition is None else f"{CHECKPOINT_ID}.p{partition}"
        self.tracker = VersionTracker(source, opener)
        self._ensure_indices()

    # -- indices ---------------------------------------------------------------------------
    def _mappings(self) -> dict[str, Any]:
        props: dict[str, Any] = {
            "memory_id": {"type": "keyword"},
            "cube": {"type": "keyword"},
            "state": {"type": "keyword"},
            "tags": {"type": "keyword"},
            "subject": {"type": "keyword"},
            "text": {"type": "text"},
            "valid_from": {"type": "long"},
            "valid_to": {"type": "long"},
            "searchable": {"type": "boolean"},
            "version": {"type": "long"},
            "updated_by": {"type": "keyword"},
            "metadata": {"type": "object", "enabled": False},
            "partition": {"type": "integer"},  # set by partition instances only
            **{key: {"type": "keyword"} for key in SCOPE_KEYS},  # scope ids: filtered inside the kNN search
        }
        if self.embedder is not None:
            props["embedding"] = {
                "type": "dense_vector",
                "dims": int(self.embedder.dim),
                "index": True,
                "similarity": "cosine",
                # explicit: full float32 HNSW; Elasticsearch 8.14+ otherwise defaults to int8 quantisation
                "index_options": dict(INDEX_OPTIONS),
            }
            props["embedder"] = {"type": "keyword"}
        return {"properties": props}

    def _ensure_indices(self) -> None:
        try:
            if not self.es.indices.exists(index=self.versions_index):
                self.es.options(ignore_status=400).indices.create(index=self.versions_index, mappings=self._mappings())
            else:  # an index made before the scope and partition fields: add them (new versions carry them)
                added: dict[str, Any] = {key: {"type": "keyword"} for key in SCOPE_KEYS}
                added["partition"] = {"type": "integer"}
                self.es.options(ignore_status=400).indices.put_mapping(index=self.versions_index, properties=added)
            if not self.es.indices.exists(index=self.meta_index):
                self.es.options(ignore_status=400).indices.create(
                    index=self.meta_index, mappings={"properties": {"offset": {"type": "long"}}}
                )
        except _UNREACHABLE as exc:
            raise BackendUnavailable(f"Elasticsearch is unavailable (preparing {self.prefix}-*): {exc}") from None
        except elasticsearch.ApiError as exc:
            raise ElasticsearchViewError(f"cannot prepare Elasticsearch indices {self.prefix}-*: {exc!r}") from None

    # -- Projection ------------------------------------------------------------------------
    @unavailable_on(*_UNREACHABLE, what=_WHERE)
    def checkpoint(self) -> int:
        r = self.es.options(ignore_status=404).get(index=self.meta_index, id=self.checkpoint_id)
        if not r.get("found"):
            return -1
        return int(r["_source"]["offset"])

    @unavailable_on(*_UNREACHABLE, what=_WHERE)
    def reset(self) -> None:
        """Drop the view; a partition instance deletes only its checkpoint, then its own documents."""
        if self.partition is not None:
            self.es.options(ignore_status=404).delete(index=self.meta_index, id=self.checkpoint_id, refresh=True)
            self.es.delete_by_query(
                index=self.versions_index,
                query={"term": {"partition": self.partition}},
                conflicts="proceed",
                refresh=True,
            )
            self.tracker.invalidate()
            return
        self.es.options(ignore_status=404).indices.delete(index=self.versions_index)
        self.es.options(ignore_status=404).indices.delete(index=self.meta_index)
        self.tracker.invalidate()
        self._ensure_indices()

    def close(self) -> None:
        self.es.close()

    @unavailable_on(*_UNREACHABLE, what=_WHERE)
    def apply_batch(self, events: Sequence[Event]) -> None:
        cp = self.checkpoint()
        todo = [e for e in events if e.offset > cp]
        if not todo:
            return
        try:
            actions = self._actions(todo)
            actions.append(
                {
                    "_op_type": "index",
                    "_index": self.meta_index,
                    "_id": self.checkpoint_id,
                    "_source": {"offset": todo[-1].offset},
                }
            )
            self._bulk(actions)
        except BaseException:
            self.tracker.invalidate()
            raise
        self.tracker.committed()

    def _bulk(self, actions: list[dict[str, Any]]) -> None:
        from elasticsearch import helpers

        try:
            _, result = helpers.bulk(self.es, actions, refresh="wait_for", raise_on_error=False, chunk_size=2000)
            errors = result if isinstance(result, list) else []
        except _UNREACHABLE as exc:
            raise BackendUnavailable(f"Elasticsearch is unavailable (bulk write to {self.prefix}-*): {exc}") from None
        except elasticsearch.ApiError as exc:
            raise ElasticsearchViewError(f"bulk write to {self.prefix}-* failed: {exc!r}") from None
        if errors:
            raise ElasticsearchViewError(f"bulk write to {self.prefix}-* rejected {len(errors)} actions: {errors[:3]}")

    def _doc(self, s: MemoryState, valid_from: int) -> dict[str, Any]:
        searchable = bool(s.exists and s.text and not s.forgotten)
        return {
            "memory_id": s.memory_id,
            "cube": s.cube,
            "state": s.state,
            "tags": list(s.tags),
            "subject": s.subject,
            "text": s.text if searchable else None,
            "metadata": s.metadata,
            "valid_from": valid_from,
            "valid_to": OPEN,
            "searchable": searchable,
            "version": s.version,
            "updated_by": s.updated_by,
            **scope_of(s.metadata),
            **({} if self.partition is None else {"partition": self.partition}),
        }

    def _actions(self, events: Sequence[Event]) -> list[dict[str, Any]]:
        changes: list[VersionChange] = self.tracker.changes(events)
        docs: dict[str, dict[str, Any]] = {}
        closes: dict[str, int] = {}
        for ch in changes:
            if ch.closed_from is not None and ch.closed_from != ch.offset:
                closed = version_id(ch.memory_id, ch.closed_from)
                if closed in docs:
                    docs[closed]["valid_to"] = ch.offset
                else:
                    closes[closed] = ch.offset
            docs[version_id(ch.memory_id, ch.offset)] = self._doc(ch.state, ch.offset)
        self._embed(docs)
        actions: list[dict[str, Any]] = [
            {"_op_type": "index", "_index": self.versions_index, "_id": vid, "_source": d} for vid, d in docs.items()
        ]
        actions += [
            {"_op_type": "update", "_index": self.versions_index, "_id": vid, "doc": {"valid_to": to}}
            for vid, to in closes.items()
        ]
        for e in events:
            erasure = erasure_of(e)
            if erasure is not None:
                actions += self._forget(erasure, docs)
        return actions

    def _embed(self, docs: Mapping[str, dict[str, Any]]) -> None:
        if self.embedder is None:
            return
        todo = [(vid, d) for vid, d in docs.items() if d["searchable"]]
        if not todo:
            return
        vectors = self.embedder.embed([d["text"] for _, d in todo])
        for (_, d), vec in zip(todo, vectors, strict=True):
            d["embedding"] = [float(x) for x in vec]
            d["embedder"] = str(getattr(self.embedder, "model_id", "unknown"))

    def _forget(self, erasure: Erasure, pending: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
        """Crypto-shredding reaches the view: every stored version of the erased subjects' memories
        and of the memories the erasure lists loses its text and embedding."""
        subjects, mids = set(erasure.subjects), set(erasure.memory_ids)
        for d in pending.values():
            if d["valid_from"] < erasure.offset and (d.get("subject") in subjects or d.get("memory_id") in mids):
                d.update(text=None, searchable=False)
                d.pop("embedding", None)
        out: list[dict[str, Any]] = []
        ids = sorted(mids)
        clauses: list[dict[str, Any]] = [{"terms": {"subject": sorted(subjects)}}] if subjects else []
        clauses += [{"terms": {"memory_id": ids[i : i + 1000]}} for i in range(0, len(ids), 1000)]
        own = [] if self.partition is None else [{"term": {"partition": self.partition}}]  # offsets are ours only
        hits = (h for clause in clauses for h in self._scan({"bool": {"filter": [clause, *own]}}))
        for hit in hits:
            src = hit["_source"]
            if hit["_id"] in pending or src.get("valid_from", -1) >= erasure.offset:
                continue
            src.update(text=None, searchable=False)
            src.pop("embedding", None)
            src.pop("embedder", None)
            out.append({"_op_type": "index", "_index": self.versions_index, "_id": hit["_id"], "_source": src})
        return out

    def _scan(self, query: dict[str, Any], page: int = 500) -> Iterable[dict[str, Any]]:
        after: list[Any] | None = None
        while True:
            kw: dict[str, Any] = {
                "index": self.versions_index,
                "query": query,
                "size": page,
                "sort": [{"memory_id": "asc"}, {"valid_from": "asc"}],
            }
            if after is not None:
                kw["search_after"] = after
            hits = self.es.search(**kw)["hits"]["hits"]
            yield from hits
            if len(hits) < page:
                return
            after = hits[-1]["sort"]

    # -- queries ---------------------------------------------------------------------------
    def _as_of_partition(self, as_of: int | None) -> int | None:
        """The partition an ``as_of`` query is restricted to (offsets are partition-local); refuses an
        ``as_of`` on the whole-log instance once the index holds partitioned documents."""
        if as_of is None or self.partition is not None:
            return None if as_of is None else self.partition
        mixed = self.es.count(index=self.versions_index, query={"exists": {"field": "partition"}})["count"]
        if mixed:
            raise InvalidRequest(
                f"{self.prefix}-versions holds a partitioned ledger's rows: an as-of offset is partition-local, "
                "query the partition's view instead"
            )
        return None

    @staticmethod
    def _filters(
        cubes: Sequence[str] | None,
        as_of: int | None,
        states: Iterable[str] | None,
        allowed: Collection[str] | None = None,
        scopes: Mapping[str, Collection[str]] | None = None,
        partition: int | None = None,
    ) -> list[dict]:
        out: list[dict[str, Any]] = [{"term": {"searchable": True}}]
        if partition is not None:
            out.append({"term": {"partition": partition}})
        for key, values in sorted((scopes or {}).items()):  # the scope keyword fields
            out.append({"terms": {key: sorted(values)}})
        if allowed is not None:
            out.append({"terms": {"memory_id": sorted(allowed)}})
        if as_of is None:  # current versions; ">= OPEN" also holds where numbers are doubles
            out.append({"range": {"valid_to": {"gte": OPEN}}})
        else:
            out += [{"range": {"valid_from": {"lte": int(as_of)}}}, {"range": {"valid_to": {"gt": int(as_of)}}}]
        if cubes is not None:
            out.append({"terms": {"cube": list(cubes)}})
        if states is not None:
            out.append({"terms": {"state": list(states)}})
        return out

    @unavailable_on(*_UNREACHABLE, what=_WHERE)
    def keyword_search(
        self,
        query: str,
        k: int,
        cubes: Sequence[str] | None = None,
        as_of: int | None = None,
        states: Iterable[str] | None = None,
    ) -> list[Hit]:
        """BM25 (Elasticsearch's default similarity) over the versions current at ``as_of``."""
        if k <= 0 or not query.strip() or (cubes is not None and not cubes):
            return []
        filters = self._filters(cubes, as_of, states, partition=self._as_of_partition(as_of))
        r = self.es.search(
            index=self.versions_index,
            size=k,
            source=["memory_id"],
            query={"bool": {"must": [{"match": {"text": query}}], "filter": filters}},
        )
        return [(h["_source"]["memory_id"], float(h["_score"])) for h in r["hits"]["hits"]]

    @unavailable_on(*_UNREACHABLE, what=_WHERE)
    def vector_search(
        self,
        query_vector: Sequence[float],
        k: int,
        cubes: Sequence[str] | None = None,
        as_of: int | None = None,
        states: Iterable[str] | None = None,
        allowed: Collection[str] | None = None,
        scopes: Mapping[str, Collection[str]] | None = None,
    ) -> list[Hit]:
        """Top ``k`` by cosine over the versions current at ``as_of``: HNSW candidates (float32, no quantisation),
        ``RESCORE_FACTOR`` per hit, rescored exactly from their stored vectors; scores are true cosines.

        ``allowed`` (memory ids) and ``scopes`` (scope key -> values, necessary conditions of a
        filter) filter inside the kNN search (Elasticsearch's pre-filtered kNN), so ``k`` hits
        come back whenever ``k`` allowed versions have a vector."""
        if allowed is not None and len(allowed) > MAX_TERMS:  # one kNN per chunk of ids; the best k of all
            ids = sorted(allowed)
            hits = [
                h
                for i in range(0, len(ids), MAX_TERMS)
                for h in self.vector_search(query_vector, k, cubes, as_of, states, ids[i : i + MAX_TERMS], scopes)
            ]
            return sorted(hits, key=lambda h: (-h[1], h[0]))[:k]
        if self.embedder is None:
            raise InvalidRequest(f"view {self.name!r} was built without an embedder; it has no vectors")
        if k <= 0 or (cubes is not None and not cubes):
            return []
        if len(query_vector) != int(self.embedder.dim):
            raise InvalidRequest(f"query vector has {len(query_vector)} dimensions; the view has {self.embedder.dim}")
        q = np.asarray(query_vector, dtype=np.float32).reshape(-1)
        if not np.all(np.isfinite(q)):
            raise InvalidRequest("query vector contains NaN or infinite values")
        candidates, num_candidates = rescore_window(k)
        filters = self._filters(cubes, as_of, states, allowed, scopes, self._as_of_partition(as_of))
        r = self.es.search(
            index=self.versions_index,
            size=candidates,
            source=["memory_id", "embedding"],
            knn={
                "field": "embedding",
                "query_vector": [float(x) for x in q],
                "k": candidates,
                "num_candidates": num_candidates,
                "filter": {"bool": {"filter": filters}},
            },
        )
        return exact_top_k(q, [(h["_source"]["memory_id"], h["_source"]["embedding"]) for h in r["hits"]["hits"]], k)

    def embed_query(self, text: str) -> Any:
        """The vector of a query text (the view's embedder)."""
        return self.embed_texts([text])[0]

    def embed_texts(self, texts: Sequence[str]) -> Any:
        """Vectors of arbitrary texts (rows L2-normalised), e.g. for a branch overlay."""
        if self.embedder is None:
            raise InvalidRequest(f"view {self.name!r} was built without an embedder")
        return self.embedder.embed(list(texts))

    @unavailable_on(*_UNREACHABLE, what=_WHERE)
    def text_vector_search(self, text: str, k: int, **kw: Any) -> list[Hit]:
        """Embed ``text`` with the view's embedder and run :meth:`vector_search`."""
        if self.embedder is None:
            raise InvalidRequest(f"view {self.name!r} was built without an embedder")
        return self.vector_search(list(self.embedder.embed([text])[0]), k, **kw)

    @unavailable_on(*_UNREACHABLE, what=_WHERE)
    def version_count(self) -> int:
        """Number of stored memory versions (all times)."""
        self.es.indices.refresh(index=self.versions_index)
        return int(self.es.count(index=self.versions_index)["count"])


def adapter_options(config: Any, adapter: str) -> dict[str, Any]:
    """Options of a distributed view adapter from ``memledger.toml``.

    Either the ``[views.<kind>]`` table that says ``adapter = "<adapter>"`` (the form the view set
    reads), or a ``[views.<adapter>]`` table.
    """
    views = config.section("views") if config is not None else {}
    for value in views.values():
        if isinstance(value, dict) and value.get("adapter") == adapter:
            return value
    value = views.get(adapter, {})
    return value if isinstance(value, dict) else {}


def _embedder_named(name: str | None) -> Any:
    if not name or name == "none":
        return None
    from projections.vector.setup import embedder_by_name

    return embedder_by_name(str(name))


def from_options(
    options: dict[str, Any],
    source: object,
    embedder: Any = None,
    opener: Opener | None = None,
    partition: int | None = None,
) -> ElasticsearchView:
    """Build the view from adapter options: ``url`` (or ``$MEMLEDGER_ES``), ``index_prefix``, ``embedder``,
    ``compatible_with`` (the REST API major the client asks for; see ``projections.es_compat``)."""
    import os

    url = os.environ.get("MEMLEDGER_ES") or options.get("url")
    if not url:
        raise InvalidRequest(
            'the elasticsearch view needs url = "http://host:9200" in [views.vector] '
            '(with adapter = "elasticsearch") or $MEMLEDGER_ES'
        )
    emb = embedder if embedder is not None else _embedder_named(options.get("embedder", "minilm"))
    return ElasticsearchView(
        str(url),
        source,
        index_prefix=str(options.get("index_prefix", "memledger")),
        embedder=emb,
        opener=opener,
        compatible_with=check_compatible_with(options.get("compatible_with", DEFAULT_COMPATIBLE_WITH)),
        partition=partition,
    )


def from_config(config: Any, source: object, embedder: Any = None, partition: int | None = None) -> ElasticsearchView:
    """The view configured in ``memledger.toml`` (see :func:`adapter_options`); ``partition``: the view of
    that partition, ``source`` then being a handle whose ``log`` is the partition's log."""
    opener = getattr(source, "opener", None)
    return from_options(adapter_options(config, "elasticsearch"), source, embedder, opener, partition)


def from_view_set(ledger: Any, views_dir: Any, options: dict[str, Any]) -> ElasticsearchView:
    """``projections.view_set`` adapter for ``[views.vector] adapter = "elasticsearch"``."""
    opts = options or adapter_options(ledger.config, "elasticsearch")
    return from_options(opts, ledger, opener=ledger.opener)
