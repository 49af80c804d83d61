"""MemCubes: the container of one user's, agent's or session's memories, and its metadata.

A cube is a stream of the log. Its metadata (owner, visibility, embedder and LLM model ids,
free metadata, the principals it is shared with) is the fold of its ``cube.created``,
``cube.updated`` and ``cube.shared`` events, so it too can be read as of any offset.

Visibility: a ``private`` cube is readable by its owner and by the principals it was shared
with; a ``shared`` cube is readable by every principal. :func:`readable_cubes` is what search
and the graph use to span the cubes a principal may see at query time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from ledger import events as ev
from ledger.api import Ledger, _check_cube_name
from ledger.errors import InvalidRequest, NotFound, StateError
from ledger.events import Event, NewEvent

CUBE_UPDATED = "cube.updated"
CUBE_SHARED = "cube.shared"
CUBE_IMPORTED = "cube.imported"
VISIBILITIES = ("private", "shared")


@dataclass(frozen=True)
class CubeInfo:
    """A cube's metadata as of some offset."""

    cube: str
    owner: str
    visibility: str
    embedder: str | None
    llm: str | None
    metadata: dict[str, Any]
    shared_with: tuple[str, ...]
    created_offset: int
    created_at: str
    updated_offset: int
    memories: int = 0
    events: int = 0
    imported_from: dict[str, Any] | None = None
    counts: dict[str, int] = field(default_factory=dict)

    def readable_by(self, principal: str) -> bool:
        return self.visibility == "shared" or principal == self.owner or principal in self.shared_with

    def to_dict(self) -> dict[str, Any]:
        return {
            "cube": self.cube,
            "owner": self.owner,
            "visibility": self.visibility,
            "embedder": self.embedder,
            "llm": self.llm,
            "metadata": self.metadata,
            "shared_with": list(self.shared_with),
            "created_offset": self.created_offset,
            "created_at": self.created_at,
            "updated_offset": self.updated_offset,
            "memories": self.memories,
            "events": self.events,
            "states": self.counts,
            "imported_from": self.imported_from,
        }


def fold_cube(events: Iterable[Event]) -> CubeInfo | None:
    """Fold one cube stream's events into its metadata (``None`` before ``cube.created``)."""
    info: CubeInfo | None = None
    n = 0
    for e in events:
        n += 1
        p = e.payload
        if e.type == ev.CUBE_CREATED:
            info = CubeInfo(
                p["cube"],
                p["owner"],
                p.get("visibility", "private"),
                p.get("embedder"),
                p.get("llm"),
                dict(p.get("metadata", {})),
                (),
                e.offset,
                e.time,
                e.offset,
            )
        elif info is None:
            continue
        elif e.type == CUBE_UPDATED:
            changes: dict[str, Any] = {k: p[k] for k in ("visibility", "embedder", "llm") if k in p}
            if "metadata" in p:
                changes["metadata"] = {**info.metadata, **p["metadata"]}
            info = replace(info, updated_offset=e.offset, **changes)
        elif e.type == CUBE_SHARED:
            others = tuple(x for x in info.shared_with if x != p["principal"])
            shared = (*others, p["principal"]) if p["action"] == "share" else others
            info = replace(info, shared_with=tuple(sorted(shared)), updated_offset=e.offset)
        elif e.type == ev.ACCESS_REVOKED and p.get("role") == "reader" and p.get("principal") in info.shared_with:
            # revoking reader ends a share too (as ledger.access folds it)
            shared = tuple(x for x in info.shared_with if x != p["principal"])
            info = replace(info, shared_with=shared, updated_offset=e.offset)
        elif e.type == CUBE_IMPORTED:
            info = replace(
                info,
                imported_from={k: p.get(k) for k in ("source_ledger", "merkle_root", "tree_size", "events")},
                updated_offset=e.offset,
            )
    return replace(info, events=n) if info is not None else None


def _stream_names(ledger: Ledger, end: int) -> Iterator[str]:
    yield from (s for s in ledger.log.streams() if not s.startswith("_"))


def get_cube(ledger: Ledger, cube: str, as_of: int | str | None = None) -> CubeInfo:
    """A cube's metadata and memory counts as of ``as_of``; ``NotFound`` if it did not exist then."""
    end = ledger.resolve_as_of(as_of)
    info = fold_cube(ledger.registry.upcast(e) for e in ledger.log.read_stream(cube, 1, end))
    if info is None:
        raise NotFound(f"cube {cube!r} not found" + ("" if as_of is None else f" as of offset {end}"))
    mems = ledger.cube_memories(cube, end)
    counts: dict[str, int] = {}
    for m in mems.values():
        counts[m.state] = counts.get(m.state, 0) + 1
    return replace(info, memories=len(mems), counts=counts)


def list_cubes(ledger: Ledger, as_of: int | str | None = None, readable_by: str | None = None) -> list[CubeInfo]:
    """Every cube (optionally only those ``readable_by`` a principal), sorted by name."""
    end = ledger.resolve_as_of(as_of)
    out = []
    for name in sorted(set(_stream_names(ledger, end))):
        try:
            info = get_cube(ledger, name, end)
        except NotFound:
            continue
        if readable_by is None or info.readable_by(readable_by):
            out.append(info)
    return out


def readable_cubes(ledger: Ledger, principal: str, as_of: int | str | None = None) -> list[str]:
    """Names of the cubes ``principal`` may read: own, shared with them, or visibility ``shared``."""
    return [c.cube for c in list_cubes(ledger, as_of, readable_by=principal)]


def create_cube(
    ledger: Ledger,
    cube: str,
    owner: str,
    visibility: str = "private",
    embedder: str | None = None,
    llm: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> CubeInfo:
    """Create a cube with its metadata; a clear error if the name is taken."""
    _check_cube_name(cube)
    if visibility not in VISIBILITIES:
        raise InvalidRequest(f"visibility must be one of {', '.join(VISIBILITIES)}, not {visibility!r}")
    if ledger.cube_exists(cube):
        raise StateError(f"cube {cube!r} already exists")
    ledger.create_cube(cube, owner, visibility=visibility, metadata=metadata, embedder=embedder, llm=llm)
    return get_cube(ledger, cube)


def _require_owner(info: CubeInfo, actor: str) -> None:
    if actor != info.owner:
        raise StateError(
            f"only the owner of cube {info.cube!r} ({info.owner}) may change its metadata or sharing; {actor!r} may not"
        )


def update_cube(
    ledger: Ledger,
    cube: str,
    actor: str,
    visibility: str | None = None,
    embedder: str | None = None,
    llm: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> CubeInfo:
    """Change a cube's metadata (owner only); only the given fields change."""
    info = get_cube(ledger, cube)
    _require_owner(info, actor)
    payload: dict[str, Any] = {"cube": cube}
    if visibility is not None:
        if visibility not in VISIBILITIES:
            raise InvalidRequest(f"visibility must be one of {', '.join(VISIBILITIES)}, not {visibility!r}")
        payload["visibility"] = visibility
    for k, v in (("embedder", embedder), ("llm", llm), ("metadata", metadata)):
        if v is not None:
            payload[k] = v
    if len(payload) == 1:
        raise InvalidRequest("nothing to update: give visibility, embedder, llm or metadata")
    ledger.append([NewEvent(cube, CUBE_UPDATED, payload, actor)], {cube: ledger.log.stream_version(cube)})
    return get_cube(ledger, cube)


def share_cube(ledger: Ledger, cube: str, principal: str, actor: str, unshare: bool = False) -> CubeInfo:
    """Share a cube with ``principal`` (or withdraw the share); owner only."""
    info = get_cube(ledger, cube)
    _require_owner(info, actor)
    if not principal or not isinstance(principal, str):
        raise InvalidRequest("a principal to share with is required")
    if principal == info.owner:
        raise InvalidRequest(f"{principal!r} owns cube {cube!r} already")
    if unshare and principal not in info.shared_with:
        raise StateError(f"cube {cube!r} is not shared with {principal!r}")
    if not unshare and principal in info.shared_with:
        return info
    payload = {"cube": cube, "principal": principal, "action": "unshare" if unshare else "share"}
    ledger.append([NewEvent(cube, CUBE_SHARED, payload, actor)], {cube: ledger.log.stream_version(cube)})
    return get_cube(ledger, cube)
