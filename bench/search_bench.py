"""Hybrid search benchmark: rebuild throughput of all views, search latency at head and as-of, RSS.

Synthetic corpus: ``--memories`` memories in ``--cubes`` cubes, 8-20 words each drawn from a
Zipf-distributed 20,000-word vocabulary plus a few capitalised names (so the graph view has
entities), 5% of them later updated and 2% archived. Vectors are deterministic clustered unit
vectors pre-filled in the embedding cache under a synthetic model id; the bench embedder refuses
to embed, which proves the rebuild never re-embeds. Query embedding is excluded from latency
(queries pass precomputed vectors), as the issue asks.

    python bench/search_bench.py [--memories 100000] [--queries 300] [--cubes 1] [--writes 200]
"""

from __future__ import annotations

import argparse
import gc
import itertools
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.vector_bench import DIM, CachedOnlyEmbedder, rss_mb  # noqa: E402
from ledger import events as ev  # noqa: E402
from ledger.api import Ledger  # noqa: E402
from ledger.backends.sqlite_log import SqliteLog  # noqa: E402
from ledger.events import NewEvent  # noqa: E402
from projections.base import catch_up, rebuild  # noqa: E402
from projections.graph_view import GraphView  # noqa: E402
from projections.retrieval import Retriever  # noqa: E402
from projections.text_view import KeywordView  # noqa: E402
from projections.vector.embedding_cache import EmbeddingCache, text_hash  # noqa: E402
from projections.vector.view import VectorView  # noqa: E402

NAMES = [
    "Alice",
    "Bruno",
    "Chen",
    "Dara",
    "Emeka",
    "Farah",
    "Goran",
    "Hana",
    "Ivo",
    "Jun",
    "Kofi",
    "Lena",
    "Mateo",
    "Nadia",
    "Oskar",
    "Priya",
    "Quinn",
    "Rosa",
    "Sami",
    "Tomas",
]
PLACES = ["Lisbon", "Oslo", "Nairobi", "Kyoto", "Lima", "Austin", "Porto", "Hanoi", "Dakar", "Quebec"]


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def make_vocab(rng: np.random.Generator, n: int = 20_000) -> list[str]:
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    words = set()
    while len(words) < n:
        words.add("".join(rng.choice(letters, rng.integers(4, 10))))
    return sorted(words)


def corpus(n: int, seed: int = 3) -> list[str]:
    rng = np.random.default_rng(seed)
    vocab = np.array(make_vocab(rng))
    ranks = np.arange(1, len(vocab) + 1)
    p = 1.0 / ranks**1.05
    p /= p.sum()
    lengths = rng.integers(8, 21, n)
    words = vocab[rng.choice(len(vocab), int(lengths.sum()), p=p)]
    names = rng.integers(0, len(NAMES), n)
    places = rng.integers(0, len(PLACES), n)
    where = rng.integers(0, 1000, n)
    texts, pos = [], 0
    for i in range(n):
        ws = list(words[pos : pos + lengths[i]])
        pos += lengths[i]
        ws.insert(int(where[i] % len(ws)), NAMES[names[i]])
        if i % 3 == 0:
            ws.append("in " + PLACES[places[i]])
        texts.append(" ".join(ws) + f" #{i}")
    return texts


def vectors_for(n: int, seed: int = 7, clusters: int = 500) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, DIM), dtype=np.float32)
    v = centres[rng.integers(0, clusters, n)] + 0.6 * rng.standard_normal((n, DIM), dtype=np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v


def populate(ledger: Ledger, texts: list[str], updates: list[str], cubes: int) -> None:
    n = len(texts)
    rng = np.random.default_rng(11)
    batch: list[NewEvent] = []
    for i, t in enumerate(texts):
        batch.append(NewEvent(f"cube{i % cubes}", ev.MEMORY_ADDED, {"memory_id": f"m{i}", "text": t}, "bench"))
        if len(batch) >= 5000:
            ledger.log.append(batch)
            batch = []
    for j, t in enumerate(updates):
        i = int(rng.integers(0, n))
        batch.append(NewEvent(f"cube{i % cubes}", ev.MEMORY_UPDATED, {"memory_id": f"m{i}", "text": t}, "bench"))
        if j % 2 == 0:
            i2 = int(rng.integers(0, n))
            batch.append(
                NewEvent(
                    f"cube{i2 % cubes}",
                    ev.MEMORY_STATE_CHANGED,
                    {"memory_id": f"m{i2}", "from": "generated", "to": "archived"},
                    "bench",
                )
            )
    ledger.log.append(batch)


def percentile(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--memories", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--cubes", type=int, default=1)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--writes", type=int, default=200, help="queries measured under a write stream")
    args = ap.parse_args()

    n = args.memories
    texts = corpus(n)
    updates = [t + " revised" for t in corpus(n // 20, seed=5)]
    all_texts = texts + updates
    vecs = vectors_for(len(all_texts))
    with tempfile.TemporaryDirectory(prefix="memledger-search-bench-") as tmp:
        d = Path(tmp)
        ledger = Ledger(SqliteLog(d / "log.sqlite", synchronous="OFF"))
        populate(ledger, texts, updates, args.cubes)
        head = ledger.head()
        events = head + 1
        cache = EmbeddingCache(d / "views" / "embedding_cache.sqlite")
        cache.put_many(CachedOnlyEmbedder.model_id, ((text_hash(t), v) for t, v in zip(all_texts, vecs, strict=True)))
        kw = KeywordView(d / "views" / "keyword.sqlite")
        graph = GraphView(d / "views" / "graph.sqlite")
        vec = VectorView(d / "views" / "vector.sqlite", CachedOnlyEmbedder(), cache=cache)
        rows = []
        total = 0.0
        for view in (kw, graph, vec):
            gc.collect()
            t0 = time.perf_counter()
            rebuild(ledger.events, view)
            dt = time.perf_counter() - t0
            total += dt
            rows.append((view.name, dt, events / dt))
        if hasattr(vec, "build_index"):
            t0 = time.perf_counter()
            vec.build_index()
            index_s = time.perf_counter() - t0
        else:
            index_s = float("nan")

        print(f"\n## rebuild: {n:,} memories, {events:,} events (adds, {len(updates):,} updates, archivals)")
        print(f"{'view':<10} {'seconds':>9} {'events/s':>11}")
        for name, dt, rate in rows:
            print(f"{name:<10} {dt:>9.2f} {rate:>11,.0f}")
        print(
            f"{'all views':<10} {total:>9.2f} {events / total:>11,.0f}   (sequential; + ANN index build "
            f"{index_s:.2f} s)"
        )

        rng = np.random.default_rng(42)
        qidx = rng.integers(0, n, args.queries)
        queries = []
        for i in qidx:
            words = texts[int(i)].split()[:-1]
            pick = rng.choice(len(words), min(3, len(words)), replace=False)
            queries.append(" ".join(words[j] for j in sorted(pick)))
        qvecs = vecs[qidx] + 0.05 * rng.standard_normal((args.queries, DIM)).astype(np.float32)
        retr = Retriever(kw, vec, graph, embed_query=lambda q: (_ for _ in ()).throw(AssertionError("no embed")))
        mid = head // 2
        cubes = None if args.cubes == 1 else ["cube0"]
        for q, qv in zip(queries[:10], qvecs[:10], strict=True):  # warm-up
            retr.search(q, cubes, args.k, None, query_vector=qv)
            retr.search(q, cubes, args.k, mid, query_vector=qv)
        results = {}
        for label, as_of in (("head", None), (f"as of {mid}", mid)):
            for mode in ("hybrid", "keyword"):
                lat = []
                for q, qv in zip(queries, qvecs, strict=True):
                    t0 = time.perf_counter()
                    if mode == "hybrid":
                        retr.search(q, cubes, args.k, as_of, query_vector=qv)
                    else:
                        kw.keyword_search(q, args.k, cubes, as_of, ["generated", "activated", "frozen"])
                    lat.append((time.perf_counter() - t0) * 1000)
                results[(label, mode)] = lat
        # a steady write stream: one new memory between queries (views caught up before each query,
        # the catch-up is not timed): caches must follow the writes instead of starting cold
        stream = corpus(args.writes, seed=13)
        svecs = vectors_for(len(stream), seed=17)
        cache.put_many(CachedOnlyEmbedder.model_id, ((text_hash(t), v) for t, v in zip(stream, svecs, strict=True)))
        for label in ("hybrid", "keyword"):
            results[(f"{label} writes", "")] = []
        for i, (text, q, qv) in enumerate(zip(stream, itertools.cycle(queries), itertools.cycle(qvecs))):
            ledger.log.append([NewEvent("cube0", ev.MEMORY_ADDED, {"memory_id": f"w{i}", "text": text}, "bench")])
            for view in (kw, graph, vec):
                catch_up(ledger.events, view)
            t0 = time.perf_counter()
            retr.search(q, cubes, args.k, None, query_vector=qv)
            results[("hybrid writes", "")].append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            kw.keyword_search(q, args.k, cubes, None, ["generated", "activated", "frozen"])
            results[("keyword writes", "")].append((time.perf_counter() - t0) * 1000)
        scope = "all cubes" if cubes is None else f"cube0 of {args.cubes}"
        print(f"\n## search latency, {args.queries} queries, k={args.k}, {scope}, query embedding excluded (ms)")
        print(f"{'when':<14} {'mode':<8} {'p50':>8} {'p90':>8} {'p99':>8} {'mean':>8}")
        for (label, mode), lat in results.items():
            if not mode:  # measured under writes
                label, mode = "head, 1 add", label.split()[0]
            print(
                f"{label:<14} {mode:<8} {percentile(lat, 50):>8.2f} {percentile(lat, 90):>8.2f} "
                f"{percentile(lat, 99):>8.2f} {np.mean(lat):>8.2f}"
            )
        print(f"('head, 1 add': {args.writes} queries, each after one new memory was added and folded into every view)")
        ratio = percentile(results[(f"as of {mid}", "hybrid")], 50) / percentile(results[("head", "hybrid")], 50)
        print(f"\nas-of / head (hybrid p50): {ratio:.2f}x")
        sizes = {p.name: p.stat().st_size for p in (d / "views").iterdir()}
        print(f"resident memory: {rss_mb():.0f} MB now, {peak_rss_mb():.0f} MB peak (process incl. corpus generation)")
        print("view files: " + ", ".join(f"{k} {v / 1e6:.0f} MB" for k, v in sorted(sizes.items()) if v > 1e6))
        for v in (kw, graph, vec):
            v.close()
        ledger.log.close()


if __name__ == "__main__":
    main()
