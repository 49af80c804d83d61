"""Re-extraction on a branch: what would another extractor (a better model, new rules) make of the
stored messages? ``reextract(ledger, cube, extractor, branch, actor)``:

1. forks ``branch`` from main at the head (``ledger.timemachine.branches``);
2. runs ``extractor`` over every message of ``cube`` up to the fork, in order, on its own track
   (``reextract.<branch>.<cube>.<extractor>``), reconciling against the branch's memories as it
   goes: facts it states again are NOOPs, facts it states differently are UPDATEs, new ones ADDs;
3. tombstones, on the branch, the extracted memories of the cube that the new run neither stated
   again nor updated (the old extraction found them, the new one does not).

``memledger branch diff BRANCH`` then lists exactly the memories the new extractor changes, and
``memledger branch merge BRANCH`` adopts them. Main is never written (except the branch's audit record).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ledger import events as ev
from ledger.errors import NotFound
from ledger.events import NewEvent
from ledger.memos.extraction.consumer import ExtractionConsumer, decisions_of
from ledger.memos.extraction.registry import build_extractor
from ledger.memos.extraction.settings import ExtractionSettings
from ledger.timemachine.branches import Branches, check_branch_name

DROPPED_REASON = "not extracted again by the re-extraction"


@dataclass
class ReextractReport:
    """What a re-extraction wrote on its branch."""

    branch: str
    cube: str
    extractor: str
    fork: int
    windows: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "branch": self.branch,
            "cube": self.cube,
            "extractor": self.extractor,
            "fork": self.fork,
            "windows": self.windows,
            "decisions": self.counts,
            "dropped": self.dropped,
        }


def reextract(ledger: Any, cube: str, extractor: str, branch: str, actor: str) -> ReextractReport:
    """Re-run ``extractor`` over the messages of ``cube`` into a new ``branch`` (see the module docstring)."""
    check_branch_name(branch)
    if not ledger.cube_exists(cube):
        raise NotFound(f"cube {cube!r} not found")
    settings = ExtractionSettings.from_config(ledger.config)
    backend = build_extractor(extractor, settings.options)  # before the branch: a bad name creates nothing
    branches = Branches(ledger)
    info = branches.create(branch, None, actor)
    target = branches.branch_ledger(branch)
    track = f"reextract.{branch}.{cube}.{extractor}"
    consumer = ExtractionConsumer(target, backend, settings, track=track, end=info.fork_offset, actor=actor, cube=cube)
    report = ReextractReport(branch, cube, extractor, info.fork_offset)
    while consumer.step():
        report.windows += 1
    confirmed: set[str] = set()
    for e in decisions_of(target, track):
        for d in e.payload["decisions"]:
            report.counts[d["kind"]] = report.counts.get(d["kind"], 0) + 1
            confirmed.update(x for x in (d.get("memory_id"), d.get("target")) if x and d["kind"] != "DELETE")
    stale = [
        mid
        for mid, s in sorted(target.cube_memories(cube).items())
        if "extracted" in s.tags and mid not in confirmed and s.state in ("generated", "activated")
    ]
    if stale:
        batch = [NewEvent(cube, ev.MEMORY_DELETED, {"memory_id": m, "reason": DROPPED_REASON}, actor) for m in stale]
        target.log.append(batch)
        report.dropped = stale
    return report
