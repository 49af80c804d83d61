"""Governance costs: sealing every memory, erase and forget at scale, Merkle tree, checkpoints, proofs.

Run: python -m bench.governance_bench [--memories 100000] [--adds 100] [--repeats 40]

1. **Sealing every payload.** ``Ledger.add`` on the embedded default (a data directory: SQLite log,
   synchronous=FULL) with every memory sealed under a key of its own (the default) against the same
   adds in plaintext (a ledger without a key ring), in the same run: ``--repeats`` pairs of
   ``--adds`` adds each, alternating which goes first, so noise on a shared machine hits both
   alike; medians of the per-chunk rates. Target: sealing costs at most 15% of append throughput.
2. **Erase and forget at scale.** A data directory with ``--memories`` sealed memories (16 cubes)
   and its keyword and graph views caught up; then the wall time of erasing one memory, erasing
   100 memories in one batch, and forgetting a subject with 100 memories: destroy the keys, record
   the erasure, purge the views, scrub every database, scan for residue.
3. Merkle tree, checkpoint, proof and verification of that log (as before).

Prints tables; no timing is asserted anywhere.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ledger.api import Ledger, new_memory_id
from ledger.backends.sqlite_log import SqliteLog
from ledger.config import init_data_dir
from ledger.events import NewEvent
from ledger.factory import open_ledger
from ledger.governance import verifier
from ledger.governance.checkpoints import Checkpoints
from ledger.governance.erase import erase
from ledger.governance.forget import forget
from ledger.governance.log_tree import log_tree
from ledger.governance.proofs import consistency_proof, inclusion_proof
from projections.view_set import ViewSet

TARGET = 0.15
NO_VECTOR = '[views]\nvector = "none"\n'


def _adds_per_s(ledger: Ledger, n: int, tag: str) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        ledger.add(f"cube-{i % 8}", f"{tag} memory {i}: the user prefers tea in the afternoon", "bench")
    return n / (time.perf_counter() - t0)


def sealing_cost(root: Path, adds: int, repeats: int) -> dict[str, float]:
    """Median adds/s with every memory sealed vs plaintext, alternating within one run."""
    sealed_dir, _ = init_data_dir(root / "sealed")
    sealed = open_ledger(sealed_dir)
    plain = Ledger(SqliteLog(root / "plain.sqlite"))  # same SQLite settings as the data directory's log
    with_keys: list[float] = []
    without: list[float] = []
    _adds_per_s(sealed, 50, "warm")
    _adds_per_s(plain, 50, "warm")
    for r in range(repeats):
        pair = [(with_keys, sealed), (without, plain)]
        for out, led in pair if r % 2 == 0 else pair[::-1]:
            out.append(_adds_per_s(led, adds, f"r{r}"))
    sealed.log.close()
    plain.log.close()
    s, p = statistics.median(with_keys), statistics.median(without)
    return {"sealed": s, "plain": p, "cost": 1 - s / p}


def _build(root: Path, memories: int) -> Ledger:
    data, _ = init_data_dir(root / "big")
    (data / "memledger.toml").write_text(NO_VECTOR)
    led = open_ledger(data)
    batch: list[NewEvent] = []
    for i in range(memories):
        mid = new_memory_id()
        subject = "ada" if i < 100 else None
        text = f"memory {i} of cube {i % 16}: a fact about travel, tea and the weather on day {i}"
        payload: dict[str, Any] = {
            "memory_id": mid,
            "tags": [],
            "state": "generated",
            **led.content_fields(text, {"user_id": f"u{i % 50}"}, mid, [subject] if subject else []),
        }
        payload.setdefault("metadata", {})
        batch.append(NewEvent(f"cube-{i % 16}", "memory.added", payload, "bench"))
        if len(batch) == 1000:
            led.append(batch)
            batch = []
    if batch:
        led.append(batch)
    with ViewSet.open(led, kinds=("keyword", "graph")) as views:
        views.catch_up()
    return led


def _timed(rows: list[tuple[str, float, str]], name: str, fn: Callable[[], Any], note: str = "") -> Any:
    t0 = time.perf_counter()
    out = fn()
    rows.append((name, time.perf_counter() - t0, note))
    return out


def at_scale(root: Path, memories: int) -> list[tuple[str, float, str]]:
    rows: list[tuple[str, float, str]] = []
    led = _timed(rows, f"build {memories:,} sealed memories + keyword/graph views", lambda: _build(root, memories))
    ids = [m for m in led.cube_memories("cube-5")][:101]
    one = _timed(
        rows, "erase 1 memory", lambda: erase(led, ids[:1], "bench", "bench"), "destroy, record, purge, scrub, scan"
    )
    assert one.complete, one.to_dict()
    many = _timed(rows, "erase 100 memories (one batch)", lambda: erase(led, ids[1:101], "bench", "bench"))
    assert many.complete, many.to_dict()
    rep = _timed(rows, "forget a subject with 100 memories", lambda: forget(led, "ada", "bench"))
    assert rep.complete, rep.to_dict()
    log = led.log
    size = log.head() + 1
    _timed(rows, f"Merkle tree of {size:,} events", lambda: log_tree(log))
    config = led.config
    assert config is not None
    cps = Checkpoints.for_config(config)
    _timed(rows, "checkpoint (tree + sign + store)", lambda: cps.create(log))
    led.add("crm", "one more", "bench")
    cps.create(log)
    doc = _timed(rows, "inclusion proof (tree included)", lambda: inclusion_proof(log, cps, size // 2, seq=1))
    pub = cps.signer.public_key()
    _timed(rows, "standalone verify, inclusion", lambda: verifier.verify_document(json.loads(json.dumps(doc)), pub))
    _timed(
        rows, "standalone verify, consistency", lambda: verifier.verify_document(consistency_proof(log, cps, 1, 2), pub)
    )
    _timed(rows, f"verify chain ({size:,} events)", lambda: log.verify())
    log.close()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--memories", type=int, default=100_000)
    ap.add_argument("--adds", type=int, default=100, help="adds per chunk of the sealing comparison")
    ap.add_argument("--repeats", type=int, default=40, help="chunk pairs")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cost = sealing_cost(Path(tmp), args.adds, args.repeats)
        print(f"sealing every memory: Ledger.add, embedded default, {args.adds} adds x {args.repeats} (medians)")
        print(f"{'':<28} {'adds/s':>9}")
        print(f"{'plaintext (no key ring)':<28} {cost['plain']:>9.0f}")
        print(f"{'every memory sealed':<28} {cost['sealed']:>9.0f}")
        verdict = "within" if cost["cost"] <= TARGET else "OVER"
        print(f"cost of sealing: {cost['cost'] * 100:.1f}% of append throughput ({verdict} the {TARGET:.0%} ceiling)\n")
        rows = at_scale(Path(tmp), args.memories)
    print(f"erase, forget and tamper evidence at {args.memories:,} memories (one run each)")
    print(f"{'operation':<52} {'seconds':>9}  note")
    for name, dt, note in rows:
        print(f"{name:<52} {dt:>9.3f}  {note}")


if __name__ == "__main__":
    main()
