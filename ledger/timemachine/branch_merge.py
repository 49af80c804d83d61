"""Branch diff and merge.

``diff`` compares every memory a branch's own events touched with its state in the base (main or
the parent branch) at the fork point. ``merge`` replays the branch's own events onto the base in
one atomic batch, after checking that none of the memories it touched was changed on the base
since the fork (a conflict report names each one, with the base events that changed it). The
append carries the base's stream versions seen by that check as expected versions, so a write
racing the merge makes it check again instead of slipping through; ``strict=True`` instead
requires every stream the branch wrote to be exactly at its fork-point version on the base.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from ledger import events as ev
from ledger.errors import ConcurrencyConflict, LedgerError, StateError
from ledger.events import Event, NewEvent
from ledger.log import Log
from ledger.memory_state import MEMORY_EVENTS, MemoryState, fold
from ledger.timemachine.branch_access import BranchAction
from ledger.timemachine.branch_log import BranchLog, stream_version_at
from ledger.timemachine.branch_store import MERGED
from ledger.timemachine.branches import MAIN, Branches

CHANGING = MEMORY_EVENTS | {ev.MEMORY_MERGED}
_COMPARED = ("text", "metadata", "tags", "state", "exists", "sources", "merged_into", "sealed", "forgotten")


def touched_memories(events: list[Event]) -> list[str]:
    """Ids of memories changed by ``events`` (in first-touch order)."""
    out: dict[str, None] = {}
    for e in events:
        if e.type in CHANGING:
            out[e.payload["memory_id"]] = None
            for s in e.payload.get("sources", []) if e.type == ev.MEMORY_MERGED else []:
                out[s] = None
    return list(out)


def _state(log: Log, registry: Any, opener: Any, mid: str, end: int) -> MemoryState | None:
    if end < 0:
        return None
    s = fold((registry.upcast(e) for e in log.read_refs(mid, end)), opener).get(mid)
    return s if s is not None and s.exists else None


@dataclass
class DiffEntry:
    """One memory that differs between a branch and its base at the fork point."""

    memory_id: str
    change: str  # added | changed | removed
    fields: list[str]
    before: MemoryState | None
    after: MemoryState | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.memory_id,
            "change": self.change,
            "fields": self.fields,
            "before": self.before.to_dict() if self.before else None,
            "after": self.after.to_dict() if self.after else None,
        }


def diff(branches: Branches, name: str, against: str = "main") -> list[DiffEntry]:
    """Memories added, changed or removed on ``name`` relative to the fork point.

    ``against="main"``: relative to main where the branch (or its oldest ancestor branch) left
    it, counting the changes of every ancestor branch it sees; ``against="parent"``: relative to
    its direct base at its own fork offset, i.e. what a merge would bring into the parent.
    """
    if against not in ("main", "parent"):
        from ledger.errors import InvalidRequest

        raise InvalidRequest(f"diff against must be 'main' or 'parent', not {against!r}")
    leaf = branches.branch_log(name)
    reg, opener = branches.main.registry, branches.main.opener
    own: list[Event] = []
    base: Log = leaf
    limit = leaf.head()
    while isinstance(base, BranchLog) and (base is leaf or against == "main"):
        if limit > base.fork:
            own = [reg.upcast(e) for e in base.own_events(None, limit)] + own
            limit = base.fork
        base = base.base
    fork = leaf.fork if against == "parent" else limit
    out: list[DiffEntry] = []
    for mid in touched_memories(own):
        before = _state(base, reg, opener, mid, fork)
        after = _state(leaf, reg, opener, mid, leaf.head())
        if before is None and after is None:
            continue
        if before is None:
            out.append(DiffEntry(mid, "added", [], None, after))
        elif after is None:
            out.append(DiffEntry(mid, "removed", [], before, None))
        else:
            fields = [f for f in _COMPARED if getattr(before, f) != getattr(after, f)]
            if fields:
                out.append(DiffEntry(mid, "changed", fields, before, after))
    return out


@dataclass
class Conflict:
    """A memory (or cube) changed both on the branch and on the base since the fork."""

    ref: str
    kind: str  # memory | cube | event id
    base_events: list[Event] = field(default_factory=list)

    def describe(self) -> str:
        changes = ", ".join(f"{e.type} at offset {e.offset} by {e.actor}" for e in self.base_events[:5])
        more = f" (+{len(self.base_events) - 5} more)" if len(self.base_events) > 5 else ""
        return f"{self.kind} {self.ref}: changed on the base since the fork: {changes}{more}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "kind": self.kind,
            "base_events": [
                {"offset": e.offset, "type": e.type, "actor": e.actor, "time": e.time} for e in self.base_events
            ],
        }


class MergeConflict(LedgerError):
    """A merge was refused; ``conflicts`` names every memory changed on both sides. Nothing was written."""

    def __init__(self, branch: str, into: str, conflicts: list[Conflict]):
        lines = "\n  ".join(c.describe() for c in conflicts)
        super().__init__(
            f"cannot merge branch {branch!r} into {into}: {len(conflicts)} conflict(s); nothing was "
            f"written\n  {lines}\n(to resolve: fork a new branch at the current head and redo the "
            f"changes there, or look at `memledger branch diff {branch}` and apply them by hand)"
        )
        self.branch = branch
        self.into = into
        self.conflicts = conflicts


@dataclass
class MergeResult:
    """What a merge appended to the base."""

    branch: str
    into: str
    events: list[Event]
    memories: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "branch": self.branch,
            "into": self.into,
            "events": len(self.events),
            "first_offset": self.events[0].offset if self.events else None,
            "last_offset": self.events[-1].offset if self.events else None,
            "memories": self.memories,
        }


def find_conflicts(log: BranchLog, own: list[Event]) -> list[Conflict]:
    """Memories and cubes the branch changed that the base also changed after the fork."""
    base = log.base
    out: list[Conflict] = []
    for mid in touched_memories(own):
        later = [e for e in base.read_refs(mid) if e.offset > log.fork and e.type in CHANGING]
        if later:
            out.append(Conflict(mid, "memory", later))
    for e in own:
        clash = base.get_by_id(e.event_id)
        if clash is not None and clash.offset > log.fork:
            out.append(Conflict(e.event_id, "event id", [clash]))
        if (
            e.type == ev.CUBE_CREATED
            and stream_version_at(base, e.stream, log.fork) == 0
            and base.stream_version(e.stream) > 0
        ):
            first = next(iter(base.read_stream(e.stream, 1)), None)
            out.append(Conflict(e.stream, "cube", [first] if first else []))
    return out


def merge_event_id(info_event_id: str | None, name: str) -> str:
    """Deterministic id of a branch's ``branch.merged`` event, so a retried merge is idempotent."""
    return hashlib.sha256(f"merge:{name}:{info_event_id}".encode()).hexdigest()[:32]


def merge(branches: Branches, name: str, actor: str, strict: bool = False, attempts: int = 20) -> MergeResult:
    """Replay the branch's own events onto its base (see module docstring); raise ``MergeConflict``.

    ``actor`` must own the branch (or be an admin) and, for a nested branch, may write its parent.
    """
    info = branches.info(name)
    branches.access.require(info, actor, BranchAction.MERGE)
    if info.parent is not None:
        branches.access.require(branches.info(info.parent), actor, BranchAction.WRITE)
    if info.status == MERGED:
        raise StateError(f"branch {name!r} was already merged")
    log = branches.branch_log(name)
    into = info.parent or MAIN
    own = list(log.own_events())
    mid_list = touched_memories(own)
    merge_id = merge_event_id(info.event_id, name)
    streams = sorted({e.stream for e in own})
    done = branches.main.log.get_by_id(merge_id)
    if done is not None:  # an earlier merge was appended but not marked: finish it
        branches.store.conn().execute("UPDATE branches SET status = ? WHERE name = ?", (MERGED, name))
        return MergeResult(name, into, [e for e in (log.base.get_by_id(x.event_id) for x in own) if e], mid_list)
    if own and info.parent is not None:
        landed = [log.base.get_by_id(e.event_id) for e in own]
        if all(x is not None and x.offset > log.fork for x in landed):  # appended, audit record missing
            branches.main.log.append(
                [
                    NewEvent(
                        ev.SYSTEM_STREAM,
                        ev.BRANCH_MERGED,
                        {"name": name, "events": len(own), "into": info.parent},
                        actor,
                        event_id=merge_id,
                    )
                ]
            )
            branches.store.conn().execute("UPDATE branches SET status = ? WHERE name = ?", (MERGED, name))
            return MergeResult(name, into, [x for x in landed if x is not None], mid_list)
    for _ in range(attempts):
        conflicts = find_conflicts(log, own)
        if conflicts:
            raise MergeConflict(name, into, conflicts)
        if strict:
            expected = {s: stream_version_at(log.base, s, log.fork) for s in streams}
        else:
            expected = {s: log.base.stream_version(s) for s in streams}
        replay = [
            NewEvent(
                e.stream,
                e.type,
                e.payload,
                e.actor,
                schema_version=e.schema_version,
                event_id=e.event_id,
                causation_id=e.causation_id,
                correlation_id=e.correlation_id or merge_id,
            )
            for e in own
        ]
        audit = NewEvent(
            ev.SYSTEM_STREAM,
            ev.BRANCH_MERGED,
            {"name": name, "events": len(own), "into": info.parent},
            actor,
            event_id=merge_id,
        )
        try:
            if info.parent is None:  # onto main: the events and the audit record in one atomic batch
                written = log.base.append([*replay, audit], expected)[:-1]
            else:
                parent = branches.branch_log(info.parent)
                written = parent.append(replay, expected, writer=actor) if replay else []
                branches.main.log.append([audit])
        except ConcurrencyConflict as exc:
            if strict:
                moved = log.base.read_stream(exc.stream, stream_version_at(log.base, exc.stream, log.fork) + 1)
                conflict = Conflict(exc.stream, "cube", list(islice(moved, 100)))
                raise MergeConflict(name, into, [conflict]) from None
            continue  # the base moved between the check and the append: check again
        conn = branches.store.conn()
        conn.execute("UPDATE branches SET status = ? WHERE name = ?", (MERGED, name))
        return MergeResult(name, into, written, mid_list)
    raise ConcurrencyConflict(f"merge of branch {name}", 0, -1)
