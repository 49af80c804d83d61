"""The ``Projection`` port and the runner that feeds it from a ``Log``.

A projection folds events into a view and records the offset it has applied *in the same
transaction* as the view's writes, so a crash between the two can neither skip nor double
apply an event (exactly-once, as with the ``eventsourcing`` library's tracking records).

Views are temporal: each memory version row carries ``valid_from`` (the offset that made it
current) and ``valid_to`` (the offset that superseded it, or ``OPEN`` while current), so a
query as of offset N selects rows with ``valid_from <= N < valid_to`` and needs no replay.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from ledger.errors import present
from ledger.events import Event
from ledger.memory_state import MemoryState
from projections import gc_pause

OPEN = 2**62  # valid_to of a row that is still current


@dataclass(frozen=True, slots=True)
class VersionRow:
    """One memory version as a view stores it, valid for offsets ``valid_from <= n < valid_to``.

    The temporal views (keyword, graph) keep the whole state of the version (``memory``) and their
    own row and text ids; the vector view keeps the fields it filters on and whether the version's
    text has a vector.
    """

    memory_id: str
    cube: str
    state: str
    valid_from: int
    valid_to: int
    subject: str | None
    exists: bool
    metadata: dict[str, Any]
    tags: list[str]
    memory: MemoryState | None = None
    vid: int | None = None
    text_id: int | None = None
    has_vector: bool = False

    def full(self) -> MemoryState:
        """The version's whole state (rows of the temporal views always carry it)."""
        return present(self.memory, f"the state of memory {self.memory_id} in this view row")


@runtime_checkable
class Projection(Protocol):
    """A disposable view of the log."""

    name: str

    def checkpoint(self) -> int:
        """The last applied offset (-1 when nothing was applied)."""
        ...

    def apply_batch(self, events: Sequence[Event]) -> None:
        """Apply events in offset order and move the checkpoint, atomically.

        Events at or below the checkpoint are skipped, so redelivery is harmless.
        """
        ...

    def reset(self) -> None:
        """Drop the view and its checkpoint (the next catch-up rebuilds from offset 0)."""
        ...

    def close(self) -> None:
        """Release files and connections."""
        ...


EventSource = Callable[[int, "int | None"], Iterable[Event]]


def catch_up(
    source: EventSource,
    projection: Projection,
    to: int | None = None,
    batch_size: int = 2000,
    progress: bool = False,
    total: int | None = None,
) -> int:
    """Apply every event after the projection's checkpoint up to ``to`` (inclusive; None = head).

    ``source(start, end)`` yields upcast events, e.g. ``ledger.events``. Returns the new checkpoint.
    """
    start = projection.checkpoint() + 1
    if to is not None and to < start:
        return projection.checkpoint()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(
            total=(total - start + 1) if total is not None else None,
            unit="ev",
            desc=f"rebuild {projection.name}",
            file=sys.stderr,
            leave=False,
        )
    batch: list[Event] = []
    with gc_pause.folding():
        for event in source(start, to):
            batch.append(event)
            if len(batch) >= batch_size:
                projection.apply_batch(batch)
                gc_pause.collect_young()
                if bar is not None:
                    bar.update(len(batch))
                batch = []
        if batch:
            projection.apply_batch(batch)
            if bar is not None:
                bar.update(len(batch))
    if bar is not None:
        bar.close()
    return projection.checkpoint()


def rebuild(
    source: EventSource, projection: Projection, to: int | None = None, progress: bool = False, total: int | None = None
) -> int:
    """Drop the view and fold the log again from offset 0 (up to ``to``).

    Batches are of the projection's ``rebuild_batch_size`` when it names one (a view whose
    writes are cheaper in larger transactions), else of the catch-up default.
    """
    projection.reset()
    batch_size = int(getattr(projection, "rebuild_batch_size", 2000))
    return catch_up(source, projection, to=to, batch_size=batch_size, progress=progress, total=total)


# -- query ports shared by the embedded and the distributed views ----------------------------

Hit = tuple[str, float]  # (memory_id, score); higher is better


@runtime_checkable
class KeywordSearch(Protocol):
    """A view that ranks memory versions by keyword relevance (BM25)."""

    def keyword_search(
        self,
        query: str,
        k: int,
        cubes: Sequence[str] | None = None,
        as_of: int | None = None,
        states: Iterable[str] | None = None,
    ) -> list[Hit]:
        """Top ``k`` memories whose version current at ``as_of`` (None: head) matches ``query``."""
        ...


@runtime_checkable
class VectorSearch(Protocol):
    """A view that ranks memory versions by embedding similarity."""

    def vector_search(
        self,
        query_vector: Sequence[float],
        k: int,
        cubes: Sequence[str] | None = None,
        as_of: int | None = None,
        states: Iterable[str] | None = None,
    ) -> list[Hit]:
        """Top ``k`` memories by cosine similarity of their version current at ``as_of``."""
        ...


@runtime_checkable
class GraphSearch(Protocol):
    """A view of entities and relations between memories."""

    def neighbours(
        self,
        memory_ids: Sequence[str],
        cubes: Sequence[str] | None = None,
        as_of: int | None = None,
        hops: int = 1,
        limit: int = 50,
    ) -> list[Hit]:
        """Memories related to ``memory_ids`` (co-mention, explicit links, merges), scored by strength."""
        ...
