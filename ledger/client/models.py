"""Typed results of the client API, built from the JSON the service (or the embedded ledger) returns.

Unknown fields are ignored, so a newer server does not break an older client; every result keeps
the full JSON it came from in ``raw``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

JSON = dict[str, Any]


def _build(cls: Any, data: JSON) -> Any:
    names = {f.name for f in fields(cls)} - {"raw"}
    return cls(**{k: v for k, v in data.items() if k in names}, raw=dict(data))


@dataclass(frozen=True, slots=True)
class Written:
    """A write: the memory id and the offset and id of the event that recorded it."""

    id: str
    offset: int
    event_id: str
    raw: JSON = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: JSON) -> Written:
        return _build(cls, data)


@dataclass(frozen=True, slots=True)
class Memory:
    """One version of a memory (``ledger.memory_state.MemoryState`` as JSON)."""

    id: str
    cube: str
    text: str | None
    metadata: JSON
    tags: list[str]
    state: str
    version: int
    created_offset: int
    updated_offset: int
    created_at: str
    updated_at: str
    created_by: str
    updated_by: str
    subject: str | None = None
    sealed: bool = False
    forgotten: bool = False
    sources: list[str] = field(default_factory=list)
    merged_into: str | None = None
    provenance: list[int] = field(default_factory=list)
    raw: JSON = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: JSON) -> Memory:
        return _build(cls, data)


@dataclass(frozen=True, slots=True)
class Hit:
    """One search result with its score and provenance (the events that produced this version)."""

    id: str
    score: float
    cube: str
    text: str | None
    state: str
    metadata: JSON
    tags: list[str]
    version: int
    valid_from: int
    valid_to: int | None = None
    updated_at: str = ""
    updated_by: str = ""
    subject: str | None = None
    forgotten: bool = False
    provenance: JSON = field(default_factory=dict)
    signals: dict[str, float] = field(default_factory=dict)
    from_branch: bool = False
    raw: JSON = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: JSON) -> Hit:
        return _build(cls, data)


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a cube's memories; ``next_after`` (also ``next_cursor``) is the opaque cursor of
    the next page (None: the last page)."""

    cube: str
    as_of: int | None
    memories: list[Memory]
    next_after: str | None

    @property
    def next_cursor(self) -> str | None:
        return self.next_after

    @classmethod
    def from_dict(cls, data: JSON) -> Page:
        cursor = data.get("next_cursor", data.get("next_after"))
        return cls(data["cube"], data.get("as_of"), [Memory.from_dict(m) for m in data["memories"]], cursor)
