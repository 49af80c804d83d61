"""LoCoMo evidence-retrieval benchmark (LLM-free): ingest conversations, rank turns, score.

Each conversation becomes one cube; each dialog turn one memory, written as
``(session date) Speaker said, "text"`` (plus ``and shared <image caption>`` when the turn had
a picture), with ``dia_id``/``session``/``speaker`` metadata, and consecutive turns of a session
are joined by ``memory.linked`` ``next_turn`` edges (the graph view's adjacency). For every
question of categories 1-4 the conversation's turns are ranked with hybrid search and scored:
evidence recall@k = |top-k ∩ evidence| / |evidence|, and the reciprocal rank of the first
evidence turn (MRR). Data: Maharana et al., ACL 2024 (CC BY-NC 4.0); never copied here.

Run: ``HF_HUB_OFFLINE=1 python -m bench.locomo --dataset ../shared/data/locomo-dev.json [--json]
[--no-vector] [--embedder minilm|hashing] [--workdir DIR]``
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from ledger import events as ev
from ledger.api import Ledger
from ledger.errors import InvalidRequest, LedgerError
from ledger.events import NewEvent

CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}
KS = (1, 5, 10)
DEPTH = 50  # ranks looked at for MRR
_DIA = re.compile(r"D\s*:?\s*(\d+)\s*:\s*(\d+)")


def load_dataset(path: str | Path) -> list[dict[str, Any]]:
    """Read a LoCoMo-format JSON file (a list of samples); clear errors for anything else."""
    p = Path(path)
    if not p.exists():
        raise InvalidRequest(f"dataset {p} does not exist")
    try:
        data = orjson.loads(p.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"dataset {p} is not JSON: {exc}") from None
    if not isinstance(data, list) or not all(isinstance(s, dict) and "conversation" in s and "qa" in s for s in data):
        raise InvalidRequest(f"dataset {p} is not LoCoMo format: expected a list of samples with conversation and qa")
    return data


def normalise_evidence(raw: Iterable[Any]) -> list[str]:
    """Evidence ids as ``D<session>:<turn>``, repairing known defects ('D8:6; D9:17', 'D:11:26', 'D30:05')."""
    out: list[str] = []
    for item in raw:
        for m in _DIA.finditer(str(item)):
            dia = f"D{int(m.group(1))}:{int(m.group(2))}"
            if dia not in out:
                out.append(dia)
    return out


def sessions(conversation: Mapping[str, Any]) -> list[tuple[int, str, list[dict[str, Any]]]]:
    """(session number, date text, turns) in session order."""
    out = []
    for key, turns in conversation.items():
        m = re.fullmatch(r"session_(\d+)", key)
        if m and isinstance(turns, list):
            out.append((int(m.group(1)), str(conversation.get(f"{key}_date_time", "")), turns))
    return sorted(out, key=lambda s: s[0])


def format_turn(date: str, turn: Mapping[str, Any]) -> str:
    """``(date) Speaker said, "text"`` and the image caption, if the turn shared one."""
    text = f'({date}) {turn.get("speaker", "someone")} said, "{turn.get("text", "")}"'
    caption = turn.get("blip_caption")
    if caption:
        text += f" and shared {caption}"
    return text


def cube_of(sample: Mapping[str, Any]) -> str:
    return f"locomo-{sample.get('sample_id', 'sample')}"


def memory_id(sample: Mapping[str, Any], dia_id: str) -> str:
    return f"{cube_of(sample)}:{dia_id}"


def ingest(ledger: Ledger, samples: Sequence[Mapping[str, Any]], actor: str = "locomo") -> dict[str, int]:
    """Write every conversation as events (one cube each); returns turns per cube."""
    counts: dict[str, int] = {}
    for sample in samples:
        cube = cube_of(sample)
        if ledger.cube_exists(cube):
            raise InvalidRequest(f"cube {cube} already exists in this ledger; use a fresh data directory")
        batch = [
            NewEvent(
                cube,
                ev.CUBE_CREATED,
                {"cube": cube, "owner": actor, "visibility": "private", "metadata": {"source": "LoCoMo"}},
                actor,
            )
        ]
        n = 0
        for number, date, turns in sessions(sample["conversation"]):
            prev = None
            for turn in turns:
                dia = normalise_evidence([turn.get("dia_id", "")])
                if not dia or not turn.get("text"):
                    continue
                mid = memory_id(sample, dia[0])
                batch.append(
                    NewEvent(
                        cube,
                        ev.MEMORY_ADDED,
                        {
                            "memory_id": mid,
                            "text": format_turn(date, turn),
                            "tags": [],
                            "state": "generated",
                            "metadata": {"dia_id": dia[0], "session": number, "speaker": str(turn.get("speaker", ""))},
                        },
                        actor,
                    )
                )
                if prev is not None:
                    batch.append(
                        NewEvent(
                            cube, ev.MEMORY_LINKED, {"source": prev, "target": mid, "relation": "next_turn"}, actor
                        )
                    )
                prev = mid
                n += 1
        ledger.log.append(batch)
        counts[cube] = n
    return counts


@dataclass
class _Acc:
    n: int = 0
    recall: dict[int, float] | None = None
    rr: float = 0.0

    def add(self, recalls: Mapping[int, float], rr: float) -> None:
        if self.recall is None:
            self.recall = defaultdict(float)
        self.n += 1
        for k, r in recalls.items():
            self.recall[k] += r
        self.rr += rr

    def result(self) -> dict[str, Any]:
        if not self.n or self.recall is None:
            return {"n": 0, **{f"R@{k}": 0.0 for k in KS}, "MRR": 0.0}
        return {
            "n": self.n,
            **{f"R@{k}": round(self.recall[k] / self.n, 4) for k in KS},
            "MRR": round(self.rr / self.n, 4),
        }


def evaluate(views: Any, samples: Sequence[Mapping[str, Any]], depth: int = DEPTH) -> dict[str, Any]:
    """Rank each question's conversation turns with ``views.search`` and compute the metrics."""
    overall, by_cat = _Acc(), defaultdict(_Acc)
    skipped = 0
    for sample in samples:
        cube = cube_of(sample)
        known = {
            memory_id(sample, normalise_evidence([t.get("dia_id", "")])[0])
            for _, _, turns in sessions(sample["conversation"])
            for t in turns
            if normalise_evidence([t.get("dia_id", "")])
        }
        for qa in sample["qa"]:
            cat = qa.get("category")
            if cat not in CATEGORIES or not str(qa.get("question", "")).strip():
                continue
            evidence = {memory_id(sample, d) for d in normalise_evidence(qa.get("evidence") or [])} & known
            if not evidence:
                skipped += 1
                continue
            hits = views.search(qa["question"], cube=cube, k=depth, record_read=False)
            ranked = [h.memory_id for h in hits]
            recalls = {k: len(set(ranked[:k]) & evidence) / len(evidence) for k in KS}
            rr = next((1.0 / i for i, m in enumerate(ranked, start=1) if m in evidence), 0.0)
            overall.add(recalls, rr)
            by_cat[cat].add(recalls, rr)
    return {
        "overall": overall.result(),
        "by_category": {CATEGORIES[c]: by_cat[c].result() for c in sorted(by_cat)},
        "skipped_questions": skipped,
    }


def format_table(result: Mapping[str, Any]) -> str:
    """The metrics as a fixed-width table."""
    head = f"{'category':<12} {'n':>5} " + " ".join(f"{'R@' + str(k):>6}" for k in KS) + f" {'MRR':>6}"
    lines = [head, "-" * len(head)]
    rows = [*result["by_category"].items(), ("overall", result["overall"])]
    for name, r in rows:
        lines.append(
            f"{name:<12} {r['n']:>5} " + " ".join(f"{r['R@' + str(k)]:>6.3f}" for k in KS) + f" {r['MRR']:>6.3f}"
        )
    return "\n".join(lines)


def run_locomo(
    samples: list[dict[str, Any]], data_dir: Path, vector: bool = True, embedder: str | None = None
) -> dict[str, Any]:
    """Ingest ``samples`` into a fresh data directory and evaluate hybrid search on them."""
    from ledger.config import init_data_dir
    from ledger.factory import open_ledger
    from projections.view_set import ViewSet

    if (data_dir / "log.sqlite").exists():
        raise InvalidRequest(f"{data_dir} already holds a ledger; give an empty --workdir")
    init_data_dir(data_dir)
    if embedder:
        cfg = data_dir / "memledger.toml"
        cfg.write_text(cfg.read_text() + f'\n[views.vector]\nadapter = "embedded"\nembedder = "{embedder}"\n')
    start = time.perf_counter()
    ledger = open_ledger(data_dir)
    ingest(ledger, samples)
    views = ViewSet.open(ledger, kinds=None if vector else ["keyword", "graph"])
    try:
        views.catch_up()
        result = evaluate(views, samples)
        result["views"] = sorted(views.views)
    finally:
        views.close()
        ledger.log.close()
    result["seconds"] = round(time.perf_counter() - start, 2)
    print(f"ingested {len(samples)} conversations", file=sys.stderr)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bench.locomo``: print the table (or ``--json``); exit 2 with one line on bad input."""
    ap = argparse.ArgumentParser(prog="python -m bench.locomo", description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", required=True, help="LoCoMo-format JSON file")
    ap.add_argument("--workdir", default=None, help="data directory to ingest into (default: a temporary one)")
    ap.add_argument("--no-vector", action="store_true", help="keyword + graph only")
    ap.add_argument("--embedder", default=None, help="vector view embedder: minilm (default) or hashing")
    ap.add_argument("--json", action="store_true", help="machine-readable output")
    args = ap.parse_args(argv)
    try:
        samples = load_dataset(args.dataset)
        with tempfile.TemporaryDirectory(prefix="memledger-locomo-") as tmp:
            result = run_locomo(samples, Path(args.workdir or tmp), vector=not args.no_vector, embedder=args.embedder)
    except LedgerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(orjson.dumps(result).decode())
    else:
        print(format_table(result) + f"\n({result['seconds']:.1f} s, views: {result['views']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
