"""Do memories stay current as facts change? Generated fact-change cases through ingestion and extraction.

For each case (``bench/update_cases.py``, seeded): ingest its calls into a fresh cube of one data
directory, run the extractor to completion after each call (``ExtractionConsumer.catch_up``), then check

* ``latest``: the current memories state the new fact (for a negation: the negated one; for a
  retraction: nothing states the withdrawn fact any more) and no current memory still states the old one;
* ``history``: some version of some memory of the cube (superseded or deleted ones included) states the old fact;
* ``as_of``: the cube as of the offset just before the change states the old fact;
* ``noop`` (duplicates): the repeat was decided NOOP only and exactly one current memory states the fact.

A case passes when all of its checks do. Accuracy is reported per kind and check for each backend:
``rules`` on every case, ``local`` (SmolLM2, greedy) on a subsample (``--local N`` cases per kind).

Run: ``python -m bench.update_bench [--cases 350] [--seed 13] [--local 1] [--json]``
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.update_cases import KINDS, Case, generate_cases
from ledger.api import Ledger
from ledger.memos.extraction.base import Extractor
from ledger.memos.extraction.consumer import ExtractionConsumer, decisions_of
from ledger.memos.extraction.settings import ExtractionSettings

CHECKS = {
    "move": ("latest", "history", "as_of"),
    "job": ("latest", "history", "as_of"),
    "preference": ("latest", "history", "as_of"),
    "negation": ("latest", "history", "as_of"),
    "retraction": ("latest", "history", "as_of"),
    "duplicate": ("noop", "as_of"),
    "paraphrase": ("noop", "as_of"),
}
_NEG = re.compile(r"\b(?:not|no longer|never|doesn't|don't|isn't|n't)\b", re.I)


def open_bench_ledger(directory: Path) -> Ledger:
    """A data directory whose extraction runs only when the bench says so (``in_process = false``)."""
    from ledger.config import init_data_dir
    from ledger.factory import open_ledger

    d, _ = init_data_dir(directory)
    cfg = Path(d) / "memledger.toml"
    text = cfg.read_text()
    if "\n[extraction]\n" in text:
        text = text.replace("\n[extraction]\n", "\n[extraction]\nin_process = false\n", 1)
    else:
        text += "\n[extraction]\nin_process = false\n"
    cfg.write_text(text)
    return open_ledger(d)


def _words(text: str | None) -> set[str]:
    return set(re.findall(r"\w+", (text or "").lower()))


def _states(text: str | None, value: str) -> bool:
    """The text states the value positively."""
    return value.lower() in _words(text) and not _NEG.search(text or "")


def _negates(text: str | None, value: str) -> bool:
    return value.lower() in _words(text) and bool(_NEG.search(text or ""))


def _current(led: Ledger, cube: str, as_of: int | None = None) -> list[str]:
    if not led.cube_exists(cube):
        return []
    return [m.text or "" for m in led.cube_memories(cube, as_of).values() if not m.deleted]


def _all_versions(led: Ledger, track: str, cube: str) -> list[str]:
    ids = {  # the track is this case's alone: every memory its decisions wrote or named
        mid
        for e in decisions_of(led, track)
        for d in e.payload["decisions"]
        for mid in (d.get("memory_id"), d.get("target"))
        if mid
    }
    texts = []
    for mid in sorted(ids):
        try:
            versions = led.history(mid, record_read=False)
        except Exception:  # noqa: BLE001 - a memory of another cube, or gone: not this case's
            continue
        texts += [v.text or "" for v in versions if v.cube == cube]
    return texts


def run_case(
    led: Ledger, extractor: Extractor, case: Case, tag: str, settings: ExtractionSettings | None = None
) -> tuple[dict[str, bool], dict[str, Any]]:
    """Ingest one case, extract, and evaluate its checks; also return what the memories said."""
    cube = f"u-{case.case_id}-{tag}"
    consumer = ExtractionConsumer(led, extractor, settings, track=cube, cube=cube)
    before_change = -1
    for i, call in enumerate(case.turns):
        if i == len(case.turns) - 1:
            before_change = led.head()
        led.ingest(cube, list(call), "bench", user_id=case.speaker.lower())
        consumer.catch_up()
    now = _current(led, cube)
    then = _current(led, cube, before_change)
    checks: dict[str, bool] = {}
    old = case.old
    if "as_of" in CHECKS[case.kind]:
        checks["as_of"] = any(_states(t, old) for t in then)
    if "history" in CHECKS[case.kind]:
        checks["history"] = any(_states(t, old) for t in _all_versions(led, consumer.track, cube))
    if case.kind in ("move", "job", "preference"):
        assert case.new is not None
        new = case.new
        checks["latest"] = any(_states(t, new) for t in now) and not any(_states(t, old) for t in now)
    elif case.kind == "negation":
        checks["latest"] = any(_negates(t, old) for t in now) and not any(_states(t, old) for t in now)
    elif case.kind == "retraction":
        checks["latest"] = not any(_states(t, old) for t in now)
    elif case.kind in ("duplicate", "paraphrase"):
        last = list(decisions_of(led, consumer.track))[-1].payload["decisions"]
        single = sum(1 for t in now if _states(t, old)) == 1
        checks["noop"] = bool(last) and all(d["kind"] == "NOOP" for d in last) and single
    return checks, {"now": now, "then": then}


def run_backend(
    led: Ledger, extractor: Extractor, cases: Sequence[Case], tag: str, similarity: str = "hybrid"
) -> dict[str, Any]:
    """Accuracy per kind and check (and overall) of ``extractor`` on ``cases`` (reconciling with ``similarity``)."""
    settings = ExtractionSettings(similarity=similarity)
    per: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    examples: dict[str, Any] = {}
    start = time.perf_counter()
    for case in cases:
        checks, seen = run_case(led, extractor, case, tag, settings)
        for name, ok in checks.items():
            per[case.kind][name].append(ok)
        per[case.kind]["case"].append(all(checks.values()))
        if not all(checks.values()) and case.kind not in examples:
            examples[case.kind] = {"case": case.case_id, "turns": [m["content"] for c in case.turns for m in c], **seen}
    seconds = time.perf_counter() - start
    table = {
        kind: {name: round(sum(v) / len(v), 3) for name, v in checks.items()} | {"n": len(checks["case"])}
        for kind, checks in sorted(per.items(), key=lambda kv: KINDS.index(kv[0]))
    }
    total = [ok for checks in per.values() for ok in checks["case"]]
    return {
        "by_kind": table,
        "overall": round(sum(total) / len(total), 3) if total else 0.0,
        "cases": len(total),
        "seconds": round(seconds, 1),
        "first_failure_by_kind": examples,
    }


def format_table(name: str, result: dict[str, Any]) -> str:
    cols = ("n", "case", "latest", "history", "as_of", "noop")
    lines = [f"{name}: {result['cases']} cases, {result['seconds']} s, all checks pass: {result['overall']:.3f}"]
    lines.append(f"  {'kind':<11}" + "".join(f"{c:>9}" for c in cols))
    for kind, row in result["by_kind"].items():
        cells = "".join(f"{row[c]:>9}" if c == "n" else (f"{row[c]:>9.3f}" if c in row else f"{'-':>9}") for c in cols)
        lines.append(f"  {kind:<11}{cells}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.update_bench", description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=350)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--local", type=int, default=0, help="also run the local model on N cases of each kind")
    ap.add_argument("--local-model", default="smollm2")
    ap.add_argument("--max-new-tokens", type=int, default=160)
    ap.add_argument("--threads", type=int, default=1, help="torch threads for the local model")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.cases < len(KINDS):
        print(f"error: --cases must be at least {len(KINDS)}", file=sys.stderr)
        return 2
    from ledger.memos.extraction.registry import build_extractor

    cases = generate_cases(args.cases, args.seed)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="memledger-update-") as tmp:
        led = open_bench_ledger(Path(tmp) / "data")
        try:
            results["rules"] = run_backend(led, build_extractor("rules"), cases, "rules")
            results["rules, lexical similarity only"] = run_backend(
                led, build_extractor("rules"), cases, "rules-lexical", "lexical"
            )
            if args.local:
                import torch

                torch.set_num_threads(args.threads)
                sub = [c for kind in KINDS for c in [c for c in cases if c.kind == kind][: args.local]]
                local = build_extractor("local", {"model": args.local_model, "max_new_tokens": args.max_new_tokens})
                results["local"] = run_backend(led, local, sub, "local")
                results["rules, same subsample"] = run_backend(led, build_extractor("rules"), sub, "rules-sub")
        finally:
            led.log.close()
    if args.json:
        import json

        print(json.dumps(results, indent=1))
    else:
        print(f"bench/update_bench.py: {args.cases} generated cases (seed {args.seed})")
        for name, result in results.items():
            print(format_table(name, result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
