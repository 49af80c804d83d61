"""LoCoMo through ingestion and extraction: evidence retrieval through lineage, next to plain turns.

In one data directory and one run:

* **turns** (the baseline of ``bench/locomo.py``): one memory per dialog turn;
* **extracted**: each conversation's sessions ingested as messages (``Ledger.ingest``, in calls of
  ``--chunk`` turns, each message with its speaker as ``name`` and the session date as
  ``timestamp``), then the extractor run to completion (``ExtractionConsumer.catch_up``).

Every question of categories 1-4 is ranked by keyword search (``--vector`` adds the vector view)
over the conversation's memories. A retrieved extracted memory counts as the dia_ids of the
messages it came from, found through its lineage; a turn memory is its own dia_id. Scores: evidence
recall@10 (|dia_ids of the top 10 ∩ evidence| / |evidence|), MRR of the first memory citing evidence
(depth 50), memories per message, extraction ms per message. Also the append-only ingest latency
(p50/p99 per call, next to a single ``Ledger.add`` in the same run) and extraction throughput.

The local model (SmolLM2, greedy, 2 shared cores) runs on a subsample only (``--local-sessions`` of
the first conversation), scored on the questions whose evidence lies in those sessions, next to the
rules and the turns on the same subsample. Data: LoCoMo (Maharana et al., ACL 2024; CC BY-NC 4.0),
read from ``../shared/data``, never copied here.

Run: ``HF_HUB_OFFLINE=1 python -m bench.extraction_bench --dataset ../shared/data/locomo-dev.json
[--conversations N] [--chunk 6] [--local-sessions 1] [--vector] [--json]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.locomo import (
    CATEGORIES,
    DEPTH,
    cube_of,
    format_turn,
    load_dataset,
    memory_id,
    normalise_evidence,
    sessions,
)
from bench.locomo import ingest as ingest_turns
from bench.update_bench import open_bench_ledger
from ledger.api import Ledger
from ledger.memos.extraction.base import Extractor
from ledger.memos.extraction.consumer import ExtractionConsumer
from ledger.timemachine.lineage import lineage


def session_time(text: str) -> str | None:
    """LoCoMo's ``1:56 pm on 8 May, 2023`` as ISO-8601 (None when it does not parse)."""
    for fmt in ("%I:%M %p on %d %B, %Y", "%I:%M %p on %d %b, %Y"):
        try:
            return datetime.strptime(text.strip(), fmt).isoformat()
        except ValueError:
            continue
    return None


def _content(turn: Mapping[str, Any]) -> str:
    text = str(turn.get("text", "")).strip() or "(no text)"
    caption = turn.get("blip_caption")
    return f"{text} [shares {caption}]" if caption else text


def ingest_messages(
    led: Ledger, sample: Mapping[str, Any], cube: str, chunk: int, max_sessions: int | None = None
) -> tuple[dict[str, str], list[float], int]:
    """Ingest a conversation's sessions as messages; (message id -> dia_id, seconds per call, messages)."""
    dia_of: dict[str, str] = {}
    latencies: list[float] = []
    count = 0
    for n, (_, date, turns) in enumerate(sessions(sample["conversation"])):
        if max_sessions is not None and n >= max_sessions:
            break
        ts = session_time(date)
        for i in range(0, len(turns), chunk):
            part = turns[i : i + chunk]
            msgs = [
                {"role": "user", "content": _content(t), "name": str(t.get("speaker") or "someone")}
                | ({"timestamp": ts} if ts else {})
                for t in part
            ]
            t0 = time.perf_counter()
            done = led.ingest(cube, msgs, "locomo")
            latencies.append(time.perf_counter() - t0)
            count += len(msgs)
            for mid, t in zip(done.message_ids, part, strict=True):
                dia = normalise_evidence([t.get("dia_id", "")])
                if dia:
                    dia_of[mid] = dia[0]
    return dia_of, latencies, count


def extract(led: Ledger, extractor: Extractor, cube: str) -> tuple[float, int]:
    """Run ``extractor`` over the cube's messages to completion; (seconds, model calls)."""
    consumer = ExtractionConsumer(led, extractor, track=f"bench-{cube}", cube=cube)
    t0 = time.perf_counter()
    consumer.catch_up()
    return time.perf_counter() - t0, consumer.calls


class _Scorer:
    def __init__(self) -> None:
        self.n = 0
        self.recall = 0.0
        self.rr = 0.0

    def add(self, ranked_dias: Sequence[set[str]], evidence: set[str]) -> None:
        covered: set[str] = set()
        for d in ranked_dias[:10]:
            covered |= d
        self.n += 1
        self.recall += len(covered & evidence) / len(evidence)
        self.rr += next((1.0 / i for i, d in enumerate(ranked_dias, start=1) if d & evidence), 0.0)

    def result(self) -> dict[str, float]:
        return {"n": self.n, "R@10": round(self.recall / max(self.n, 1), 4), "MRR": round(self.rr / max(self.n, 1), 4)}


def questions(sample: Mapping[str, Any], within: set[str] | None = None) -> list[tuple[str, set[str]]]:
    """(question, evidence dia_ids) of categories 1-4 (evidence inside ``within``, when given)."""
    out = []
    for qa in sample["qa"]:
        if qa.get("category") not in CATEGORIES or not str(qa.get("question", "")).strip():
            continue
        ev = set(normalise_evidence(qa.get("evidence") or []))
        if ev and (within is None or ev <= within):
            out.append((str(qa["question"]), ev))
    return out


class _Dias:
    """dia_ids of a retrieved memory: a turn memory's own, or an extracted one's source messages."""

    def __init__(self, led: Ledger, dia_of_message: Mapping[str, str], dia_of_turn: Mapping[str, str]):
        self.led, self.msg, self.turn = led, dia_of_message, dia_of_turn
        self.cache: dict[str, set[str]] = {}

    def of(self, mid: str) -> set[str]:
        if mid in self.turn:
            return {self.turn[mid]}
        if mid not in self.cache:
            sources = lineage(self.led, mid, depth=1).sources
            self.cache[mid] = {self.msg[e.parent] for e in sources if e.parent in self.msg}
        return self.cache[mid]


def score(views: Any, dias: _Dias, cube: str, qs: Sequence[tuple[str, set[str]]]) -> dict[str, float]:
    s = _Scorer()
    for q, ev in qs:
        hits = views.search(q, cube=cube, k=DEPTH, record_read=False) if dias.led.cube_exists(cube) else []
        s.add([dias.of(h.memory_id) for h in hits], ev)
    return s.result()


def _pct(values: Sequence[float], p: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, int(p * len(v)))] if v else 0.0


def run(
    samples: list[dict[str, Any]],
    data_dir: Path,
    chunk: int = 6,
    local_sessions: int = 0,
    local_model: str = "smollm2",
    max_new_tokens: int = 160,
    vector: bool = False,
) -> dict[str, Any]:
    from ledger.memos.extraction.registry import build_extractor
    from projections.view_set import ViewSet

    led = open_bench_ledger(data_dir)
    out: dict[str, Any] = {"conversations": len(samples), "chunk": chunk}
    try:
        ingest_turns(led, samples)  # the turns baseline: one memory per turn
        dia_of_turn = {
            memory_id(s, d): d
            for s in samples
            for _, _, turns in sessions(s["conversation"])
            for t in turns
            for d in normalise_evidence([t.get("dia_id", "")])[:1]
        }
        dia_of_msg: dict[str, str] = {}
        latencies: list[float] = []
        n_messages = 0
        for s in samples:
            m, lat, n = ingest_messages(led, s, f"msg-{s['sample_id']}", chunk)
            dia_of_msg |= m
            latencies += lat
            n_messages += n
        peer = []  # a single Ledger.add in the same run, for scale
        for i in range(min(300, n_messages)):
            t0 = time.perf_counter()
            led.add("peer-add", f"peer memory {i} for latency", "locomo")
            peer.append(time.perf_counter() - t0)
        out["ingest"] = {
            "calls": len(latencies),
            "messages": n_messages,
            "p50_ms": round(_pct(latencies, 0.5) * 1000, 2),
            "p99_ms": round(_pct(latencies, 0.99) * 1000, 2),
            "add_p50_ms": round(_pct(peer, 0.5) * 1000, 2),
            "add_p99_ms": round(_pct(peer, 0.99) * 1000, 2),
        }
        rules = build_extractor("rules")
        secs = 0.0
        for s in samples:
            secs += extract(led, rules, f"msg-{s['sample_id']}")[0]
        extracted = sum(
            len(led.cube_memories(f"msg-{s['sample_id']}")) for s in samples if led.cube_exists(f"msg-{s['sample_id']}")
        )
        out["rules_extraction"] = {
            "seconds": round(secs, 2),
            "ms_per_message": round(secs * 1000 / max(n_messages, 1), 3),
            "messages_per_s": round(n_messages / secs, 1) if secs else None,
            "memories_per_message": round(extracted / max(n_messages, 1), 3),
        }
        sub: dict[str, Any] = {}
        sub_turns: dict[str, str] = {}
        if local_sessions:
            first = samples[0]
            tag = first["sample_id"]
            kept = sessions(first["conversation"])[:local_sessions]
            within: set[str] = set()
            for _, date, turns in kept:  # the same turns alone in a cube: the same-subsample baseline
                for t in turns:
                    for d in normalise_evidence([t.get("dia_id", "")])[:1]:
                        within.add(d)
                        sub_turns[led.add(f"subturns-{tag}", format_turn(date, t), "locomo").id] = d
            sub_rules_cube, sub_local_cube = f"subrules-{tag}", f"sublocal-{tag}"
            m1, _, n_sub = ingest_messages(led, first, sub_rules_cube, chunk, local_sessions)
            m2, _, _ = ingest_messages(led, first, sub_local_cube, chunk, local_sessions)
            dia_of_msg |= m1 | m2
            r_secs, _ = extract(led, rules, sub_rules_cube)
            import torch

            torch.set_num_threads(1)
            local = build_extractor("local", {"model": local_model, "max_new_tokens": max_new_tokens})
            l_secs, calls = extract(led, local, sub_local_cube)
            sub = {
                "sessions": local_sessions,
                "messages": n_sub,
                "local_calls": calls,
                "local_ms_per_message": round(l_secs * 1000 / max(n_sub, 1), 1),
                "rules_ms_per_message": round(r_secs * 1000 / max(n_sub, 1), 3),
                "local_memories_per_message": round(_count(led, sub_local_cube) / max(n_sub, 1), 3),
                "rules_memories_per_message": round(_count(led, sub_rules_cube) / max(n_sub, 1), 3),
            }
            sub["_within"] = within
        views = ViewSet.open(led, kinds=None if vector else ["keyword"])
        try:
            views.catch_up()
            dias = _Dias(led, dia_of_msg, dia_of_turn)
            turns_all, rules_all = [], []
            for s in samples:
                qs = questions(s)
                turns_all.append(score(views, dias, cube_of(s), qs))
                rules_all.append(score(views, dias, f"msg-{s['sample_id']}", qs))
            out["retrieval"] = {"turns": _merge(turns_all), "rules extracted": _merge(rules_all)}
            if sub:
                first = samples[0]
                tag = first["sample_id"]
                within = sub.pop("_within")
                qs = questions(first, within)
                sub_dias = _Dias(led, dia_of_msg, sub_turns)
                sub["retrieval"] = {
                    "turns": score(views, sub_dias, f"subturns-{tag}", qs),
                    "rules extracted": score(views, sub_dias, f"subrules-{tag}", qs),
                    "local extracted": score(views, sub_dias, f"sublocal-{tag}", qs),
                }
                out["local_subsample"] = sub
        finally:
            views.close()
    finally:
        led.log.close()
    return out


def _count(led: Ledger, cube: str) -> int:
    return len(led.cube_memories(cube)) if led.cube_exists(cube) else 0


def _merge(parts: Sequence[Mapping[str, float]]) -> dict[str, float]:
    n = sum(p["n"] for p in parts)
    return {
        "n": n,
        "R@10": round(sum(p["R@10"] * p["n"] for p in parts) / max(n, 1), 4),
        "MRR": round(sum(p["MRR"] * p["n"] for p in parts) / max(n, 1), 4),
    }


def format_report(r: Mapping[str, Any]) -> str:
    lines = [f"LoCoMo, {r['conversations']} conversations, ingest calls of {r['chunk']} turns (keyword search)"]
    lines.append(f"  {'memories':<18}{'questions':>10}{'R@10':>8}{'MRR':>8}")
    for name, row in r["retrieval"].items():
        lines.append(f"  {name:<18}{row['n']:>10}{row['R@10']:>8.3f}{row['MRR']:>8.3f}")
    x = r["rules_extraction"]
    lines.append(
        f"  rules: {x['memories_per_message']} memories/message, {x['ms_per_message']} ms/message "
        f"({x['messages_per_s']} messages/s, {x['seconds']} s)"
    )
    i = r["ingest"]
    lines.append(
        f"  ingest (append only): {i['calls']} calls / {i['messages']} messages, p50 {i['p50_ms']} ms, "
        f"p99 {i['p99_ms']} ms per call; one Ledger.add: p50 {i['add_p50_ms']} ms, p99 {i['add_p99_ms']} ms"
    )
    sub = r.get("local_subsample")
    if sub:
        lines.append(
            f"local subsample: first {sub['sessions']} session(s) of the first conversation, {sub['messages']} "
            f"messages, {sub['local_calls']} model calls"
        )
        lines.append(f"  {'memories':<18}{'questions':>10}{'R@10':>8}{'MRR':>8}")
        for name, row in sub["retrieval"].items():
            lines.append(f"  {name:<18}{row['n']:>10}{row['R@10']:>8.3f}{row['MRR']:>8.3f}")
        lines.append(
            f"  local: {sub['local_memories_per_message']} memories/message, {sub['local_ms_per_message']} ms/message; "
            f"rules: {sub['rules_memories_per_message']} memories/message, {sub['rules_ms_per_message']} ms/message"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.extraction_bench", description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--conversations", type=int, default=None, help="only the first N conversations")
    ap.add_argument("--chunk", type=int, default=6, help="turns per ingest call (one extractor window)")
    ap.add_argument("--local-sessions", type=int, default=0, help="run the local model on the first N sessions")
    ap.add_argument("--local-model", default="smollm2")
    ap.add_argument("--max-new-tokens", type=int, default=160)
    ap.add_argument("--vector", action="store_true", help="also the vector view (MiniLM)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.chunk < 1:
        print("error: --chunk must be at least 1", file=sys.stderr)
        return 2
    from ledger.errors import LedgerError

    try:
        samples = load_dataset(args.dataset)[: args.conversations]
        with tempfile.TemporaryDirectory(prefix="memledger-extraction-") as tmp:
            result = run(
                samples,
                Path(tmp) / "data",
                args.chunk,
                args.local_sessions,
                args.local_model,
                args.max_new_tokens,
                args.vector,
            )
    except LedgerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        import json

        print(json.dumps(result, indent=1))
    else:
        print(format_report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
