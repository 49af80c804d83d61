"""``PartitionedEmbeddedClient``: the embedded client API on a partitioned data directory.

One ``EmbeddedClient`` per partition, each over that partition's ``Ledger`` with its views in
``<data>/partitions/p<k>``; every call runs on the client of its cube's (or memory's) partition, as
the service routes requests (``ledger.service.partition_routing``). ``search``, ``cubes``,
``whoami``, ``head``, legal holds and ``forget`` span every partition. Branches, the event stream,
subject exports and an audit that names neither a cube nor a memory need a ledger of one partition
and are refused in one line. ``open_embedded_client`` picks the right class for a data directory.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ledger.api import Ledger
from ledger.client.calls import Point
from ledger.client.embedded import EmbeddedClient
from ledger.client.models import JSON, Hit, Memory, Page, Written
from ledger.errors import InvalidRequest
from ledger.partitions.partitioned_ledger import PartitionedLedger, partition_dir


def open_embedded_client(data_dir: str | Path, actor: str) -> EmbeddedClient | PartitionedEmbeddedClient:
    """The embedded client of ``data_dir``: partitioned when its ledger is (``[log] partitions``)."""
    from ledger.config import init_data_dir, load_config
    from ledger.partitions.settings import partition_count

    path, _ = init_data_dir(data_dir)
    if partition_count(load_config(path)) > 1:
        return PartitionedEmbeddedClient(path, actor)
    return EmbeddedClient(path, actor)


def _one_partition(what: str) -> InvalidRequest:
    return InvalidRequest(f"{what} needs a ledger of one partition; this ledger is partitioned ([log] partitions)")


class PartitionedEmbeddedClient:
    """The client API over a partitioned data directory, acting as ``actor`` (see the module docstring)."""

    def __init__(self, data_dir: str | Path, actor: str):
        from ledger.factory import open_partitioned_memory

        self.data_dir = Path(data_dir)
        self.actor = actor
        self.pledger: PartitionedLedger = open_partitioned_memory(self.data_dir)
        self.clients = [
            EmbeddedClient(self.data_dir, actor, ledger=led, views_dir=partition_dir(self.data_dir, k))
            for k, led in enumerate(self.pledger.ledgers)
        ]
        self._lock = threading.RLock()

    def __enter__(self) -> PartitionedEmbeddedClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for c in self.clients:
            c.close()  # closes its partition's log

    # -- routing ------------------------------------------------------------------------------
    def _cube(self, cube: str) -> EmbeddedClient:
        return self.clients[self.pledger.partition_of(cube)]

    def _memory(self, memory_id: str) -> EmbeddedClient:
        return self.clients[self.pledger.home_of(memory_id)]

    @staticmethod
    def _main(branch: str | None) -> None:
        if branch is not None and branch != "main":
            raise _one_partition("a branch")

    def _point(self, as_of: Point | None, partition: int) -> Point | None:
        """``as_of`` for ``partition`` (a partition vector or "checkpoint:N" gives its entry)."""
        return self.pledger.point(as_of, partition)

    def record_ledger(self, cube: str | None, memory_ids: Sequence[str]) -> Ledger:
        """The partition's ledger a record about ``cube`` (or these memories) goes in."""
        if cube is not None:
            return self._cube(cube).ledger
        return (self._memory(memory_ids[0]) if memory_ids else self.clients[0]).ledger

    # -- memories -----------------------------------------------------------------------------
    def add(
        self,
        cube: str,
        text: str,
        metadata: JSON | None = None,
        tags: Sequence[str] | None = None,
        subject: str | None = None,
        idempotency_key: str | None = None,
        branch: str | None = None,
        allow_duplicate: bool = False,
    ) -> Written:
        """``EmbeddedClient.add`` on the cube's partition."""
        self._main(branch)
        return self._cube(cube).add(cube, text, metadata, tags, subject, idempotency_key, None, allow_duplicate)

    def update(
        self,
        memory_id: str,
        text: str,
        metadata: JSON | None = None,
        expected_version: int | None = None,
        reason: str | None = None,
        branch: str | None = None,
    ) -> Written:
        self._main(branch)
        return self._memory(memory_id).update(memory_id, text, metadata, expected_version, reason)

    def get(self, memory_id: str, as_of: Point | None = None, branch: str | None = None) -> Memory:
        self._main(branch)
        return self._memory(memory_id).get(memory_id, self._point(as_of, self.pledger.home_of(memory_id)))

    def history(self, memory_id: str, as_of: Point | None = None) -> list[Memory]:
        return self._memory(memory_id).history(memory_id, self._point(as_of, self.pledger.home_of(memory_id)))

    def change_state(
        self, memory_id: str, to: str, reason: str | None = None, expected_version: int | None = None
    ) -> Written:
        return self._memory(memory_id).change_state(memory_id, to, reason, expected_version)

    def merge(
        self, sources: Sequence[str], text: str, metadata: JSON | None = None, reason: str | None = None
    ) -> Written:
        """Merge memories of one cube (the partition of the first source holds them all)."""
        if isinstance(sources, str) or not sources:
            raise InvalidRequest("merge needs a list of source memory ids")
        return self._memory(sources[0]).merge(sources, text, metadata, reason)

    def link(self, source: str, target: str, relation: str) -> Written:
        """An edge between two memories of one partition."""
        return self._memory(source).link(source, target, relation)

    def list_memories(
        self,
        cube: str,
        as_of: Point | None = None,
        state: str | None = None,
        limit: int = 100,
        after: str | None = None,
        where: JSON | None = None,
        branch: str | None = None,
    ) -> Page:
        self._main(branch)
        point = self._point(as_of, self.pledger.partition_of(cube))
        return self._cube(cube).list_memories(cube, point, state, limit, after, where)

    def search(
        self,
        query: str,
        cubes: Sequence[str] | None = None,
        k: int = 10,
        as_of: Point | None = None,
        branch: str | None = None,
        **options: Any,
    ) -> list[Hit]:
        """Search the named cubes (each on its partition) or every cube; hits merged by fused score
        (exact within a partition, approximate across partitions)."""
        self._main(branch)
        groups = self.pledger.cubes_by_partition(cubes, as_of)
        hits: list[Hit] = []
        for index, names in sorted(groups.items()):
            hits += self.clients[index].search(query, names, k, self._point(as_of, index), **options)
        hits.sort(key=lambda h: (-h.score, h.id))
        return hits[:k]

    # -- deletion, erasure, redaction, lineage, holds ------------------------------------------
    def delete(self, memory_id: str, reason: str | None = None, expected_version: int | None = None) -> Written:
        return self._memory(memory_id).delete(memory_id, reason, expected_version)

    def delete_where(self, cube: str, where: JSON | None = None, reason: str | None = None) -> JSON:
        return self._cube(cube).delete_where(cube, where, reason)

    def erase(self, memory_id: str, reason: str) -> JSON:
        return self._memory(memory_id).erase(memory_id, reason)

    def erase_where(self, cube: str, reason: str, where: JSON | None = None) -> JSON:
        return self._cube(cube).erase_where(cube, reason, where)

    def redact(self, memory_id: str, spans: Sequence[tuple[int, int]], reason: str) -> JSON:
        return self._memory(memory_id).redact(memory_id, spans, reason)

    def lineage(self, memory_id: str, as_of: Point | None = None, depth: int = 10) -> JSON:
        return self._memory(memory_id).lineage(memory_id, as_of, depth)

    def ingest(
        self,
        cube: str,
        messages: Sequence[JSON],
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        session_id: str | None = None,
        subject: str | None = None,
        batch_id: str | None = None,
    ) -> JSON:
        done = self._cube(cube).ingest(cube, messages, user_id, agent_id, run_id, session_id, subject, batch_id)
        return {**done, "partition": self.pledger.partition_of(cube)}

    def messages_status(self, cube: str) -> JSON:
        return self._cube(cube).messages_status(cube)

    def forget(self, subject: str, reason: str | None = None) -> JSON:
        """Crypto-shred a data subject in every partition (admin principals only)."""
        from ledger.partitions.partitioned_forget import forget_partitioned

        with self._lock:
            self.clients[0]._require_admin()
            report = forget_partitioned(self.pledger, subject, self.actor, reason, data_dir=self.data_dir)
            return {**report.to_dict(), "complete": report.complete}

    def place_hold(
        self, reason: str, cube: str | None = None, subject: str | None = None, memory_id: str | None = None
    ) -> JSON:
        """One hold id, recorded in each partition it protects (admin principals only)."""
        with self._lock:
            self.clients[0]._require_admin()
            holds = self.pledger.place_hold(self.actor, reason, cube, subject, memory_id)
            return {**next(iter(holds.values())).to_dict(), "partitions": sorted(holds)}

    def holds(self) -> list[JSON]:
        """The active legal holds, each once with the partitions that record it (admin principals only)."""
        with self._lock:
            self.clients[0]._require_admin()
            return self.pledger.holds()

    def release_hold(self, hold_id: str, reason: str | None = None) -> JSON:
        """End a legal hold in every partition that records it (admin principals only)."""
        with self._lock:
            self.clients[0]._require_admin()
            released = self.pledger.release_hold(hold_id, self.actor, reason)
            return {"hold_id": hold_id, "offset": released[min(released)], "partitions": sorted(released)}

    def subject_export(self, subject: str, sign: bool = False) -> list[JSON]:
        raise _one_partition("a subject export")

    # -- cubes, access ------------------------------------------------------------------------
    def create_cube(self, cube: str, visibility: str = "private", metadata: JSON | None = None) -> JSON:
        return self._cube(cube).create_cube(cube, visibility, metadata)

    def cubes(self) -> list[JSON]:
        """The cubes of every partition on which ``actor`` holds a role."""
        return sorted((c for client in self.clients for c in client.cubes()), key=lambda c: c["cube"])

    def grants(self, cube: str) -> JSON:
        return self._cube(cube).grants(cube)

    def grant(self, cube: str, principal: str, role: str) -> JSON:
        return self._cube(cube).grant(cube, principal, role)

    def revoke(self, cube: str, principal: str, role: str) -> JSON:
        return self._cube(cube).revoke(cube, principal, role)

    def whoami(self) -> JSON:
        """``actor``, whether it is an admin principal, and its roles in every partition."""
        mine = [c.whoami() for c in self.clients]
        return {
            "principal": self.actor,
            "admin": mine[0]["admin"],
            "cubes": {k: v for m in mine for k, v in m["cubes"].items()},
        }

    def head(self) -> JSON:
        """Every partition's head offset and hash."""
        parts = [{"partition": k, **c.head()} for k, c in enumerate(self.clients)]
        return {"partitions": parts, "heads": [p["offset"] for p in parts]}

    # -- audit, export, log, branches ---------------------------------------------------------
    def audit(self, cube: str | None = None, memory: str | None = None, **options: Any) -> list[JSON]:
        """The audit trail of a cube or a memory, from its partition."""
        if memory is not None:
            return self._memory(memory).audit(cube, memory, **options)
        if cube is None:
            raise _one_partition("an audit of the whole ledger (name a cube or a memory)")
        return self._cube(cube).audit(cube, None, **options)

    def export(self, cube: str, as_of: Point | None = None) -> list[JSON]:
        return self._cube(cube).export(cube, as_of)

    def events(self, start: int = 0, follow: bool = False, limit: int | None = None) -> Iterator[JSON]:
        raise _one_partition("the event stream")

    def branches(self) -> list[JSON]:
        raise _one_partition("branches")

    def create_branch(self, name: str, at: Point | None = None, from_branch: str | None = None) -> JSON:
        raise _one_partition("branches")

    def branch_diff(self, name: str) -> list[JSON]:
        raise _one_partition("branches")

    def merge_branch(self, name: str, strict: bool = False) -> JSON:
        raise _one_partition("branches")

    def drop_branch(self, name: str, cascade: bool = False) -> JSON:
        raise _one_partition("branches")
