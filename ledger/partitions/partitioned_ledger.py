"""The memory API over a partitioned ledger: each operation runs on the ``Ledger`` of one partition.

A cube lives in exactly one partition (``ledger.partitions.routing``), so everything about a cube
(creating it, adding, ingesting, listing, deleting by filter) runs on that partition's ``Ledger``,
with its offsets, its as-of reads and its audit records. A memory lives in its cube's partition; an
operation named by a memory id first finds that partition (an indexed ``read_refs`` lookup per
partition, remembered: a memory never moves). Merges stay within one cube, hence one partition; a
link may point at a memory of another partition (it is recorded on the source's cube).

Offsets are a partition's own: every ``Written`` says which partition its offset belongs to, and an
integer ``as_of`` on a memory or cube operation is an offset of that memory's or cube's partition.
An ISO-8601 ``as_of`` is resolved by each partition from its hybrid-logical-clock stamps, so reads
of several partitions at one time form a causal cut (``ledger.partitions.hlc``).

Ledger-wide records that several partitions must see (``subject.forgotten``) are written to every
partition: see ``ledger.partitions.partitioned_forget``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ledger.api import Deleted, Ledger, Written
from ledger.errors import InvalidRequest, NotFound
from ledger.events import Event
from ledger.listing import Page
from ledger.memory_state import MemoryState
from ledger.partitions.base import PartitionVector
from ledger.partitions.composite import CompositePartitionedLog

if TYPE_CHECKING:
    from ledger.config import Config
    from ledger.governance.holds import Hold
    from ledger.memos.messages import Ingested

# where partition ``k`` of a data directory keeps its views: ``<data>/partitions/p<k>/views``
PARTITIONS_DIR = "partitions"
MAX_HOMES = 100_000  # memory ids whose partition a handle remembers (a lookup is one probe per partition)


def partition_dir(data_dir: str | Path, index: int) -> Path:
    """The directory of partition ``index``'s views and caches under ``data_dir``."""
    return Path(data_dir) / PARTITIONS_DIR / f"p{index}"


class PartitionedLedger:
    """Memory operations on a ``CompositePartitionedLog``, routed by cube (see the module docstring)."""

    def __init__(
        self,
        plog: CompositePartitionedLog,
        opener: Any = None,
        sealer: Any = None,
        config: Config | None = None,
        record_reads: bool = True,
        participants: Callable[[Ledger, int, Path | None], list[Any]] | None = None,
    ):
        self.plog = plog
        self.config = config
        self.sealer = sealer
        self.opener = opener
        self._participants = participants
        self.ledgers = [
            Ledger(
                plog.partition(k),
                opener=opener,
                sealer=sealer,
                record_reads=record_reads,
                config=config,
                erasure_participants=self._participants_of(k),
            )
            for k in range(plog.count)
        ]
        self._homes: dict[str, int] = {}  # memory id -> partition (a memory never moves)
        paths = [led.log.storage_path() for led in self.ledgers]
        for k, led in enumerate(self.ledgers):
            led.sibling_logs = tuple(p for i, p in enumerate(paths) if i != k and p is not None)

    def _participants_of(self, index: int) -> Callable[[Ledger, Path | None], list[Any]] | None:
        make = self._participants
        if make is None:
            return None
        return lambda ledger, root: make(ledger, index, root)

    # -- partitions ------------------------------------------------------------------------
    @property
    def count(self) -> int:
        """Number of partitions."""
        return self.plog.count

    def partition_of(self, cube: str) -> int:
        """The partition ``cube`` lives in."""
        return self.plog.partition_of(cube)

    def ledger(self, index: int) -> Ledger:
        """The ``Ledger`` of partition ``index``."""
        self.plog.partition(index)  # one clear error for a partition that does not exist
        return self.ledgers[index]

    def for_cube(self, cube: str) -> Ledger:
        """The ``Ledger`` of the partition ``cube`` lives in."""
        if not isinstance(cube, str):
            raise InvalidRequest(f"a cube name is a string, not {cube!r}")
        return self.ledgers[self.partition_of(cube)]

    def home_of(self, memory_id: str) -> int:
        """The partition memory ``memory_id`` lives in; ``NotFound`` when no partition has it."""
        if not isinstance(memory_id, str) or not memory_id:
            raise InvalidRequest(f"a memory id is a non-empty string, not {memory_id!r}")
        home = self._homes.get(memory_id)
        if home is not None:
            return home
        for k, ledger in enumerate(self.ledgers):
            if ledger.memory_exists(memory_id):
                self._remember(memory_id, k)
                return k
        raise NotFound(f"memory {memory_id} not found")

    def _remember(self, memory_id: str, partition: int) -> None:
        """Remember a memory's partition; the oldest entry goes when ``MAX_HOMES`` are remembered."""
        if len(self._homes) >= MAX_HOMES:
            self._homes.pop(next(iter(self._homes)), None)
        self._homes[memory_id] = partition

    def for_memory(self, memory_id: str) -> Ledger:
        """The ``Ledger`` of the partition memory ``memory_id`` lives in."""
        return self.ledgers[self.home_of(memory_id)]

    def cubes_by_partition(self, cubes: Sequence[str] | None, as_of: Any = None) -> dict[int, list[str] | None]:
        """The named cubes grouped by partition (none named: every partition, ``None`` for "all its
        cubes"); an offset ``as_of`` over several partitions is refused (an offset is one partition's;
        a time cuts every partition)."""
        from ledger.rules.timepoints import parse_point

        groups: dict[int, list[str] | None] = {}
        if cubes:
            for cube in dict.fromkeys(cubes):
                part = groups.setdefault(self.partition_of(cube), [])
                if part is not None:
                    part.append(cube)
        else:
            groups = dict.fromkeys(range(self.count))
        from ledger.partitions.partition_point import vector_of

        spans = as_of is not None and len(groups) > 1 and vector_of(self.plog, self.config, as_of) is None
        if spans and parse_point(str(as_of), "as-of")[0] != "time":
            raise InvalidRequest(
                f"as-of {as_of!r} is an offset, and offsets belong to one partition; this read spans "
                f"{len(groups)} partitions of {self.count}: give an ISO-8601 time, or cubes of one partition"
            )
        return groups

    def heads(self) -> PartitionVector:
        """Every partition's head offset, by index."""
        return self.plog.heads()

    def head(self) -> int:
        """Refused: a partitioned ledger has one head per partition (``heads``)."""
        raise InvalidRequest(f"this ledger has {self.count} partitions, each with its own head: use heads()")

    def events(self, partition: int, start: int = 0, end: int | None = None) -> Any:
        """Events ``start..end`` of one partition, upcast."""
        return self.ledger(partition).events(start, end)

    # -- cubes -----------------------------------------------------------------------------
    def cube_exists(self, cube: str) -> bool:
        return self.for_cube(cube).cube_exists(cube)

    def create_cube(self, cube: str, owner: str, **options: Any) -> Event:
        """Create a cube in its partition (see ``Ledger.create_cube``)."""
        return self.for_cube(cube).create_cube(cube, owner, **options)

    # -- writes ----------------------------------------------------------------------------
    def add(self, cube: str, text: str, actor: str, **options: Any) -> Written:
        """Add a memory to ``cube`` in its partition (see ``Ledger.add``); an explicit ``memory_id``
        must be new in every partition."""
        memory_id = options.get("memory_id")
        if memory_id is not None and self._exists(memory_id):
            raise InvalidRequest(f"memory id {memory_id!r} already exists")
        k = self.partition_of(cube) if isinstance(cube, str) else 0
        written = self.for_cube(cube).add(cube, text, actor, **options)
        self._remember(written.id, k)
        return dataclasses.replace(written, partition=k)

    def ingest(self, cube: str, messages: Sequence[Any], actor: str, **options: Any) -> Ingested:
        """Append conversation messages to ``cube`` in its partition (see ``Ledger.ingest``)."""
        return self.for_cube(cube).ingest(cube, messages, actor, **options)

    def update(self, memory_id: str, text: str, actor: str, **options: Any) -> Written:
        """A new version of a memory, in its partition (see ``Ledger.update``)."""
        return self._on_memory(memory_id, lambda led: led.update(memory_id, text, actor, **options))

    def change_state(self, memory_id: str, to: str, actor: str, **options: Any) -> Written:
        """Move a memory through its lifecycle, in its partition (see ``Ledger.change_state``)."""
        return self._on_memory(memory_id, lambda led: led.change_state(memory_id, to, actor, **options))

    def delete(
        self, memory_id: str, actor: str, reason: str | None = None, expected_version: int | None = None
    ) -> Written:
        """Tombstone a memory, in its partition (see ``Ledger.delete``)."""
        return self._on_memory(memory_id, lambda led: led.delete(memory_id, actor, reason, expected_version))

    def delete_where(
        self, cube: str, actor: str, where: dict[str, Any] | None = None, reason: str | None = None
    ) -> Deleted:
        """Delete the memories of ``cube`` that match ``where``, in one batch of its partition."""
        deleted = self.for_cube(cube).delete_where(cube, actor, where, reason)
        return dataclasses.replace(deleted, partition=self.partition_of(cube))

    def merge(self, sources: Sequence[str], text: str, actor: str, **options: Any) -> Written:
        """Merge memories of one cube (hence one partition; see ``Ledger.merge``)."""
        if isinstance(sources, str) or not isinstance(sources, Sequence) or not sources:
            raise InvalidRequest("merge needs a list of source memory ids")
        homes = {self.home_of(s) for s in sources}
        if len(homes) > 1:
            cubes = sorted({self.get(s, record_read=False).cube for s in sources})
            raise InvalidRequest(f"merge sources span several cubes: {cubes}")
        k = homes.pop()
        written = self.ledgers[k].merge(sources, text, actor, **options)
        self._remember(written.id, k)
        return dataclasses.replace(written, partition=k)

    def link(self, source: str, target: str, relation: str, actor: str) -> Written:
        """An edge ``source -> target``, recorded on the source's cube; the target may live in
        another partition."""
        k = self.home_of(source)
        state = self.ledgers[k].get(source, record_read=False)
        self.get(target, record_read=False)
        return dataclasses.replace(self.ledgers[k].append_link(state, target, relation, actor), partition=k)

    # -- legal holds -----------------------------------------------------------------------
    def place_hold(
        self, actor: str, reason: str, cube: str | None = None, subject: str | None = None, memory_id: str | None = None
    ) -> dict[int, Hold]:
        """Place a legal hold where the operations it must stop check it: a cube's hold in the cube's
        partition, a memory's in the memory's, a data subject's in every partition (a subject's
        memories may live in any). Returns the hold as recorded in each partition, by partition."""
        import os

        from ledger.governance.holds import place_hold

        if cube is not None and subject is None and memory_id is None:
            targets = [self.partition_of(cube)]
        elif memory_id is not None and cube is None and subject is None:
            targets = [self.home_of(memory_id)]
        else:
            targets = list(range(self.count))  # a subject, or a bad combination place_hold refuses
        hold_id = "hold_" + os.urandom(8).hex()  # one hold, recorded in each target partition
        return {k: place_hold(self.ledgers[k].log, actor, reason, cube, subject, memory_id, hold_id) for k in targets}

    def holds(self) -> list[dict[str, Any]]:
        """Every active hold once (``Hold.to_dict``), with ``partitions``: those that record it."""
        merged: dict[str, dict[str, Any]] = {}
        for k, h in self.active_holds():
            merged.setdefault(h.hold_id, {**h.to_dict(), "partitions": []})["partitions"].append(k)
        return list(merged.values())

    def release_hold(self, hold_id: str, actor: str, reason: str | None = None) -> dict[int, int]:
        """Release hold ``hold_id`` in every partition that records it as active; partition -> offset
        of the release. ``NotFound`` when no partition holds it."""
        from ledger.governance.holds import read_holds, release_hold

        where = [k for k, led in enumerate(self.ledgers) if hold_id in read_holds(led.log).active]
        if not where:
            raise NotFound(f"no active hold {hold_id!r}")
        return {k: release_hold(self.ledgers[k].log, hold_id, actor, reason) for k in where}

    def active_holds(self) -> list[tuple[int, Hold]]:
        """Every active hold, with the partition that records it."""
        from ledger.governance.holds import read_holds

        return [(k, h) for k, led in enumerate(self.ledgers) for h in read_holds(led.log).active.values()]

    # -- reads -----------------------------------------------------------------------------
    # ``as_of``: an offset of the memory's or cube's partition, an ISO-8601 time, a partition vector
    # or "checkpoint:N" (``ledger.partitions.partition_point``)
    def get(self, memory_id: str, as_of: Any = None, **options: Any) -> MemoryState:
        """The memory as of ``as_of`` (see ``Ledger.get``)."""
        k = self.home_of(memory_id)
        return self.ledgers[k].get(memory_id, self.point(as_of, k), **options)

    def history(self, memory_id: str, as_of: Any = None, **options: Any) -> list[MemoryState]:
        """Every version of a memory (see ``Ledger.history``)."""
        k = self.home_of(memory_id)
        return self.ledgers[k].history(memory_id, self.point(as_of, k), **options)

    def memory_events(self, memory_id: str, as_of: Any = None) -> list[Event]:
        """Every event of the memory's partition that references it, up to ``as_of``."""
        k = self.home_of(memory_id)
        return self.ledgers[k].memory_events(memory_id, self.point(as_of, k))

    def cube_memories(self, cube: str, as_of: Any = None) -> dict[str, MemoryState]:
        """All memories of a cube as of ``as_of``."""
        return self.for_cube(cube).cube_memories(cube, self.point(as_of, self.partition_of(cube)))

    def list_memories(self, cube: str, as_of: Any = None, **options: Any) -> Page:
        """One page of the memories of ``cube`` (see ``Ledger.list_memories``)."""
        return self.for_cube(cube).list_memories(cube, as_of=self.point(as_of, self.partition_of(cube)), **options)

    def point(self, as_of: Any, partition: int) -> int | str | None:
        """``as_of`` for ``partition``: a vector's (or a global checkpoint's) entry for it; an offset,
        a time or None as given."""
        from ledger.partitions.partition_point import vector_of

        vector = vector_of(self.plog, self.config, as_of)
        return as_of if vector is None else vector[partition]

    def resolve_as_of(self, as_of: Any, partition: int) -> int:
        """``as_of`` as an offset of ``partition`` (see ``Ledger.resolve_as_of``)."""
        return self.ledger(partition).resolve_as_of(self.point(as_of, partition))

    def close(self) -> None:
        """Close every partition."""
        self.plog.close()

    # -- helpers ---------------------------------------------------------------------------
    def _exists(self, memory_id: str) -> bool:
        try:
            self.home_of(memory_id)
        except NotFound:
            return False
        return True

    def _on_memory(self, memory_id: str, run: Callable[[Ledger], Written]) -> Written:
        k = self.home_of(memory_id)
        return dataclasses.replace(run(self.ledgers[k]), partition=k)
