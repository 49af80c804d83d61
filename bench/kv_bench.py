"""Time to first token with a cube's cached KV context vs re-prefilling it (SmolLM2-135M, CPU).

    python bench/kv_bench.py [--tokens 1000] [--repeats 7] [--threads N]

Builds a cube whose activated memories make a system prefix of about ``--tokens`` tokens,
stores its KV cache, then for the same user question measures (median of ``--repeats``,
interleaved so that background load affects every path alike):

* re-prefill: one forward pass over prefix + question, then the first token;
* cached (disk): load the cache from the store (safetensors, fresh tensors), prefill only the
  question on a copy of it, first token;
* cached (memory): the same with the cache already loaded (as the chat service keeps it).

It also checks that the first token and the logits agree between the paths.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def measure(model, target: int, question: list[int], repeats: int) -> tuple:
    """One row of the table: a cube with about ``target`` prefix tokens."""
    import torch

    from ledger.api import Ledger
    from ledger.backends.sqlite_log import SqliteLog
    from projections.kv_cache import KVCacheView, forward
    from projections.kv_store import KVStore

    with tempfile.TemporaryDirectory() as tmp:
        ledger = Ledger(SqliteLog(Path(tmp) / "log.sqlite", synchronous="OFF"))
        view = KVCacheView(ledger, KVStore(Path(tmp) / "kv"))
        i = 0
        while True:
            w = ledger.add(
                "bench",
                f"Note {i}: meeting room {i} (code R{i * 37 % 1000}) is on floor {i % 9} "
                f"and was booked by employee {i * 13 % 97} for the project review.",
                "bench",
            )
            ledger.change_state(w.id, "activated", "bench")
            i += 1
            if i % 10 == 0 and len(view.prefix_ids(model, "bench")[0]) >= target:
                break
        t = time.perf_counter()
        cache = view.get_or_build(model, "bench")
        build_s = time.perf_counter() - t
        prefix = cache.token_ids

        def full():
            logits, _ = forward(model, prefix + question, last_only=True)
            return int(torch.argmax(logits[0, -1]))

        def cached_disk():
            c = view.store.get(cache.key, model.model_id, model.tokenizer_id)
            logits, _ = forward(model, question, c, last_only=True)
            return int(torch.argmax(logits[0, -1]))

        def cached_mem():
            logits, _ = forward(model, question, cache, last_only=True)
            return int(torch.argmax(logits[0, -1]))

        # interleaved repeats, so background load hits every path alike
        fns = {"full": full, "disk": cached_disk, "mem": cached_mem}
        firsts = {k: fn() for k, fn in fns.items()}  # warm-up, and the first tokens
        times: dict[str, list[float]] = {k: [] for k in fns}
        for _ in range(repeats):
            for k, fn in fns.items():
                t0 = time.perf_counter()
                fn()
                times[k].append(time.perf_counter() - t0)
        a, _ = forward(model, question, cache)
        b, _ = forward(model, prefix + question)
        diff = (a[0] - b[0, len(prefix) :]).abs().max().item()
        if len(set(firsts.values())) != 1:
            raise SystemExit(f"first tokens differ between the paths: {firsts}")
        ledger.log.close()
        view.close()
        med = {k: statistics.median(v) for k, v in times.items()}
        return len(prefix), len(question), build_s, med["full"], med["disk"], med["mem"], diff, cache.nbytes()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, nargs="+", default=[1000], help="target prefix sizes")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--model", default="smollm2")
    args = ap.parse_args()

    import torch

    from ledger.llm import load_local_model
    from projections.kv_cache import assistant_start, format_block

    if args.threads:
        torch.set_num_threads(args.threads)
    t = time.perf_counter()
    model = load_local_model(args.model)
    print(f"model {model.model_id} loaded in {time.perf_counter() - t:.2f}s; torch threads {torch.get_num_threads()}")
    question = model.encode(
        format_block(model, "user", "Which floor is the meeting room Orion on, and who booked it?")
        + assistant_start(model)
    )
    rows = [measure(model, target, question, args.repeats) for target in args.tokens]
    print()
    print(
        "| prefix tokens | new tokens | re-prefill TTFT | cached TTFT (disk) | cached TTFT (memory) "
        "| speed-up disk | speed-up memory | max abs logit diff | cache size |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, q, _b, tf, td, tm, d, size in rows:
        print(
            f"| {n} | {q} | {tf * 1000:.0f} ms | {td * 1000:.0f} ms | {tm * 1000:.0f} ms | {tf / td:.1f}x "
            f"| {tf / tm:.1f}x | {d:.1e} | {size / 1e6:.1f} MB |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
