"""The HTTP requests behind every client method, built once for the sync and the async client.

Each builder returns a ``Call``: method, path, query, JSON body, whether a retry is safe (reads,
and writes carrying an idempotency key) and how to turn the response JSON into the result.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import quote

from ledger.client.models import JSON, Hit, Memory, Page, Written

R = TypeVar("R")
Point = int | str  # an offset or an ISO-8601 time
Query = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Call(Generic[R]):
    """One request of the API and the parser of its answer."""

    method: str
    path: str
    parse: Callable[[Any], R]
    params: Query = ()
    body: JSON | None = None
    retry_safe: bool = False  # a repeat cannot write twice (a read, or a write with an idempotency key)
    ndjson: bool = False  # the answer is JSON lines (parse gets the list of records)


def seg(value: str) -> str:
    """One URL path segment (names may hold ``:`` or ``@``; ids are opaque)."""
    return quote(value, safe="")


def _q(**values: Any) -> Query:
    out: list[tuple[str, str]] = []
    for key, value in values.items():
        if value is None:
            continue
        items = value if isinstance(value, list | tuple) else [value]
        for item in items:
            out.append((key, ("true" if item else "false") if isinstance(item, bool) else str(item)))
    return tuple(out)


def _body(**values: Any) -> JSON:
    return {k: v for k, v in values.items() if v is not None}


def _ident(data: Any) -> Any:
    return data


def _point(value: Point | None) -> str | None:
    return None if value is None else str(value)


def new_idempotency_key() -> str:
    """A fresh key for a write the client may have to retry."""
    return "mlc-" + uuid.uuid4().hex


# -- memories ---------------------------------------------------------------------------------
def add(
    cube: str,
    text: str,
    metadata: JSON | None = None,
    tags: Sequence[str] | None = None,
    subject: str | None = None,
    idempotency_key: str | None = None,
    branch: str | None = None,
    allow_duplicate: bool = False,
) -> Call[Written]:
    body = _body(
        cube=cube,
        text=text,
        metadata=metadata,
        tags=list(tags) if tags is not None else None,
        subject=subject,
        idempotency_key=idempotency_key or new_idempotency_key(),
        allow_duplicate=True if allow_duplicate else None,
    )
    path = "/v1/memories" if branch in (None, "main") else f"/v1/branches/{seg(str(branch))}/memories"
    return Call("POST", path, Written.from_dict, body=body, retry_safe=True)


def creates_cube(call: Call[Any]) -> bool:
    """Whether ``call`` is an add on main, whose missing cube the client creates (as the embedded API does)."""
    return call.method == "POST" and call.path == "/v1/memories"


def update(
    memory_id: str,
    text: str,
    metadata: JSON | None = None,
    expected_version: int | None = None,
    reason: str | None = None,
    branch: str | None = None,
) -> Call[Written]:
    body = _body(text=text, metadata=metadata, expected_version=expected_version, reason=reason)
    path = f"/v1/memories/{seg(memory_id)}"
    if branch not in (None, "main"):
        path = f"/v1/branches/{seg(str(branch))}/memories/{seg(memory_id)}"
    return Call("PUT", path, Written.from_dict, body=body)


def get(memory_id: str, as_of: Point | None = None, branch: str | None = None) -> Call[Memory]:
    path = f"/v1/memories/{seg(memory_id)}"
    if branch not in (None, "main"):
        path = f"/v1/branches/{seg(str(branch))}/memories/{seg(memory_id)}"
    return Call("GET", path, Memory.from_dict, params=_q(as_of=_point(as_of)), retry_safe=True)


def history(memory_id: str, as_of: Point | None = None) -> Call[list[Memory]]:
    return Call(
        "GET",
        f"/v1/memories/{seg(memory_id)}/history",
        lambda d: [Memory.from_dict(v) for v in d["versions"]],
        params=_q(as_of=_point(as_of)),
        retry_safe=True,
    )


def change_state(
    memory_id: str, to: str, reason: str | None = None, expected_version: int | None = None
) -> Call[Written]:
    body = _body(to=to, reason=reason, expected_version=expected_version)
    return Call("POST", f"/v1/memories/{seg(memory_id)}/state", Written.from_dict, body=body)


def merge(sources: Sequence[str], text: str, metadata: JSON | None = None, reason: str | None = None) -> Call[Written]:
    body = _body(sources=list(sources), text=text, metadata=metadata, reason=reason)
    return Call("POST", "/v1/memories/merge", Written.from_dict, body=body)


def link(source: str, target: str, relation: str) -> Call[Written]:
    body = {"target": target, "relation": relation}
    return Call("POST", f"/v1/memories/{seg(source)}/links", Written.from_dict, body=body)


def list_memories(
    cube: str,
    as_of: Point | None = None,
    state: str | None = None,
    limit: int = 100,
    after: str | None = None,
    where: JSON | None = None,
    branch: str | None = None,
) -> Call[Page]:
    if where or branch is not None:  # a filter (or a branch) travels in a body: POST /cubes/{c}/list (safe to repeat)
        where = where or {}
        flt = (
            where
            if state is None
            else {**where, "state": state}
            if "state" not in where
            else {"$and": [where, {"state": state}]}
        )
        body = _body(where=flt or None, as_of=_point(as_of), limit=limit, after=after, branch=branch)
        return Call("POST", f"/v1/cubes/{seg(cube)}/list", Page.from_dict, body=body, retry_safe=True)
    params = _q(as_of=_point(as_of), state=state, limit=limit, after=after)
    return Call("GET", f"/v1/cubes/{seg(cube)}/memories", Page.from_dict, params=params, retry_safe=True)


def search(
    query: str,
    cubes: Sequence[str] | None = None,
    k: int = 10,
    as_of: Point | None = None,
    branch: str | None = None,
    states: Sequence[str] | None = None,
    all_states: bool = False,
    metadata: JSON | None = None,
    where: JSON | None = None,
    min_score: float | None = None,
) -> Call[list[Hit]]:
    body = _body(
        query=query,
        cubes=list(cubes) if cubes is not None else None,
        k=k,
        as_of=_point(as_of),
        branch=branch,
        states=list(states) if states is not None else None,
        all_states=all_states or None,
        metadata=metadata,
        where=where or None,
        min_score=min_score,
    )
    # a search writes only its own audit record (memory.read): repeating it is harmless
    return Call("POST", "/v1/search", lambda d: [Hit.from_dict(h) for h in d["hits"]], body=body, retry_safe=True)


# -- deletion, erasure, redaction, lineage ---------------------------------------------------
def delete(memory_id: str, reason: str | None = None, expected_version: int | None = None) -> Call[Written]:
    body = _body(reason=reason, expected_version=expected_version)
    # not retried: a repeat of a delete that took effect answers NotFound ("was deleted")
    return Call("DELETE", f"/v1/memories/{seg(memory_id)}", Written.from_dict, body=body or None)


def delete_where(cube: str, where: JSON | None = None, reason: str | None = None) -> Call[JSON]:
    return Call("POST", f"/v1/cubes/{seg(cube)}/delete", _ident, body=_body(where=where, reason=reason))


def erase(memory_id: str, reason: str) -> Call[JSON]:
    # erasing an erased memory finishes the erasure again (``already_erased``): a repeat is safe
    return Call("POST", f"/v1/memories/{seg(memory_id)}/erase", _ident, body={"reason": reason}, retry_safe=True)


def erase_where(cube: str, reason: str, where: JSON | None = None) -> Call[JSON]:
    return Call("POST", f"/v1/cubes/{seg(cube)}/erase", _ident, body=_body(where=where, reason=reason))


def redact(memory_id: str, spans: Sequence[tuple[int, int]], reason: str) -> Call[JSON]:
    """``spans`` are ``(start, end)`` character offsets, end exclusive (sent as start and length)."""
    body = {"spans": [_span(s) for s in spans], "reason": reason}
    return Call("POST", f"/v1/memories/{seg(memory_id)}/redact", _ident, body=body)


def _span(span: Sequence[int]) -> JSON:
    start, end = span
    return {"start": start, "length": end - start}


def lineage(memory_id: str, as_of: Point | None = None, depth: int = 10) -> Call[JSON]:
    params = _q(as_of=_point(as_of), depth=depth)
    return Call("GET", f"/v1/memories/{seg(memory_id)}/lineage", _ident, params=params, retry_safe=True)


# -- conversation messages -------------------------------------------------------------------
def ingest(
    cube: str,
    messages: Sequence[JSON],
    user_id: str | None = None,
    agent_id: str | None = None,
    run_id: str | None = None,
    session_id: str | None = None,
    subject: str | None = None,
    batch_id: str | None = None,
) -> Call[JSON]:
    body = _body(
        messages=[dict(m) for m in messages],
        user_id=user_id,
        agent_id=agent_id,
        run_id=run_id,
        session_id=session_id,
        subject=subject,
        batch_id=batch_id or new_idempotency_key(),  # a retry of this call writes nothing new
    )
    return Call("POST", f"/v1/cubes/{seg(cube)}/messages", _ident, body=body, retry_safe=True)


def messages_status(cube: str) -> Call[JSON]:
    return Call("GET", f"/v1/cubes/{seg(cube)}/messages/status", _ident, retry_safe=True)


# -- legal holds, subject access --------------------------------------------------------------
def place_hold(
    reason: str, cube: str | None = None, subject: str | None = None, memory_id: str | None = None
) -> Call[JSON]:
    body = _body(cube=cube, subject=subject, memory_id=memory_id, reason=reason)
    return Call("POST", "/v1/holds", _ident, body=body)


def holds() -> Call[list[JSON]]:
    return Call("GET", "/v1/holds", lambda d: d["holds"], retry_safe=True)


def release_hold(hold_id: str, reason: str | None = None) -> Call[JSON]:
    return Call("POST", f"/v1/holds/{seg(hold_id)}/release", _ident, body=_body(reason=reason))


def subject_export(subject: str, sign: bool = False) -> Call[list[JSON]]:
    params = _q(sign=sign)
    return Call("GET", f"/v1/subjects/{seg(subject)}/export", _ident, params=params, retry_safe=True, ndjson=True)


# -- cubes, access ----------------------------------------------------------------------------
def create_cube(cube: str, visibility: str = "private", metadata: JSON | None = None) -> Call[JSON]:
    return Call("POST", "/v1/cubes", _ident, body=_body(cube=cube, visibility=visibility, metadata=metadata))


def cubes() -> Call[list[JSON]]:
    return Call("GET", "/v1/cubes", lambda d: d["cubes"], retry_safe=True)


def grants(cube: str) -> Call[JSON]:
    return Call("GET", f"/v1/cubes/{seg(cube)}/grants", _ident, retry_safe=True)


def grant(cube: str, principal: str, role: str) -> Call[JSON]:
    body = {"principal": principal, "role": role}
    # granting a role that is held already changes nothing: a repeat is safe
    return Call("POST", f"/v1/cubes/{seg(cube)}/grants", _ident, body=body, retry_safe=True)


def revoke(cube: str, principal: str, role: str) -> Call[JSON]:
    return Call("DELETE", f"/v1/cubes/{seg(cube)}/grants/{seg(principal)}/{seg(role)}", _ident)


def whoami() -> Call[JSON]:
    return Call("GET", "/v1/whoami", _ident, retry_safe=True)


def head() -> Call[JSON]:
    return Call("GET", "/v1/head", _ident, retry_safe=True)


# -- audit ------------------------------------------------------------------------------------
def audit(
    cube: str | None = None,
    memory: str | None = None,
    actor: str | None = None,
    since: Point | None = None,
    until: Point | None = None,
    types: Sequence[str] | None = None,
    as_of: Point | None = None,
    limit: int = 1000,
) -> Call[list[JSON]]:
    params = _q(
        cube=cube,
        memory=memory,
        actor=actor,
        since=_point(since),
        until=_point(until),
        type=list(types) if types is not None else None,
        as_of=_point(as_of),
        limit=limit,
    )
    return Call("GET", "/v1/audit", lambda d: d["entries"], params=params, retry_safe=True)


# -- branches ---------------------------------------------------------------------------------
def branches() -> Call[list[JSON]]:
    return Call("GET", "/v1/branches", lambda d: d["branches"], retry_safe=True)


def create_branch(name: str, at: Point | None = None, from_branch: str | None = None) -> Call[JSON]:
    body = _body(name=name, at=_point(at), from_branch=from_branch)
    return Call("POST", "/v1/branches", _ident, body=body)


def branch_diff(name: str) -> Call[list[JSON]]:
    return Call("GET", f"/v1/branches/{seg(name)}/diff", lambda d: d["changes"], retry_safe=True)


def merge_branch(name: str, strict: bool = False) -> Call[JSON]:
    return Call("POST", f"/v1/branches/{seg(name)}/merge", _ident, body={"strict": strict})


def drop_branch(name: str, cascade: bool = False) -> Call[JSON]:
    return Call("DELETE", f"/v1/branches/{seg(name)}", _ident, params=_q(cascade=cascade))


# -- streams (the transport reads these line by line) -----------------------------------------
def export(cube: str, as_of: Point | None = None) -> Call[list[JSON]]:
    params = _q(as_of=_point(as_of))
    return Call("GET", f"/v1/cubes/{seg(cube)}/export", _ident, params=params, retry_safe=True, ndjson=True)


def log_stream(start: int = 0, follow: bool = False, limit: int | None = None) -> Call[JSON]:
    params = (("from", str(start)), *_q(follow=follow, limit=limit))
    return Call("GET", "/v1/log/stream", _ident, params=params, retry_safe=True)
