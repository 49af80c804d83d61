"""Vector view benchmark: rebuild throughput with cached embeddings, search latency, as-of vs head, RSS.

Synthetic data, so the benchmark measures the view and not the model: texts are
"memory <i> ..." and their vectors are deterministic clustered unit vectors, pre-filled into the
embedding cache under the model id ``bench-synthetic-384`` (the bench embedder refuses to embed,
which proves the rebuild never re-embeds). Query embedding is excluded from search latency.

    python bench/vector_bench.py [--memories 100000] [--queries 300]
"""

from __future__ import annotations

import argparse
import gc
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ledger import events as ev  # noqa: E402
from ledger.api import Ledger  # noqa: E402
from ledger.backends.sqlite_log import SqliteLog  # noqa: E402
from ledger.events import NewEvent  # noqa: E402
from projections.base import rebuild  # noqa: E402
from projections.vector.embedding_cache import EmbeddingCache, text_hash  # noqa: E402
from projections.vector.view import VectorView  # noqa: E402

DIM = 384


class CachedOnlyEmbedder:
    """The bench model: every vector is pre-filled in the cache; embedding anything is an error."""

    model_id = "bench-synthetic-384"
    dim = DIM

    def embed(self, texts):
        raise AssertionError(f"the benchmark must not embed ({len(texts)} texts missed the cache)")


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def synthetic_vectors(n: int, seed: int = 7, clusters: int = 500) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, DIM), dtype=np.float32)
    v = centres[rng.integers(0, clusters, n)] + 0.6 * rng.standard_normal((n, DIM), dtype=np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


SERVE = """
import sys, time, numpy as np
sys.path.insert(0, sys.argv[2])
from vector_bench import CachedOnlyEmbedder, rss_mb
from projections.vector.embedding_cache import EmbeddingCache
from projections.vector.view import VectorView
from pathlib import Path
work = Path(sys.argv[1])
before = rss_mb()
view = VectorView(work / "vector.sqlite", CachedOnlyEmbedder(), cache=EmbeddingCache(work / "embedding_cache.sqlite"))
t = time.perf_counter()
rng = np.random.default_rng(11)
for q in rng.standard_normal((50, 384)).astype(np.float32):
    view.vector_search(q / np.linalg.norm(q), 10)
print(f"{rss_mb() - before:.0f} {rss_mb():.0f} {time.perf_counter() - t:.2f}")
"""


def serving_process_rss(work: Path) -> tuple[float, float, float]:
    """(RSS added by the view, total RSS, seconds for open + index load + 50 queries) in a fresh process."""
    import subprocess

    out = subprocess.run(
        [sys.executable, "-c", SERVE, str(work), str(Path(__file__).resolve().parent)],
        capture_output=True,
        text=True,
        check=True,
        env={**__import__("os").environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    ).stdout.split()
    return float(out[0]), float(out[1]), float(out[2])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--memories", type=int, default=100_000)
    ap.add_argument("--updates", type=float, default=0.1, help="fraction of memories updated once (new text)")
    ap.add_argument("--cubes", type=int, default=50)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--dir", default=None, help="working directory (default: a temporary one)")
    args = ap.parse_args()

    work = Path(args.dir or tempfile.mkdtemp(prefix="vector-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    n, n_upd = args.memories, int(args.memories * args.updates)
    texts = [f"memory {i} about topic {i % 977}" for i in range(n)] + [
        f"memory {i} revised, topic {i % 613}" for i in range(n_upd)
    ]
    vecs = synthetic_vectors(len(texts))

    t = time.perf_counter()
    cache = EmbeddingCache(work / "embedding_cache.sqlite")
    emb = CachedOnlyEmbedder()
    cache.put_many(emb.model_id, zip([text_hash(x) for x in texts], vecs, strict=True))
    t_cache = time.perf_counter() - t

    # the log: n adds, then n_upd updates and n_upd // 2 state changes, in batches
    t = time.perf_counter()
    log = SqliteLog(work / "log.sqlite", synchronous="OFF")
    batch: list[NewEvent] = []
    rng = np.random.default_rng(1)

    def flush() -> None:
        if batch:
            log.append(batch)
            batch.clear()

    for i in range(n):
        batch.append(
            NewEvent(
                f"cube{i % args.cubes}",
                ev.MEMORY_ADDED,
                {"memory_id": f"m{i}", "text": texts[i], "tags": [], "metadata": {"i": i}, "state": "generated"},
                "bench",
            )
        )
        if len(batch) >= 2000:
            flush()
    flush()
    mid_offset = log.head()  # the as-of point: after every add, before any update
    for j, i in enumerate(rng.choice(n, n_upd, replace=False)):
        batch.append(
            NewEvent(f"cube{i % args.cubes}", ev.MEMORY_UPDATED, {"memory_id": f"m{i}", "text": texts[n + j]}, "bench")
        )
        if j % 2 == 0:
            batch.append(
                NewEvent(
                    f"cube{i % args.cubes}",
                    ev.MEMORY_STATE_CHANGED,
                    {"memory_id": f"m{i}", "from": "generated", "to": "activated"},
                    "bench",
                )
            )
        if len(batch) >= 2000:
            flush()
    flush()
    head = log.head()
    t_log = time.perf_counter() - t
    ledger = Ledger(log, record_reads=False)

    events = list(ledger.events())  # for the view-only figure
    view = VectorView(work / "vector.sqlite", emb, cache=cache)

    gc.collect()
    t = time.perf_counter()
    view.reset()
    for i in range(0, len(events), 2000):
        view.apply_batch(events[i : i + 2000])
    t_apply = time.perf_counter() - t
    del events
    gc.collect()

    t = time.perf_counter()
    rebuild(ledger.events, view)
    t_rebuild = time.perf_counter() - t

    t = time.perf_counter()
    view._columns()  # loads the in-memory search columns
    t_load = time.perf_counter() - t

    t = time.perf_counter()
    index_info = view.build_index()
    t_index = time.perf_counter() - t

    qrng = np.random.default_rng(3)
    queries = vecs[qrng.integers(0, len(vecs), args.queries)] + 0.3 * qrng.standard_normal(
        (args.queries, DIM), dtype=np.float32
    )
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)

    def timed(**kw) -> list[float]:
        out = []
        for q in queries:
            t0 = time.perf_counter()
            view.vector_search(q, args.k, **kw)
            out.append((time.perf_counter() - t0) * 1000)
        return out

    def timed_pair() -> tuple[list[float], list[float]]:
        """Head and as-of latency, interleaved query by query so machine load hits both alike."""
        head, past = [], []
        for q in queries:
            for out, kw in ((head, {}), (past, {"as_of": mid_offset})):
                t0 = time.perf_counter()
                view.vector_search(q, args.k, **kw)
                out.append((time.perf_counter() - t0) * 1000)
        return head, past

    timed_pair()  # warm-up
    head_ms, asof_ms = timed_pair()
    cube_ms = timed(cubes=["cube3"])
    state_ms = timed(states=["activated"])
    mode = view.ann_mode
    default_hits = [view.vector_search(q, args.k) for q in queries]
    default_asof = [view.vector_search(q, args.k, as_of=mid_offset) for q in queries]
    view.ann_mode = None  # exact scoring of every candidate, for comparison
    exact_ms, exact_asof_ms = timed_pair()
    recall = np.mean(
        [
            len({m for m, _ in a} & {m for m, _ in view.vector_search(q, args.k)}) / args.k
            for a, q in zip(default_hits, queries, strict=True)
        ]
    )
    recall_asof = np.mean(
        [
            len({m for m, _ in a} & {m for m, _ in view.vector_search(q, args.k, as_of=mid_offset)}) / args.k
            for a, q in zip(default_asof, queries, strict=True)
        ]
    )
    view.ann_mode = mode
    stats = view.stats()
    index_desc = view.ann_description()
    view.close()  # persists the index; a fresh process then serves queries from the files
    served = serving_process_rss(work)

    rows = [
        ("memories / events", f"{n:,} / {head + 1:,} ({n_upd:,} updates, {n_upd // 2 + n_upd % 2:,} state changes)"),
        ("versions / distinct vectors", f"{stats['versions']:,} / {stats['vectors']:,}"),
        ("pre-fill cache", f"{t_cache:.1f} s"),
        ("write log (sqlite, sync off)", f"{t_log:.1f} s"),
        ("apply events -> view (in-memory events)", f"{(head + 1) / t_apply:,.0f} events/s ({t_apply:.1f} s)"),
        ("rebuild from the log (read + upcast + apply)", f"{(head + 1) / t_rebuild:,.0f} events/s ({t_rebuild:.1f} s)"),
        ("load search columns from the view file", f"{t_load * 1000:.0f} ms"),
        ("build + persist HNSW index", f"{t_index:.1f} s ({index_info.get('vectors', 0):,} vectors)"),
        (f"search head k={args.k} p50 / p99", f"{pct(head_ms, 50):.2f} / {pct(head_ms, 99):.2f} ms"),
        (f"search as-of {mid_offset} p50 / p99", f"{pct(asof_ms, 50):.2f} / {pct(asof_ms, 99):.2f} ms"),
        ("as-of / head (p50)", f"{pct(asof_ms, 50) / pct(head_ms, 50):.2f}x"),
        ("search one cube p50 / p99", f"{pct(cube_ms, 50):.2f} / {pct(cube_ms, 99):.2f} ms"),
        ("search state=activated p50 / p99", f"{pct(state_ms, 50):.2f} / {pct(state_ms, 99):.2f} ms"),
        (f"recall@{args.k} vs exact: head / as-of", f"{recall:.3f} / {recall_asof:.3f}"),
        ("exact-only search head p50 / p99", f"{pct(exact_ms, 50):.2f} / {pct(exact_ms, 99):.2f} ms"),
        ("exact-only search as-of p50 / p99", f"{pct(exact_asof_ms, 50):.2f} / {pct(exact_asof_ms, 99):.2f} ms"),
        (
            "query process: RSS of view / total; open+50 queries",
            f"{served[0]:.0f} MB / {served[1]:.0f} MB; {served[2]:.1f} s",
        ),
        (
            "bench process RSS now / peak (holds the synthetic data too)",
            f"{rss_mb():.0f} MB / {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB",
        ),
        ("view file", f"{(work / 'vector.sqlite').stat().st_size / 1e6:.0f} MB"),
        ("index", index_desc),
    ]
    w = max(len(a) for a, _ in rows)
    print(f"vector view benchmark ({work})")
    for a, b in rows:
        print(f"  {a.ljust(w)}  {b}")
    cache.close()
    log.close()


if __name__ == "__main__":
    main()
