"""Search on a branch: main's views as of the branch's root fork offset, with the branch overlaid.

No view is rebuilt for a branch. ``Branches.overlay`` gives the offset of main below which the
branch equals main and the state on the branch of every memory it changed; the retrieval layer
searches main's views as of that offset and lets the overlay replace (or hide) those memories.
Reads are recorded on main naming the branch, like ``get`` on a branch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ledger.timemachine.branches import Branches


def search_branch(
    views: Any,
    branches: Branches,
    name: str,
    query: str,
    cube: str | Sequence[str] | None = None,
    k: int = 10,
    as_of: int | str | None = None,
    states: Iterable[str] | None = None,
    metadata: Mapping[str, Any] | None = None,
    all_states: bool = False,
    actor: str | None = None,
    record_read: bool | None = None,
    where: dict[str, Any] | None = None,
    min_score: float | None = None,
) -> list[Any]:
    """Hybrid search on branch ``name`` (``as_of`` is an offset or time *of the branch*).

    ``where`` and ``min_score`` as in ``ViewSet.search``: main's memories are filtered inside the
    views as of the fork offset, the branch's own versions by the same filter."""
    branch = branches.branch_ledger(name)
    end = branch.resolve_as_of(as_of)
    fork_offset, overlay = branches.overlay(name, end)
    hits = views.search(
        query,
        cube=cube,
        k=k,
        as_of=fork_offset,
        states=states,
        metadata=metadata,
        all_states=all_states,
        actor=None,
        record_read=False,
        overlay=overlay,
        branch=name,
        where=where,
        min_score=min_score,
    )
    for h in hits:  # offsets above the fork are the branch's: resolve event ids on the branch's log
        if hasattr(h, "event_ids"):
            h.event_ids = [e.event_id for o in h.memory.event_offsets for e in branch.log.read(o, o)]
    cubes = [cube] if isinstance(cube, str) else list(cube or [])
    by_cube: dict[str, list[str]] = {c: [] for c in cubes}
    for h in hits:
        by_cube.setdefault(h.memory.cube, []).append(h.memory_id)
    for c, ids in by_cube.items():
        if branch.cube_exists(c):
            branch._record_read(
                c, ids, "search", actor, record_read, query=query[:100_000], as_of=None if as_of is None else end
            )
    return hits
