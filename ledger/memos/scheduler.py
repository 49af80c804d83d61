"""The memory scheduler: usage-driven promotion, demotion, archiving and merging, as events.

:func:`decide` is a pure function of (the log prefix ``0..N``, the policy): its "now" is the
time of event ``N``, it reads usage from ``memory.read`` events and state from the memory
fold. Every payload is sealed, so to find near-duplicates to merge it reads texts through the key
ring (``opener``); memories of different data subjects are never merged together, and after
``subject.forgotten`` their subject's memories are left alone. So the decisions recorded with
``basis_offset = N`` can be recomputed from the log (and the keys) at any later time and must
come out the same (:func:`verify_replay`); a decision that merged a memory erased since cannot be
recomputed, and verification says so.

A merged memory is sealed under the keys of all its sources (erasing any of them erases it) and
inherits their scope metadata (``ledger.memory_state.merged_metadata``).

:func:`apply` writes, per cube and atomically, one ``scheduler.decided`` event per decision
(with its reason, score, policy and basis) followed by the lifecycle events it causes
(``memory.state_changed`` / ``memory.merged``, ``causation_id`` = the decision's event id).
Event ids are derived from the basis and the decision, so two schedulers racing on the same
basis write the same batch once (an idempotent retry), and a cube that changed after the
basis is skipped for this run rather than decided on stale data.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ledger import events as ev
from ledger.api import Ledger
from ledger.errors import ConcurrencyConflict, LedgerError, present
from ledger.events import Event, NewEvent, now_us
from ledger.governance.holds import HOLDS_STREAM
from ledger.memory_state import CONTENT_EVENTS, MemoryState, Opener, apply_event, merged_metadata
from ledger.memos.retention import expired_by
from ledger.memos.scheduler_policy import SchedulerPolicy

SCHEDULER_TICKED = "scheduler.ticked"
SCHEDULER_ACTOR = "scheduler"
KINDS = ("expire", "hold", "merge", "demote", "promote", "archive")
_US = 1_000_000
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Decision:
    """One scheduling decision about memories of one cube."""

    kind: str
    cube: str
    memory_ids: tuple[str, ...]
    reason: str
    score: float
    merged_into: str | None = None
    merged_text: str | None = None
    activate_merged: bool = False
    from_states: tuple[str, ...] = ()
    action: str | None = None  # expire: "delete" | "erase"
    hold_ids: tuple[str, ...] = ()  # hold: the legal holds that refused an expiry

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "decision": self.kind,
            "cube": self.cube,
            "memory_ids": list(self.memory_ids),
            "reason": self.reason,
            "score": self.score,
        }
        if self.merged_into:
            d["merged_into"] = self.merged_into
        if self.action:
            d["action"] = self.action
        if self.hold_ids:
            d["hold_ids"] = list(self.hold_ids)
        return d


@dataclass
class Plan:
    """The decisions computed on the prefix ending at ``basis_offset`` (whose time is "now")."""

    basis_offset: int
    basis_time_us: int | None
    policy: SchedulerPolicy
    decisions: list[Decision] = field(default_factory=list)
    cube_versions: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "basis_offset": self.basis_offset,
            "basis_time_us": self.basis_time_us,
            "policy": self.policy.to_dict(),
            "decisions": [d.to_dict() for d in self.decisions],
        }


@dataclass
class _Usage:
    reads: list[int] = field(default_factory=list)
    content_ts: int = 0
    state_ts: int = 0
    created_ts: int = 0


def _words(text: str) -> frozenset[str]:
    return frozenset("".join(c.lower() if c.isalnum() else " " for c in text).split())


def _jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 0.0


def _near_duplicate_groups(items: list[tuple[str, frozenset[str]]], threshold: float) -> list[list[str]]:
    """Groups (connected components) of items whose word sets reach ``threshold`` Jaccard.

    Exact, with a prefix filter: order each set's words rarest first; two sets can only reach
    the threshold if they share a word among the first ``|A| - ceil(t*|A|) + 1`` of either.
    """
    import math

    freq: dict[str, int] = defaultdict(int)
    for _, ws in items:
        for w in ws:
            freq[w] += 1
    index: dict[str, list[int]] = defaultdict(list)
    parent = list(range(len(items)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, (_, ws) in enumerate(items):
        ordered = sorted(ws, key=lambda w: (freq[w], w))
        prefix = ordered[: len(ordered) - math.ceil(threshold * len(ordered)) + 1]
        seen: set[int] = set()
        for w in prefix:
            for j in index[w]:
                if j in seen:
                    continue
                seen.add(j)
                other = items[j][1]
                if min(len(ws), len(other)) < threshold * max(len(ws), len(other)):
                    continue
                if _jaccard(ws, other) >= threshold:
                    parent[find(i)] = find(j)
            index[w].append(i)
    groups: dict[int, list[str]] = defaultdict(list)
    for i, (mid, _) in enumerate(items):
        groups[find(i)].append(mid)
    return sorted(sorted(g) for g in groups.values() if len(g) > 1)


def _merged_id(cube: str, ids: Sequence[str], basis: int) -> str:
    return "mem_" + hashlib.sha256(f"sched-merge:{cube}:{','.join(ids)}:{basis}".encode()).hexdigest()[:16]


def decide(
    events: Iterable[Event], policy: SchedulerPolicy, cubes: Sequence[str] | None = None, opener: Opener | None = None
) -> Plan:
    """Decisions for the log prefix ``events`` (upcast, offset order, starting at 0), reading sealed
    texts with ``opener``. A pure function of the prefix and the keys."""
    states: dict[str, MemoryState] = {}
    usage: dict[str, _Usage] = defaultdict(_Usage)
    versions: dict[str, int] = {}
    forgotten: set[str] = set()
    holds = _HoldFold()
    last: Event | None = None
    for e in events:
        last = e
        versions[e.stream] = e.version
        if e.type == ev.SUBJECT_FORGOTTEN:
            forgotten.add(e.payload["subject"])
            continue
        if e.stream == HOLDS_STREAM:
            holds.apply(e)
            continue
        if e.type == ev.MEMORY_READ:
            if e.payload.get("as_of") is None:  # time-travel reads (audits) are not usage
                for mid in e.payload.get("memory_ids", []):
                    usage[mid].reads.append(e.ts_us)
            continue
        for mid in apply_event(states, e, opener):
            u = usage[mid]
            if e.type in CONTENT_EVENTS:
                u.content_ts = e.ts_us
                if mid == e.payload.get("memory_id") and e.type in (ev.MEMORY_ADDED, ev.MEMORY_MERGED):
                    u.created_ts = e.ts_us
            u.state_ts = e.ts_us
    if last is None:
        return Plan(-1, None, policy)
    now = last.ts_us
    wanted = set(cubes) if cubes is not None else None
    by_cube: dict[str, list[MemoryState]] = defaultdict(list)
    for m in states.values():
        # sealed memories take part by usage (their text is not needed, except to merge), unless
        # their subject was forgotten; ``m.forgotten`` only means "no opener here"
        if m.exists and m.subject not in forgotten and (wanted is None or m.cube in wanted):
            by_cube[m.cube].append(m)
    decisions: list[Decision] = []
    for cube in sorted(by_cube):
        mems = sorted(by_cube[cube], key=lambda m: m.memory_id)
        retained = _retention(cube, mems, usage, now, policy, holds)
        decisions += retained
        gone = {m for d in retained for m in d.memory_ids}
        decisions += _decide_cube(cube, [m for m in mems if m.memory_id not in gone], usage, now, policy, last.offset)
    return Plan(last.offset, now, policy, decisions, {c: versions.get(c, 0) for c in by_cube})


@dataclass
class _HoldFold:
    """Legal holds as of the prefix, and the retention refusals already recorded."""

    active: dict[str, dict[str, Any]] = field(default_factory=dict)
    refused: set[tuple[str, str]] = field(default_factory=set)  # (memory id, hold id)

    def apply(self, e: Event) -> None:
        p = e.payload
        if e.type == ev.HOLD_PLACED:
            self.active[p["hold_id"]] = p
        elif e.type == ev.HOLD_RELEASED:
            self.active.pop(p["hold_id"], None)
        elif e.type == ev.HOLD_REFUSED and p.get("operation") == "retention":
            self.refused.update((m, h) for m in p.get("memory_ids", []) for h in p["hold_ids"])

    def covering(self, m: MemoryState) -> list[str]:
        return sorted(
            h
            for h, p in self.active.items()
            if p.get("memory_id") == m.memory_id or p.get("cube") == m.cube or p.get("subject") in m.subjects
        )


def _retention(
    cube: str, mems: list[MemoryState], usage: dict[str, _Usage], now: int, policy: SchedulerPolicy, holds: _HoldFold
) -> list[Decision]:
    """Expiries (one decision per rule and action) and, once per hold, refusals under a legal hold."""
    if not policy.retention:
        return []
    expire: dict[int, list[str]] = defaultdict(list)
    held: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for m in mems:
        if m.state == "frozen" or m.erased:
            continue
        rule = expired_by(policy.retention, m, (now - usage[m.memory_id].created_ts) / _US)
        if rule is None:
            continue
        hold_ids = holds.covering(m)
        if hold_ids:
            if any((m.memory_id, h) not in holds.refused for h in hold_ids):
                held[tuple(hold_ids)].append(m.memory_id)
            continue
        expire[policy.retention.index(rule)].append(m.memory_id)
    out = [
        Decision(
            "expire",
            cube,
            tuple(ids),
            f"retention: {policy.retention[i].describe()}",
            float(len(ids)),
            action=policy.retention[i].action,
        )
        for i, ids in sorted(expire.items())
    ]
    out += [
        Decision(
            "hold", cube, tuple(ids), f"retention expiry refused: under legal hold {', '.join(h)}", 0.0, hold_ids=h
        )
        for h, ids in sorted(held.items())
    ]
    return out


def _decide_cube(
    cube: str, mems: list[MemoryState], usage: dict[str, _Usage], now: int, policy: SchedulerPolicy, basis: int
) -> list[Decision]:
    def score(mid: str) -> float:
        return round(sum(0.5 ** ((now - t) / (policy.half_life_s * _US)) for t in usage[mid].reads), 6)

    out: list[Decision] = []
    taken: set[str] = set()
    live = [m for m in mems if m.state in ("generated", "activated")]
    # merge near-duplicates (readable texts only; never across data subjects)
    by_subject: dict[str, list[tuple[str, frozenset[str]]]] = defaultdict(list)
    for m in live:
        if m.text is not None:
            ws = _words(m.text)
            if len(ws) >= policy.merge_min_words:
                by_subject[",".join(m.subjects)].append((m.memory_id, ws))
    index = {m.memory_id: m for m in live}
    for subj in sorted(by_subject):
        for group in _near_duplicate_groups(by_subject[subj], policy.merge_threshold):
            keep = max(group, key=lambda i: (usage[i].content_ts, i))
            sims = [_jaccard(_words(index[group[0]].text or ""), _words(index[i].text or "")) for i in group[1:]]
            out.append(
                Decision(
                    "merge",
                    cube,
                    tuple(group),
                    f"near-duplicates: word-set Jaccard >= {policy.merge_threshold} (min {min(sims):.3f}); "
                    f"kept the text of the most recently changed memory {keep}",
                    round(min(sims), 6),
                    merged_into=_merged_id(cube, group, basis),
                    merged_text=index[keep].text,
                    activate_merged=any(index[i].state == "activated" for i in group),
                    from_states=tuple(index[i].state for i in group),
                )
            )
            taken.update(group)
    rest = [m for m in live if m.memory_id not in taken]
    win = policy.promote_window_s * _US
    active = 0
    promote: list[tuple[float, str, int]] = []
    for m in rest:
        u = usage[m.memory_id]
        last_read = max(u.reads) if u.reads else None
        if m.state == "activated":
            since = max(last_read or 0, u.state_ts)
            if now - since >= policy.demote_after_s * _US:
                idle = (now - since) / _US
                out.append(
                    Decision(
                        "demote",
                        cube,
                        (m.memory_id,),
                        f"activated but unused for {idle:.0f}s (>= demote_after_s "
                        f"{policy.demote_after_s:.0f}); last read "
                        f"{'never' if last_read is None else f'{(now - last_read) / _US:.0f}s ago'}",
                        score(m.memory_id),
                        from_states=("activated",),
                    )
                )
            else:
                active += 1
            continue
        recent = sum(1 for t in u.reads if now - t <= win)
        s = score(m.memory_id)
        stable = (now - u.content_ts) / _US
        if recent >= policy.promote_min_reads and s >= policy.promote_min_score and stable >= policy.stable_for_s:
            promote.append((s, m.memory_id, recent))
            continue
        since_use = max(last_read or 0, u.content_ts, u.state_ts)
        if now - since_use >= policy.archive_after_s * _US:
            out.append(
                Decision(
                    "archive",
                    cube,
                    (m.memory_id,),
                    f"neither read nor changed for {(now - since_use) / _US:.0f}s (>= archive_after_s "
                    f"{policy.archive_after_s:.0f})",
                    s,
                    from_states=("generated",),
                )
            )
    room = max(0, int(policy.max_activated_per_cube) - active)
    promote.sort(key=lambda x: (-x[0], x[1]))
    for s, mid, recent in promote[:room]:
        out.append(
            Decision(
                "promote",
                cube,
                (mid,),
                f"hot and stable: {recent} reads in the last {policy.promote_window_s:.0f}s "
                f"(>= {policy.promote_min_reads}), usage score {s:.3f} (>= {policy.promote_min_score}), "
                f"unchanged for >= {policy.stable_for_s:.0f}s",
                s,
                from_states=("generated",),
            )
        )
    order = {k: i for i, k in enumerate(KINDS)}
    return sorted(out, key=lambda d: (order[d.kind], d.memory_ids))


# -- writing decisions --------------------------------------------------------------------------
def _eid(*parts: object) -> str:
    return hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:32]


MergedContent = Callable[["Decision"], dict[str, Any]]  # a merge decision -> the merged memory's content fields


def decision_events(
    plan: Plan,
    decision: Decision,
    actor: str = SCHEDULER_ACTOR,
    run_id: str | None = None,
    merged_content: MergedContent | None = None,
) -> list[NewEvent]:
    """The ``scheduler.decided`` event of a decision followed by the lifecycle events it causes.

    ``merged_content(decision)`` gives a merge's content fields (sealed under its sources' keys, see
    :func:`apply`); without it the merged text is written as plaintext (a ledger without keys)."""
    d = decision
    did = _eid("sched", plan.basis_offset, d.cube, d.kind, *d.memory_ids)
    payload: dict[str, Any] = {
        "decision": d.kind,
        "memory_ids": list(d.memory_ids),
        "reason": d.reason,
        "policy": plan.policy.to_dict(),
        "score": d.score,
        "basis_offset": plan.basis_offset,
        "basis_time_us": plan.basis_time_us,
    }
    if d.merged_into:
        payload["merged_into"] = d.merged_into
    if d.action:
        payload["action"] = d.action
    if d.hold_ids:
        payload["hold_ids"] = list(d.hold_ids)
    out = [NewEvent(d.cube, ev.SCHEDULER_DECIDED, payload, actor, event_id=did, correlation_id=run_id)]

    def follow(etype: str, p: dict[str, Any], n: int) -> None:
        out.append(NewEvent(d.cube, etype, p, actor, event_id=_eid(did, n), causation_id=did, correlation_id=run_id))

    if d.kind == "expire":
        if d.action == "delete":  # an erasure destroys keys too: :func:`apply` runs it after the batch
            for n, mid in enumerate(d.memory_ids, 1):
                follow(ev.MEMORY_DELETED, {"memory_id": mid, "reason": d.reason[:2000]}, n)
        return out
    if d.kind == "hold":
        out.append(
            NewEvent(
                HOLDS_STREAM,
                ev.HOLD_REFUSED,
                {"operation": "retention", "hold_ids": list(d.hold_ids), "memory_ids": list(d.memory_ids)},
                actor,
                event_id=_eid(did, 1),
                causation_id=did,
                correlation_id=run_id,
            )
        )
        return out
    if d.kind == "merge":
        content = (
            merged_content(d) if merged_content is not None else {"text": present(d.merged_text, "a merge's text")}
        )
        follow(
            ev.MEMORY_MERGED,
            {
                "memory_id": present(d.merged_into, "a merge decision's memory id"),
                "sources": list(d.memory_ids),
                **content,
                "reason": d.reason[:2000],
            },
            1,
        )
        if d.activate_merged:
            follow(
                ev.MEMORY_STATE_CHANGED,
                {
                    "memory_id": d.merged_into,
                    "from": "generated",
                    "to": "activated",
                    "reason": "merged from activated memories",
                },
                2,
            )
    else:
        to = {"promote": "activated", "demote": "generated", "archive": "archived"}[d.kind]
        for n, (mid, frm) in enumerate(zip(d.memory_ids, d.from_states, strict=True), 1):
            follow(ev.MEMORY_STATE_CHANGED, {"memory_id": mid, "from": frm, "to": to, "reason": d.reason[:2000]}, n)
    return out


@dataclass
class RunResult:
    plan: Plan
    written: int = 0
    skipped_cubes: list[str] = field(default_factory=list)
    ticked: bool = False
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.plan.to_dict(),
            "written_events": self.written,
            "skipped_cubes": self.skipped_cubes,
            "ticked": self.ticked,
            "problems": self.problems,
        }


def apply(ledger: Ledger, plan: Plan, actor: str = SCHEDULER_ACTOR, run_id: str | None = None) -> RunResult:
    """Write a plan, one atomic batch per cube, guarded by the cube's version at the basis."""
    result = RunResult(plan)
    per_cube: dict[str, list[NewEvent]] = defaultdict(list)

    def merged_content(d: Decision) -> dict[str, Any]:
        sources = [ledger.get(m, as_of=plan.basis_offset, record_read=False) for m in d.memory_ids]
        return ledger.content_fields(
            present(d.merged_text, "a merge's text"),
            merged_metadata(s.metadata for s in sources),
            present(d.merged_into, "a merge decision's memory id"),
            derived_from=sources,
        )

    for d in plan.decisions:
        per_cube[d.cube] += decision_events(plan, d, actor, run_id, merged_content)
    for cube in sorted(per_cube):
        try:
            written = ledger.append(per_cube[cube], {cube: plan.cube_versions.get(cube, 0)})
        except ConcurrencyConflict:
            result.skipped_cubes.append(cube)  # changed since the basis: decide again next run
            continue
        result.written += len(written)
        for d in plan.decisions:
            if d.cube == cube and d.kind == "expire" and d.action == "erase":
                _erase_expired(ledger, d, actor, result)
    return result


def _erase_expired(ledger: Ledger, d: Decision, actor: str, result: RunResult) -> None:
    """An expiry that erases: the decision is recorded; now destroy the keys (``memory.erased``)."""
    from ledger.governance.erase import erase

    try:
        report = erase(ledger, list(d.memory_ids), actor, d.reason[:2000])
    except LedgerError as exc:  # a hold placed since the basis, a plaintext legacy memory, ...
        result.problems.append(f"retention erase of {len(d.memory_ids)} memories in {d.cube} failed: {exc}")
        return
    result.written += len(report.offsets)
    result.problems += report.checks.problems + report.checks.residue


def plan_at(
    ledger: Ledger, policy: SchedulerPolicy, basis_offset: int | None = None, cubes: Sequence[str] | None = None
) -> Plan:
    """:func:`decide` on the ledger's prefix ``0..basis_offset`` (default: head)."""
    end = ledger.head() if basis_offset is None else ledger.resolve_as_of(basis_offset)
    return decide(ledger.events(0, end), policy, cubes, ledger.opener)


def run(
    ledger: Ledger,
    policy: SchedulerPolicy | None = None,
    cubes: Sequence[str] | None = None,
    tick: bool = True,
    actor: str = SCHEDULER_ACTOR,
    dry_run: bool = False,
) -> RunResult:
    """One scheduling pass at the head (after a ``scheduler.ticked`` event if the log is idle)."""
    policy = policy or SchedulerPolicy()
    run_id = "sched-" + now_us().__str__()
    ticked = False
    if tick and not dry_run:
        head = ledger.head()
        last = next(iter(ledger.log.read(head, head)), None) if head >= 0 else None
        if last is not None and last.type != SCHEDULER_TICKED and now_us() - last.ts_us >= policy.tick_every_s * _US:
            ledger.append(
                [NewEvent(ev.SYSTEM_STREAM, SCHEDULER_TICKED, {"run_id": run_id, "policy": policy.to_dict()}, actor)]
            )
            ticked = True
    plan = plan_at(ledger, policy, None, cubes)
    if dry_run:
        return RunResult(plan)
    result = apply(ledger, plan, actor, run_id)
    result.ticked = ticked
    return result


def recorded_decisions(ledger: Ledger, basis_offset: int) -> list[dict[str, Any]]:
    """The ``scheduler.decided`` payloads written for ``basis_offset`` (comparable to :meth:`Decision.to_dict`)."""
    out: list[dict[str, Any]] = []
    for e in ledger.events(basis_offset + 1):
        if e.type == ev.SCHEDULER_DECIDED and e.payload.get("basis_offset") == basis_offset:
            p = e.payload
            d = {
                "decision": p["decision"],
                "cube": e.stream,
                "memory_ids": p["memory_ids"],
                "reason": p["reason"],
                "score": p.get("score"),
            }
            if p.get("merged_into"):
                d["merged_into"] = p["merged_into"]
            if p.get("action"):
                d["action"] = p["action"]
            if p.get("hold_ids"):
                d["hold_ids"] = p["hold_ids"]
            out.append(d)
    return out


def verify_replay(ledger: Ledger, basis_offset: int) -> tuple[bool, list[dict[str, Any]], list[dict[str, Any]]]:
    """Recompute the decisions recorded for ``basis_offset`` from the log prefix and their policy.

    Returns ``(same, recorded, recomputed)``. Only cubes that had recorded decisions are
    compared (cubes skipped for a concurrency conflict wrote nothing).
    """
    basis_offset = ledger.resolve_as_of(basis_offset)  # a clear error for an offset out of range
    recorded = recorded_decisions(ledger, basis_offset)
    if not recorded:
        return True, [], []
    policy_dict = next(
        e.payload["policy"]
        for e in ledger.events(basis_offset + 1)
        if e.type == ev.SCHEDULER_DECIDED and e.payload.get("basis_offset") == basis_offset
    )
    cubes = sorted({d["cube"] for d in recorded})
    plan = plan_at(ledger, SchedulerPolicy.from_dict(policy_dict), basis_offset, cubes)
    recomputed = [d.to_dict() for d in plan.decisions]
    return recomputed == recorded, recorded, recomputed


class Scheduler:
    """A ledger plus a policy, with a background loop for the service."""

    def __init__(
        self,
        ledger: Ledger,
        policy: SchedulerPolicy | None = None,
        cubes: Sequence[str] | None = None,
        on_run: Any = None,
    ):
        self.ledger = ledger
        self.policy = policy or SchedulerPolicy()
        self.cubes = cubes
        self.on_run = on_run
        self.last_result: RunResult | None = None
        self.last_error: str | None = None

    def run_once(self) -> RunResult:
        self.last_result = run(self.ledger, self.policy, self.cubes)
        if self.on_run is not None:
            self.on_run(self.last_result)
        return self.last_result

    def run_loop(self, stop_event: threading.Event, interval: float = 60.0) -> None:
        """Run a pass every ``interval`` seconds until ``stop_event`` is set; errors are logged, not fatal."""
        if interval <= 0:
            raise ValueError("interval must be positive")
        while not stop_event.is_set():
            try:
                self.run_once()
                self.last_error = None
            except LedgerError as exc:
                self.last_error = str(exc)
                log.warning("scheduler pass failed: %s", exc)
            stop_event.wait(interval)


def run_loop(
    stop_event: threading.Event,
    interval: float = 60.0,
    ledger: Ledger | None = None,
    policy: SchedulerPolicy | None = None,
    data_dir: str | None = None,
) -> None:
    """Service entry point: schedule ``ledger`` (or the ledger of ``data_dir``) until ``stop_event`` is set."""
    if ledger is None:
        from ledger.factory import open_ledger

        if data_dir is None:
            from ledger.config import default_data_dir

            data_dir = str(default_data_dir())
        ledger = open_ledger(data_dir)
    if policy is None:
        config = ledger.config
        policy = SchedulerPolicy.from_dict(config.section("scheduler") if config is not None else None)
    Scheduler(ledger, policy).run_loop(stop_event, interval)
