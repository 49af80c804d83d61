"""The MCP tools: one async function per memory operation, each with a description written for
the model that reads it. ``TOOLS`` is the table ``ledger.mcp.server`` registers; a new operation
is one function here and one row in the table.

Every tool runs through a ``Session`` (``ledger.mcp.backend``), so the same table serves the
stdio server (embedded ledger) and the HTTP server (the REST API with the caller's token).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context
from mcp_types import ToolAnnotations
from pydantic import BaseModel, Field

from ledger.client.models import JSON, Hit, Memory, Written
from ledger.mcp.backend import Session, SessionFactory

# -- parameter types (their descriptions are what the model sees) ------------------------------
Text = Annotated[
    str, Field(description="the memory itself: one self-contained statement, e.g. 'Alice prefers green tea'")
]
CubeArg = Annotated[
    str | None, Field(description="cube (memory collection) to use; omit it to use this server's default cube")
]
MemoryId = Annotated[str, Field(description="memory id as returned by add_memory or search_memories (mem_...)")]
Metadata = Annotated[
    dict[str, Any] | None,
    Field(description="JSON object stored with the memory and usable as a search filter, e.g. {'user_id': 'alice'}"),
]
AsOf = Annotated[
    str | None,
    Field(description="read the past: a log offset (e.g. '41') or an ISO-8601 time (e.g. '2026-11-25T10:00:00Z')"),
]
Branch = Annotated[str | None, Field(description="a branch (counterfactual fork) instead of main")]
Where = Annotated[
    dict[str, Any] | None,
    Field(
        description='filter: {"user_id": "u1", "n": {"$gte": 2}, "$or": [...]}; operators $eq $ne $in $nin '
        "$gt $gte $lt $lte $contains $and $or $not over scopes (user_id, agent_id, run_id), metadata, "
        "tags, state and times (ledger/rules/filters.py)"
    ),
]
State = Literal["generated", "activated", "archived", "frozen"]
ListState = Literal["generated", "activated", "merged", "archived", "frozen"]


def _written(w: Written, **extra: Any) -> JSON:
    return {"id": w.id, "offset": w.offset, "event_id": w.event_id, **extra}


def _memory(m: Memory) -> JSON:
    keys = ("id", "cube", "text", "metadata", "tags", "state", "version", "created_at", "created_by")
    return {**{k: m.raw[k] for k in keys if k in m.raw}, "updated_at": m.updated_at, "updated_by": m.updated_by}


def _hit(h: Hit) -> JSON:
    return {
        "id": h.id,
        "score": h.score,
        "text": h.text,
        "cube": h.cube,
        "state": h.state,
        "metadata": h.metadata,
        "version": h.version,
        "updated_at": h.updated_at,
    }


@dataclass(frozen=True)
class ToolSpec:
    """One row of the tool table: the function (built over a session factory) and its hints."""

    name: str
    make: Callable[[SessionFactory], Callable[..., Awaitable[JSON]]]
    read_only: bool
    description: str
    destructive: bool = False
    idempotent: bool = False


# -- the tools -----------------------------------------------------------------------------------
def _add(sessions: SessionFactory) -> Callable[..., Awaitable[JSON]]:
    async def add_memory(
        text: Text,
        ctx: Context,
        cube: CubeArg = None,
        metadata: Metadata = None,
        tags: Annotated[list[str] | None, Field(description="labels, e.g. ['preference']")] = None,
    ) -> JSON:
        async with sessions(ctx) as s:
            name = s.cube(cube)
            return _written(await s.api.add(cube=name, text=text, metadata=metadata, tags=tags), cube=name)

    return add_memory


def _search(sessions: SessionFactory) -> Callable[..., Awaitable[JSON]]:
    async def search_memories(
        query: Annotated[str, Field(description="what to look for, in natural language or keywords")],
        ctx: Context,
        cubes: Annotated[
            list[str] | None, Field(description="cubes to search; default: the default cube, else every readable cube")
        ] = None,
        k: Annotated[int, Field(ge=1, le=100, description="number of results")] = 5,
        metadata: Annotated[
            dict[str, Any] | None, Field(description="only memories whose metadata has these top-level values")
        ] = None,
        as_of: AsOf = None,
        branch: Branch = None,
        states: Annotated[
            list[ListState] | None, Field(description="lifecycle states to include (default: all but merged/archived)")
        ] = None,
        where: Where = None,
        min_score: Annotated[
            float | None, Field(description="drop hits whose fused score is lower (the best hit scores about 1-2)")
        ] = None,
    ) -> JSON:
        async with sessions(ctx) as s:
            hits = await s.api.search(
                query,
                cubes=s.cubes(cubes),
                k=k,
                as_of=as_of,
                branch=branch,
                states=states,
                metadata=metadata,
                where=where,
                min_score=min_score,
            )
            return {"query": query, "hits": [_hit(h) for h in hits]}

    return search_memories


def _get(sessions: SessionFactory) -> Callable[..., Awaitable[JSON]]:
    async def get_memory(memory_id: MemoryId, ctx: Context, as_of: AsOf = None, branch: Branch = None) -> JSON:
        async with sessions(ctx) as s:
            return _memory(await s.api.get(memory_id, as_of=as_of, branch=branch))

    return get_memory


def _history(sessions: SessionFactory) -> Callable[..., Awaitable[JSON]]:
    async def memory_history(memory_id: MemoryId, ctx: Context, as_of: AsOf = None) -> JSON:
        async with sessions(ctx) as s:
            return {"id": memory_id, "versions": [_memory(v) for v in await s.api.history(memory_id, as_of=as_of)]}

    return memory_history


def _update(sessions: SessionFactory) -> Callable[..., Awaitable[JSON]]:
    async def update_memory(
        memory_id: MemoryId,
        text: Text,
        ctx: Context,
        metadata: Metadata = None,
        expected_version: Annotated[
            int | None, Field(ge=1, description="fail instead of overwriting if the memory changed since this version")
        ] = None,
        reason: Annotated[str | None, Field(description="why it changed (kept in the audit trail)")] = None,
        branch: Branch = None,
    ) -> JSON:
        async with sessions(ctx) as s:
            w = await s.api.update(
                memory_id, text, metadata=metadata, expected_version=expected_version, reason=reason, branch=branch
            )
            return _written(w)

    return update_memory


def _list(sessions: SessionFactory) -> Callable[..., Awaitable[JSON]]:
    async def list_memories(
        ctx: Context,
        cube: CubeArg = None,
        state: Annotated[ListState | None, Field(description="only memories in this lifecycle state")] = None,
        limit: Annotated[int, Field(ge=1, le=1000, description="page size")] = 50,
        after: Annotated[str | None, Field(description="the next_cursor of the previous page")] = None,
        as_of: AsOf = None,
        where: Where = None,
    ) -> JSON:
        async with sessions(ctx) as s:
            page = await s.api.list_memories(
                s.cube(cube), as_of=as_of, state=state, limit=limit, after=after, where=where
            )
            memories = [_memory(m) for m in page.memories]
            return {
                "cube": page.cube,
                "memories": memories,
                "next_cursor": page.next_after,
                "next_after": page.next_after,
            }

    return list_memories


def _audit(sessions: SessionFactory) -> Callable[..., Awaitable[JSON]]:
    async def memory_audit(
        memory_id: MemoryId,
        ctx: Context,
        since: AsOf = None,
        until: AsOf = None,
        limit: Annotated[int, Field(ge=1, le=10_000)] = 200,
    ) -> JSON:
        async with sessions(ctx) as s:
            entries = await s.api.audit(memory=memory_id, since=since, until=until, limit=limit)
            await s.record("audit", [memory_id])
            return {"memory": memory_id, "entries": entries}

    return memory_audit


def _set_state(sessions: SessionFactory) -> Callable[..., Awaitable[JSON]]:
    async def set_memory_state(
        memory_id: MemoryId,
        state: Annotated[State, Field(description="the new lifecycle state")],
        ctx: Context,
        reason: Annotated[str | None, Field(description="why (kept in the audit trail)")] = None,
    ) -> JSON:
        async with sessions(ctx) as s:
            return _written(await s.api.change_state(memory_id, state, reason=reason), state=state)

    return set_memory_state


def _cubes(sessions: SessionFactory) -> Callable[..., Awaitable[JSON]]:
    async def list_cubes(ctx: Context) -> JSON:
        async with sessions(ctx) as s:
            cubes = await s.api.cubes()
            await s.record("list_cubes")
            return {"default_cube": s.default_cube, "cubes": cubes}

    return list_cubes


def _create_branch(sessions: SessionFactory) -> Callable[..., Awaitable[JSON]]:
    async def create_branch(
        name: Annotated[str, Field(description="branch name (letters, digits, _ - . @ :)")],
        ctx: Context,
        at: Annotated[str | None, Field(description="fork point: offset or ISO-8601 time; default: now")] = None,
        from_branch: Annotated[str | None, Field(description="fork another branch instead of main")] = None,
    ) -> JSON:
        async with sessions(ctx) as s:
            return await s.api.create_branch(name, at=at, from_branch=from_branch)

    return create_branch


def _diff_branch(sessions: SessionFactory) -> Callable[..., Awaitable[JSON]]:
    async def diff_branch(name: Annotated[str, Field(description="branch name")], ctx: Context) -> JSON:
        async with sessions(ctx) as s:
            changes = await s.api.branch_diff(name)
            await _record_diff(s, name, changes)
            return {"branch": name, "changes": changes}

    return diff_branch


async def _record_diff(s: Session, branch: str, changes: list[JSON]) -> None:
    """A diff shows memories' versions: one read record per cube they belong to."""
    by_cube: dict[str | None, list[str]] = {}
    for c in changes:
        side = c.get("after") or c.get("before") or {}
        by_cube.setdefault(side.get("cube"), []).append(str(c["id"]))
    for cube, ids in by_cube.items() or [(None, [])]:
        await s.record("branch_diff", ids, cube, branch)


def _delete(sessions: SessionFactory) -> Callable[..., Awaitable[JSON]]:
    async def delete_memory(
        memory_id: MemoryId,
        ctx: Context,
        reason: Annotated[str | None, Field(description="why it is deleted (kept in the audit trail)")] = None,
        expected_version: Annotated[
            int | None, Field(ge=1, description="fail instead of deleting if the memory changed since this version")
        ] = None,
    ) -> JSON:
        async with sessions(ctx) as s:
            w = await s.api.delete(memory_id, reason=reason, expected_version=expected_version)
            return _written(w, deleted=True)

    return delete_memory


def _erase(sessions: SessionFactory) -> Callable[..., Awaitable[JSON]]:
    async def erase_memory(
        memory_id: MemoryId,
        reason: Annotated[
            str,
            Field(
                min_length=1,
                max_length=2000,
                description="why it must be erased, e.g. 'the user asked to erase their phone number' (recorded)",
            ),
        ],
        ctx: Context,
    ) -> JSON:
        async with sessions(ctx) as s:
            report = await s.api.erase(memory_id, reason=reason)
            keys = ("erased", "derived", "keys_destroyed", "already_erased", "complete", "problems", "offsets")
            return {k: report[k] for k in keys if k in report}

    return erase_memory


def _lineage(sessions: SessionFactory) -> Callable[..., Awaitable[JSON]]:
    async def memory_lineage(
        memory_id: MemoryId,
        ctx: Context,
        as_of: AsOf = None,
        depth: Annotated[int, Field(ge=1, le=100, description="how many hops to follow each way")] = 10,
    ) -> JSON:
        async with sessions(ctx) as s:
            out = await s.api.lineage(memory_id, as_of=as_of, depth=depth)
            await s.record("lineage", [memory_id])
            return out

    return memory_lineage


class ChatMessage(BaseModel):
    """One conversation message, as the model saw it."""

    role: Literal["user", "assistant", "system", "tool"]
    content: Annotated[str, Field(min_length=1, description="the message, verbatim")]
    name: Annotated[str | None, Field(description="the speaker's name, e.g. 'Alice'")] = None
    timestamp: Annotated[
        str | None, Field(description="when it was said, ISO-8601 (e.g. '2026-11-25T10:00:00Z'); resolves 'yesterday'")
    ] = None


ScopeArg = Annotated[str | None, Field(description="scope id the extracted facts are filed under")]


def _ingest(sessions: SessionFactory) -> Callable[..., Awaitable[JSON]]:
    async def ingest_messages(
        messages: Annotated[list[ChatMessage], Field(min_length=1, max_length=1000)],
        ctx: Context,
        cube: CubeArg = None,
        user_id: ScopeArg = None,
        agent_id: ScopeArg = None,
        run_id: ScopeArg = None,
        session_id: Annotated[str | None, Field(description="conversation/session id")] = None,
    ) -> JSON:
        async with sessions(ctx) as s:
            name = s.cube(cube)
            raw = [m.model_dump(exclude_none=True) for m in messages]
            done = await s.api.ingest(
                name, raw, user_id=user_id, agent_id=agent_id, run_id=run_id, session_id=session_id
            )
            return {**done, "status": await s.api.messages_status(name)}

    return ingest_messages


def _branches(sessions: SessionFactory) -> Callable[..., Awaitable[JSON]]:
    async def list_branches(ctx: Context) -> JSON:
        async with sessions(ctx) as s:
            branches = await s.api.branches()
            await s.record("list_branches")
            return {"branches": branches}

    return list_branches


TOOLS: list[ToolSpec] = [
    ToolSpec(
        "add_memory",
        _add,
        False,
        "Remember something: store one fact, preference or event as a new memory. Write one "
        "self-contained statement per call (name the person: 'Alice prefers green tea', not 'she "
        "likes it'). Returns the memory id.",
    ),
    ToolSpec(
        "ingest_messages",
        _ingest,
        False,
        "Hand over a conversation (or its latest turns) and let memledger work out what to "
        "remember: the messages are stored verbatim and facts are extracted from them in the "
        "background, kept current (a fact that changed is updated, a retracted one deleted, a "
        "repeated one ignored). Send each message once, in order, with role user or assistant "
        "and, when known, the speaker's name and the time it was said. Prefer this to add_memory "
        "for conversations; the extracted facts show up in search_memories shortly after.",
    ),
    ToolSpec(
        "search_memories",
        _search,
        True,
        "Recall: find the memories most relevant to a question (keyword + semantic + entity "
        "search). Use it before answering anything that depends on what you were told earlier. "
        "Filter by metadata, read the past with as_of, or search a branch.",
    ),
    ToolSpec("get_memory", _get, True, "Read one memory by id (optionally as it was at an earlier offset or time)."),
    ToolSpec(
        "memory_history",
        _history,
        True,
        "Every version of one memory, oldest first, with who changed it and when.",
    ),
    ToolSpec(
        "update_memory",
        _update,
        False,
        "Correct or replace a memory's text when a fact changed (e.g. Alice moved). The old "
        "version stays in the history; pass expected_version to avoid overwriting a concurrent change.",
    ),
    ToolSpec(
        "list_memories",
        _list,
        True,
        "List a cube's memories (paged by id), optionally in one lifecycle state or as of the past.",
    ),
    ToolSpec(
        "memory_audit",
        _audit,
        True,
        "The audit trail of one memory: who created, changed, read or merged it, and when.",
    ),
    ToolSpec(
        "set_memory_state",
        _set_state,
        False,
        "Move a memory through its lifecycle: activated (in use), archived (kept but no longer "
        "searched by default), frozen (read-only). Archive a memory that is no longer true.",
    ),
    ToolSpec("list_cubes", _cubes, True, "The cubes (memory collections) you can use, with your roles on each."),
    ToolSpec(
        "create_branch",
        _create_branch,
        False,
        "Fork a counterfactual branch of the memories (at now or at a past point) to try changes "
        "without touching main; write to it by passing branch= to add/update.",
    ),
    ToolSpec(
        "diff_branch", _diff_branch, True, "What a branch changed: memories added, changed or removed since its fork."
    ),
    ToolSpec("list_branches", _branches, True, "Every branch with its fork point and head."),
    ToolSpec(
        "delete_memory",
        _delete,
        False,
        "Delete a memory that is wrong, obsolete or that the user asked you to forget. From now on "
        "it is gone from search, get and list; it is NOT destroyed: reads of the past (as_of) still "
        "see it and an operator can restore it. To destroy the text itself, use erase_memory. "
        "Refused while a legal hold covers the memory.",
        destructive=True,
    ),
    ToolSpec(
        "erase_memory",
        _erase,
        False,
        "IRREVERSIBLE: permanently destroy a memory's text, and the text of every memory derived "
        "from it (merges, extracted facts). Its encryption keys are destroyed, so nobody, you "
        "included, can ever read it again, not even in the past; there is no undo. Use it only "
        "when the user explicitly asks for their data to be erased (a privacy request); otherwise "
        "use delete_memory. A reason is required and recorded. Needs the owner role on the cube; "
        "refused while a legal hold covers the memory.",
        destructive=True,
        idempotent=True,
    ),
    ToolSpec(
        "memory_lineage",
        _lineage,
        True,
        "Where a memory came from and what came of it: the memories it was merged or derived from, "
        "and the memories derived from it (which erase_memory would also make unreadable).",
    ),
]


def tool_hints(spec: ToolSpec) -> ToolAnnotations:
    """The MCP hints of a tool (read-only tools change nothing but their audit record)."""
    return ToolAnnotations(
        title=spec.name.replace("_", " "),
        read_only_hint=spec.read_only,
        destructive_hint=spec.destructive,
        idempotent_hint=spec.read_only or spec.idempotent,
    )
