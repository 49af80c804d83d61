"""Audit records of the MCP tool calls that would otherwise write nothing.

Every tool call is an event naming the principal. Writes are events already, and so are the reads
of memories (``memory.read`` from get, history, search and list); ``list_cubes``, ``list_branches``,
``diff_branch``, ``memory_audit`` and ``memory_lineage`` go through API calls that record nothing,
so the MCP layer appends one ``memory.read`` event for each (``operation`` names what was read):

- on the memory's cube, naming it, for ``audit`` and ``lineage``;
- on each cube whose memories a branch diff showed, naming them and the branch, for ``branch_diff``
  (on ``_system`` when the diff is empty or the cube exists only on the branch);
- on ``_system`` for ``list_cubes`` and ``list_branches``.

A call that fails writes nothing here: refusals are recorded by the API (``access.denied``), and
bad input is refused without writing, as everywhere.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from ledger import events as ev
from ledger.api import Ledger
from ledger.client.embedded import memory_cube
from ledger.events import NewEvent

MAX_IDS = 10_000  # memory.read carries at most this many ids

# (operation, memory ids, cube or None, branch or None); resolves the cube from the first id when None
Recorder = Callable[[str, Sequence[str], str | None, str | None], Awaitable[None]]


def record_read(
    ledger: Ledger,
    actor: str,
    operation: str,
    memory_ids: Sequence[str] = (),
    cube: str | None = None,
    branch: str | None = None,
    correlation_id: str | None = None,
) -> None:
    """Append the ``memory.read`` record of one tool call by ``actor``."""
    ids = list(dict.fromkeys(memory_ids))[:MAX_IDS]
    if cube is None and ids:
        cube = memory_cube(ledger, ids[0])
    stream = cube if cube is not None and ledger.cube_exists(cube) else ev.SYSTEM_STREAM
    payload: dict[str, object] = {"memory_ids": ids, "operation": operation}
    if branch is not None:
        payload["branch"] = branch
    ledger.log.append([NewEvent(stream, ev.MEMORY_READ, payload, actor, correlation_id=correlation_id)])
