"""Audit queries: who created, changed, read, merged, archived or restored what, and when.

Every answer comes straight from the log, so it is complete by construction. A query for one
memory reads only the events that reference it (the log's ``refs`` index), which keeps it fast
on any ledger size; queries by actor or type alone are filtered in SQL on the embedded log.
``knowledge`` answers "what did the system know about memory X at time T, and who had read it".
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ledger import events as ev
from ledger.api import Ledger
from ledger.errors import InvalidRequest, NotFound
from ledger.events import Event
from ledger.log import refs_of
from ledger.memory_state import fold
from ledger.rules.timepoints import parse_point

_HIDDEN = ("text", "sealed")  # content stays out of the audit trail; `get --as-of` shows it


def action_of(e: Event) -> str:
    """A short human verb for an event: created, changed, read (get), archived, restored to 12, ..."""
    p, t = e.payload, e.type
    if t == ev.MEMORY_ADDED:
        return "created"
    if t == ev.MEMORY_UPDATED:
        return "changed"
    if t == ev.MEMORY_MERGED:
        return f"merged {', '.join(p.get('sources', []))} into {p.get('memory_id')}"
    if t == ev.MEMORY_STATE_CHANGED:
        frm, to = p["from"], p["to"]
        if frm == "archived" and to == "activated":
            return "revived"
        return {"archived": "archived", "frozen": "froze"}.get(to, f"moved {frm} -> {to}")
    if t == ev.MEMORY_READ:
        where = f" on branch {p['branch']}" if p.get("branch") else ""
        return f"read ({p.get('operation')}){where}"
    if t == ev.MEMORY_RESTORED:
        gone = "" if p.get("exists", True) else " (removed)"
        return f"restored to offset {p['to_offset']}{gone}"
    if t == ev.MEMORY_TAGGED:
        return "tagged"
    if t == ev.MEMORY_LINKED:
        return f"linked {p['source']} -{p['relation']}-> {p['target']}"
    if t == ev.SUBJECT_FORGOTTEN:
        return f"forgot subject {p['subject']}"
    if t in (ev.BRANCH_CREATED, ev.BRANCH_DROPPED, ev.BRANCH_MERGED):
        return f"{t.split('.')[1]} branch {p['name']}"
    if t in ("branch.granted", "branch.revoked"):
        return (
            f"{t.split('.')[1]} {p['role']} on branch {p['name']} {'to' if t == 'branch.granted' else 'from'} "
            f"{p['principal']}"
        )
    if t == ev.CUBE_CREATED:
        return f"created cube {p['cube']}"
    return t


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audited event, content-free."""

    offset: int
    time: str
    actor: str
    type: str
    stream: str
    action: str
    memory_ids: list[str]
    details: dict[str, Any]
    event_id: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "offset": self.offset,
            "time": self.time,
            "actor": self.actor,
            "type": self.type,
            "stream": self.stream,
            "action": self.action,
            "memory_ids": self.memory_ids,
            "details": self.details,
            "event_id": self.event_id,
        }


def entry_of(e: Event) -> AuditEntry:
    """The audit view of one event."""
    p = e.payload
    ids = sorted(x for x in refs_of(p) if x != p.get("subject"))
    if e.type == ev.CUBE_CREATED:
        ids = []
    details = {k: v for k, v in p.items() if k not in _HIDDEN and k not in ("memory_id", "memory_ids")}
    return AuditEntry(e.offset, e.time, e.actor, e.type, e.stream, action_of(e), ids, details, e.event_id)


def to_offset(ledger: Ledger, value: int | str | None, upper: bool) -> int | None:
    """An offset bound from an offset or an ISO time (``upper``: last offset at/before; else first at/after)."""
    if value is None:
        return None
    kind, n = parse_point(value, "until" if upper else "since")
    if kind == "offset":
        return n
    return ledger.log.offset_at(n) if upper else ledger.log.offset_at(n - 1) + 1


def check_types(ledger: Ledger, types: Iterable[str] | None) -> list[str] | None:
    """Expand ``--type`` values (exact names or globs such as ``memory.*``) to known event types."""
    if not types:
        return None
    known = ledger.registry.types()
    out: list[str] = []
    for t in types:
        hits = fnmatch.filter(known, t) if any(c in t for c in "*?[") else ([t] if t in known else [])
        if not hits:
            raise InvalidRequest(f"unknown event type {t!r}; known: {', '.join(known)}")
        out.extend(h for h in hits if h not in out)
    return out


@dataclass
class AuditQuery:
    """Filters of an audit query; all optional and combined with AND."""

    memory: str | None = None
    cube: str | None = None
    actor: str | None = None
    since: int | str | None = None  # offset or ISO time, inclusive
    until: int | str | None = None  # offset or ISO time, inclusive
    types: list[str] | None = None
    as_of: int | str | None = None  # an upper bound like ``until``: what the log held then
    limit: int | None = None


def audit_events(ledger: Ledger, q: AuditQuery) -> Iterator[Event]:
    """The raw events matching ``q``, in offset order."""
    start = to_offset(ledger, q.since, upper=False) or 0
    end = ledger.head()
    for bound in (to_offset(ledger, q.until, upper=True), None if q.as_of is None else ledger.resolve_as_of(q.as_of)):
        if bound is not None:
            end = min(end, bound)
    types = check_types(ledger, q.types)
    if q.limit is not None and q.limit < 1:
        raise InvalidRequest("--limit must be at least 1")
    if end < start:
        return iter(())
    if q.memory is not None:
        if next(iter(ledger.log.read_refs(q.memory)), None) is None:
            raise NotFound(f"memory {q.memory} not found")
        source: Iterable[Event] = (e for e in ledger.log.read_refs(q.memory, end) if e.offset >= start)
    elif q.cube is not None:
        source = ledger.log.read_filtered(start, end, q.actor, types, q.cube, q.limit)
    else:
        source = ledger.log.read_filtered(start, end, q.actor, types, None, q.limit)
    return _filter(source, q, types)


def _filter(source: Iterable[Event], q: AuditQuery, types: list[str] | None) -> Iterator[Event]:
    wanted = set(types) if types else None
    n = 0
    for e in source:
        if q.actor is not None and e.actor != q.actor:
            continue
        if wanted is not None and e.type not in wanted:
            continue
        if q.cube is not None and e.stream != q.cube:
            continue
        yield e
        n += 1
        if q.limit is not None and n >= q.limit:
            return


def audit(ledger: Ledger, q: AuditQuery) -> list[AuditEntry]:
    """Audit entries matching ``q`` (content-free), oldest first."""
    return [entry_of(e) for e in audit_events(ledger, q)]


def knowledge(
    ledger: Ledger, memory_id: str, as_of: int | str | None, visible: Callable[[str], bool] | None = None
) -> dict[str, Any]:
    """What the system knew about ``memory_id`` at ``as_of`` and who had read it by then.

    ``visible(stream)`` limits the answer to events of the streams the caller may see (events of
    other cubes that name the memory, such as a link from another principal's cube, are left out).
    """
    end = ledger.resolve_as_of(as_of)
    events = [
        ledger.registry.upcast(e) for e in ledger.log.read_refs(memory_id, end) if visible is None or visible(e.stream)
    ]
    if not events and not any(True for _ in ledger.log.read_refs(memory_id)):
        raise NotFound(f"memory {memory_id} not found")
    state = fold(events, ledger.opener).get(memory_id)
    reads = [e for e in events if e.type == ev.MEMORY_READ]
    readers: dict[str, dict[str, Any]] = {}
    for e in reads:
        r = readers.setdefault(e.actor, {"actor": e.actor, "reads": 0, "first": e.time, "last": e.time})
        r["reads"] += 1
        r["last"] = e.time
    at = next(iter(ledger.log.read(end, end)), None) if end >= 0 else None
    return {
        "memory": memory_id,
        "as_of": end,
        "as_of_time": at.time if at else None,
        "existed": state is not None and state.exists,
        "state": state.to_dict() if state is not None else None,
        "readers": list(readers.values()),
        "reads": [entry_of(e).to_dict() for e in reads],
        "events": [entry_of(e).to_dict() for e in events],
    }
