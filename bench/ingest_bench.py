"""Ingest latency (append only) next to plain add, and rules extraction throughput, in one run.

Run: python -m bench.ingest_bench [--calls 300] [--messages 2] [--rounds 3]

One fresh data directory per round (key store on: every payload sealed, as the CLI has). Each
round times ``--calls`` sequential ``Ledger.ingest`` calls of ``--messages`` messages (one user
turn stating two facts, then assistant turns) and, in the same round on another cube,
``--calls`` sequential ``Ledger.add`` calls of one memory each (the peer: the cheapest durable
write); the extractor is not waited for. Then the rules extractor catches up over everything
ingested (in-process consumer: read, extract, reconcile against the scope's memories, append the
decision batch). The table shows medians over the rounds.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from ledger.memos.extraction.runtime import consumer_for
from tests.ledgers import data_ledger

PLACES = ("Oslo", "Porto", "Lisbon", "Kyoto", "Berlin", "Quito", "Accra", "Hanoi")
FOODS = ("tea", "coffee", "pork", "rice", "olives", "cheese", "figs", "kale")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _turn(i: int, n: int) -> list[dict[str, str]]:
    said = f"I live in {PLACES[i % len(PLACES)]} {i}. I like {FOODS[(i * 3) % len(FOODS)]} {i}."
    out = [{"role": "user", "content": said, "name": "Alice", "timestamp": "2024-05-01T10:00:00Z"}]
    out += [{"role": "assistant", "content": f"Noted ({i}.{k})."} for k in range(1, n)]
    return out


def one_round(calls: int, messages: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        led = data_ledger(Path(tmp) / "data")
        ingest, add = [], []
        for i in range(calls):
            t = time.perf_counter()
            led.ingest("chat", _turn(i, messages), "bench", user_id="alice")
            ingest.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            led.add("plain", f"memory {i}: Alice likes {FOODS[i % len(FOODS)]} number {i}", "bench")
            add.append((time.perf_counter() - t) * 1000)
        consumer = consumer_for(led)
        t = time.perf_counter()
        n = consumer.catch_up()
        took = time.perf_counter() - t
        facts = len(led.cube_memories("chat"))
        led.log.close()
    return {
        "ingest_p50": _pct(ingest, 0.5),
        "ingest_p99": _pct(ingest, 0.99),
        "add_p50": _pct(add, 0.5),
        "add_p99": _pct(add, 0.99),
        "messages_per_s": n / took,
        "ms_per_message": took * 1000 / n,
        "facts": facts,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--messages", type=int, default=2, help="messages per ingest call")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    rounds = [one_round(args.calls, args.messages) for _ in range(args.rounds)]
    med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    print(f"{args.calls} calls x {args.rounds} rounds, {args.messages} messages per ingest call (medians)")
    print("| write | p50 ms | p99 ms |")
    print("|---|---|---|")
    label = f"`Ledger.ingest` ({args.messages} messages, append only)"
    print(f"| {label} | {med['ingest_p50']:.2f} | {med['ingest_p99']:.2f} |")
    print(f"| `Ledger.add` (1 memory, peer) | {med['add_p50']:.2f} | {med['add_p99']:.2f} |")
    print(
        f"rules extraction: {med['messages_per_s']:.0f} messages/s ({med['ms_per_message']:.2f} ms per message), "
        f"{med['facts']:.0f} memories from {args.calls * args.messages} messages"
    )


if __name__ == "__main__":
    main()
