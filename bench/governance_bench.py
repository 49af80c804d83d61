"""Governance costs: sealing, Merkle tree over the log, checkpoints, proofs, verification, forget.

Run: python -m bench.governance_bench [--events N] [--subject-memories M]

Builds a log of N memory events (batches of 1,000, synchronous=NORMAL to build it quickly), then
times each governance operation once and prints a table. No timing is asserted anywhere.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from ledger.api import Ledger
from ledger.backends.sqlite_log import SqliteLog
from ledger.config import load_config
from ledger.events import NewEvent
from ledger.governance import verifier
from ledger.governance.checkpoints import Checkpoints
from ledger.governance.forget import forget
from ledger.governance.keystore_factory import open_cipher
from ledger.governance.log_tree import log_tree
from ledger.governance.proofs import consistency_proof, inclusion_proof


def _timed(rows: list[tuple[str, float, str]], name: str, fn, note: str = ""):  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    out = fn()
    rows.append((name, time.perf_counter() - t0, note))
    return out


def run(events: int, subject_memories: int) -> list[tuple[str, float, str]]:
    rows: list[tuple[str, float, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "memledger.toml").write_text("")
        config = load_config(d)
        cipher = open_cipher(config)
        log = SqliteLog(d / "log.sqlite", synchronous="NORMAL")
        ledger = Ledger(log, sealer=cipher, opener=cipher.open)
        ledger.config = config
        for start in range(0, events, 1000):
            log.append(
                [
                    NewEvent(
                        f"cube-{i % 16}",
                        "memory.added",
                        {"memory_id": f"m{i}", "text": f"memory number {i} about tea and travel"},
                        "bench",
                    )
                    for i in range(start, min(events, start + 1000))
                ]
            )
        n = subject_memories
        sealed = _timed(
            rows,
            f"seal {n} payloads",
            lambda: [cipher.seal("ada", {"text": f"secret {i}"}) for i in range(n)],
            "AES-256-GCM, per-subject key",
        )
        _timed(rows, f"open {n} payloads", lambda: [cipher.open(s) for s in sealed])
        _timed(
            rows,
            f"add {n} sealed memories",
            lambda: [ledger.add("crm", f"ada secret {i}", actor="bench", subject="ada") for i in range(n)],
        )
        size = log.head() + 1
        tree = _timed(rows, f"Merkle tree of {size} events", lambda: log_tree(log))
        cps = Checkpoints.for_config(config)
        _timed(rows, "checkpoint (tree + sign + store)", lambda: cps.create(log))
        ledger.add("crm", "one more", actor="bench")
        _timed(rows, "second checkpoint", lambda: cps.create(log))
        _timed(rows, "inclusion proof (incl. tree)", lambda: inclusion_proof(log, cps, size // 2, seq=1))
        doc = inclusion_proof(log, cps, size // 2, seq=1)
        pub = cps.signer.public_key()
        _timed(
            rows,
            "standalone verify inclusion",
            lambda: verifier.verify_document(json.loads(json.dumps(doc)), pub),
            f"{len(doc['audit_path'])} path hashes",
        )
        cdoc = consistency_proof(log, cps, 1, 2)
        _timed(rows, "standalone verify consistency", lambda: verifier.verify_document(cdoc, pub))
        _timed(rows, "verify chain", lambda: log.verify())
        _timed(rows, "verify 2 checkpoints (incl. tree)", lambda: cps.verify(log))
        report = _timed(
            rows,
            f"forget subject ({n} sealed memories)",
            lambda: forget(ledger, "ada", "bench"),
            "destroy key, record, scrub, residue scan",
        )
        assert report.complete, report.to_dict()
        del tree
        log.close()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--subject-memories", type=int, default=1_000)
    args = ap.parse_args()
    rows = run(args.events, args.subject_memories)
    print(f"governance benchmark: {args.events} plaintext events + {args.subject_memories} sealed memories")
    print(f"{'operation':<42} {'seconds':>9}  note")
    for name, dt, note in rows:
        print(f"{name:<42} {dt:>9.3f}  {note}")


if __name__ == "__main__":
    main()
