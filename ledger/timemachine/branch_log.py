"""``BranchLog``: a ``Log`` that is its base log up to the fork offset plus the branch's own events.

The base is main's log or, for a nested branch, another ``BranchLog``. Nothing of the base is
copied: reads at or below the fork offset go to the base, reads above it go to the branch's own
rows in ``branches.sqlite``. Offsets on the branch continue after the fork offset and its hash
chain continues from the fork point's hash, so ``verify`` proves the branch's own events and
that the base still holds the fork point it was cut from.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

import orjson

from ledger.chain import VerifyResult, check_expected, prepare, resolve_retry, seal
from ledger.errors import StateError
from ledger.events import Event, NewEvent
from ledger.governance.ref_index_check import verify_chain_and_refs
from ledger.log import Log, LogBase, poll_subscribe, refs_of
from ledger.schema_registry import SchemaRegistry, default_registry
from ledger.storage.sqlite_pool import immediate
from ledger.timemachine.branch_store import ACTIVE, BranchInfo, BranchStore

_COLS = (
    "offset, stream, version, event_id, type, schema_version, ts_us, actor, causation_id, "
    "correlation_id, payload, prev_hash, hash"
)


def _row_to_event(r: tuple) -> Event:
    return Event(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], orjson.loads(r[10]), r[11], r[12])


def stream_version_at(log: Log, stream: str, offset: int) -> int:
    """Version of ``stream`` counting only events at or below ``offset``."""
    return 0 if offset < 0 else log.stream_version_at(stream, offset)


class BranchLog(LogBase):
    """The ``Log`` of one branch (see module docstring)."""

    def __init__(
        self,
        store: BranchStore,
        info: BranchInfo,
        base: Log,
        registry: SchemaRegistry | None = None,
        guard: Callable[[BranchInfo, Iterable[str]], None] | None = None,
    ):
        self.store = store
        self.guard = guard  # checks the writers of a batch inside the append transaction (see branch_access)
        self.info = info
        self.name = info.name
        self.fork = info.fork_offset
        self.base = base
        self.registry = registry or default_registry()
        self._base_versions: dict[str, int] = {}  # the base below the fork never changes: cache

    # -- writes ------------------------------------------------------------------------
    def _base_version(self, stream: str) -> int:
        v = self._base_versions.get(stream)
        if v is None:
            v = self._base_versions[stream] = stream_version_at(self.base, stream, self.fork)
        return v

    def _own_version(self, conn: sqlite3.Connection, stream: str) -> int:
        r = conn.execute(
            "SELECT MAX(version) FROM branch_events WHERE branch = ? AND stream = ?",
            (self.name, stream),
        ).fetchone()
        return r[0] or self._base_version(stream)

    def _existing(self, conn: object, ids: list[str]) -> dict[str, Event]:
        found: dict[str, Event] = {}
        for i in range(0, len(ids), 900):
            chunk = ids[i : i + 900]
            q = f"SELECT {_COLS} FROM branch_events WHERE branch = ? AND event_id IN ({','.join('?' * len(chunk))})"
            for r in conn.execute(q, [self.name, *chunk]):  # type: ignore[attr-defined]
                found[r[3]] = _row_to_event(r)
        for eid in ids:
            if eid not in found:
                stored = self.base.get_by_id(eid)
                if stored is not None and stored.offset <= self.fork:
                    found[eid] = stored
        return found

    def append(
        self,
        events: Sequence[NewEvent],
        expected_versions: Mapping[str, int] | None = None,
        *,
        writer: str | None = None,
    ) -> list[Event]:
        """Append to the branch (see ``Log.append``). With a ``guard``, every event's actor (or
        ``writer``, who replays other actors' events in a merge) must be allowed to write it."""
        if not events:
            return []
        prepared = prepare(self.registry, events)
        conn = self.store.conn()
        with immediate(conn):
            status = conn.execute("SELECT status FROM branches WHERE name = ?", (self.name,)).fetchone()
            if status is None:
                raise StateError(f"branch {self.name!r} was dropped")
            if status[0] != ACTIVE:
                raise StateError(f"branch {self.name!r} is {status[0]} and read-only")
            if self.guard is not None:
                self.guard(self.info, [writer] if writer is not None else [p.new.actor for p in prepared])
            retry = resolve_retry(prepared, self._existing(conn, [p.new.event_id for p in prepared]))
            if retry is not None:
                return retry
            streams = {p.new.stream for p in prepared} | set(expected_versions or ())
            versions = {s: self._own_version(conn, s) for s in streams}
            check_expected(expected_versions, versions)
            head, head_hash, last_ts = self._head_row(conn)
            sealed = seal(prepared, head, head_hash, last_ts, versions)
            conn.executemany(
                f"INSERT INTO branch_events(branch, {_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [
                    (
                        self.name,
                        e.offset,
                        e.stream,
                        e.version,
                        e.event_id,
                        e.type,
                        e.schema_version,
                        e.ts_us,
                        e.actor,
                        e.causation_id,
                        e.correlation_id,
                        pb,
                        e.prev_hash,
                        e.hash,
                    )
                    for e, pb in sealed
                ],
            )
            conn.executemany(
                "INSERT OR IGNORE INTO branch_refs(branch, ref, offset) VALUES (?,?,?)",
                [(self.name, ref, e.offset) for e, _ in sealed for ref in refs_of(e.payload)],
            )
        return [e for e, _ in sealed]

    def _head_row(self, conn: sqlite3.Connection) -> tuple[int, str, int]:
        r = conn.execute(
            "SELECT offset, hash, ts_us FROM branch_events WHERE branch = ? ORDER BY offset DESC LIMIT 1",
            (self.name,),
        ).fetchone()
        if r:
            return r[0], r[1], r[2]
        return self.fork, self.info.fork_hash, self.info.fork_ts_us

    # -- reads -------------------------------------------------------------------------
    def _own(self, where: str, args: tuple, order: str = "offset") -> Iterator[Event]:
        cur = self.store.conn().execute(
            f"SELECT {_COLS} FROM branch_events WHERE branch = ? AND {where} ORDER BY {order}", (self.name, *args)
        )
        while True:
            rows = cur.fetchmany(2000)
            if not rows:
                return
            for r in rows:
                yield _row_to_event(r)

    def own_events(self, start: int | None = None, end: int | None = None) -> Iterator[Event]:
        """Only this branch's own events (offsets above the fork), from ``start`` to ``end``."""
        lo = self.fork + 1 if start is None else max(start, self.fork + 1)
        return self._own("offset >= ? AND offset <= ?", (lo, 2**62 if end is None else end))

    def read(self, start: int = 0, end: int | None = None) -> Iterator[Event]:
        if start <= self.fork:
            yield from self.base.read(start, self.fork if end is None else min(end, self.fork))
        if end is None or end > self.fork:
            yield from self.own_events(start, end)

    def read_stream(self, stream: str, start_version: int = 1, end_offset: int | None = None) -> Iterator[Event]:
        base_end = self.fork if end_offset is None else min(end_offset, self.fork)
        if base_end >= 0:
            yield from self.base.read_stream(stream, start_version, base_end)
        if end_offset is None or end_offset > self.fork:
            yield from self._own(
                "stream = ? AND version >= ? AND offset <= ?",
                (stream, start_version, 2**62 if end_offset is None else end_offset),
                "version",
            )

    def read_refs(self, ref: str, end_offset: int | None = None) -> Iterator[Event]:
        base_end = self.fork if end_offset is None else min(end_offset, self.fork)
        if base_end >= 0:
            yield from self.base.read_refs(ref, base_end)
        if end_offset is None or end_offset > self.fork:
            end = 2**62 if end_offset is None else end_offset
            yield from self._own(
                "offset IN (SELECT offset FROM branch_refs WHERE branch = ? AND ref = ? AND offset <= ?)",
                (self.name, ref, end),
            )

    def own_refs(self) -> set[str]:
        """Every id referenced by this branch's own events."""
        rows = self.store.conn().execute("SELECT DISTINCT ref FROM branch_refs WHERE branch = ?", (self.name,))
        return {r[0] for r in rows}

    def get_by_id(self, event_id: str) -> Event | None:
        r = (
            self.store.conn()
            .execute(f"SELECT {_COLS} FROM branch_events WHERE branch = ? AND event_id = ?", (self.name, event_id))
            .fetchone()
        )
        if r:
            return _row_to_event(r)
        stored = self.base.get_by_id(event_id)
        return stored if stored is not None and stored.offset <= self.fork else None

    def head(self) -> int:
        r = self.store.conn().execute("SELECT MAX(offset) FROM branch_events WHERE branch = ?", (self.name,)).fetchone()
        return self.fork if r[0] is None else r[0]

    def head_hash(self) -> str:
        return self._head_row(self.store.conn())[1]

    def stream_version(self, stream: str) -> int:
        return self._own_version(self.store.conn(), stream)

    def stream_version_at(self, stream: str, offset: int) -> int:
        """Version of ``stream`` on this branch counting only events at or below ``offset``."""
        if offset <= self.fork:
            return stream_version_at(self.base, stream, offset)
        r = (
            self.store.conn()
            .execute(
                "SELECT MAX(version) FROM branch_events WHERE branch = ? AND stream = ? AND offset <= ?",
                (self.name, stream, offset),
            )
            .fetchone()
        )
        return r[0] or self._base_version(stream)

    def streams(self) -> list[str]:
        """Every stream with events visible on this branch."""
        own = {
            r[0]
            for r in self.store.conn().execute(
                "SELECT DISTINCT stream FROM branch_events WHERE branch = ?", (self.name,)
            )
        }
        base = set(self.base.streams())
        return sorted(own | {s for s in base if stream_version_at(self.base, s, self.fork) > 0})

    def offset_at(self, ts_us: int) -> int:
        r = (
            self.store.conn()
            .execute("SELECT MAX(offset) FROM branch_events WHERE branch = ? AND ts_us <= ?", (self.name, ts_us))
            .fetchone()
        )
        if r[0] is not None:
            return r[0]
        return min(self.base.offset_at(ts_us), self.fork)

    def subscribe(self, start: int = 0, poll_interval: float = 0.2, stop: object = None) -> Iterator[Event]:
        return poll_subscribe(self.read, start, lambda: time.sleep(poll_interval), stop)

    def verify(self) -> VerifyResult:
        """Check the fork point is unchanged in the base, then recompute the branch's own chain."""
        if self.fork >= 0:
            at_fork = next(iter(self.base.read(self.fork, self.fork)), None)
            if at_fork is None or at_fork.hash != self.info.fork_hash:
                return VerifyResult(
                    False,
                    0,
                    self.fork,
                    self.info.fork_hash,
                    self.fork,
                    f"fork point {self.fork} of branch {self.name!r} no longer matches its base",
                )
        conn = self.store.conn()

        def rows() -> Iterator[tuple]:
            cur = conn.execute(f"SELECT {_COLS} FROM branch_events WHERE branch = ? ORDER BY offset", (self.name,))
            return (
                r if isinstance(r[10], bytes) else (*r[:10], str(r[10]).encode(), *r[11:])
                for r in iter(cur.fetchone, None)
            )  # a payload rewritten as TEXT is still checked

        return verify_chain_and_refs(
            rows,
            lambda: conn.execute("SELECT ref, offset FROM branch_refs WHERE branch = ?", (self.name,)),
            lambda: conn.execute(
                "SELECT offset, ref FROM branch_refs WHERE branch = ? ORDER BY offset, ref", (self.name,)
            ),
            self.fork + 1,
            self.info.fork_hash,
            index_name=f"branch {self.name!r} refs",
        )

    def close(self) -> None:
        """Nothing to release: the branch store and the base log are shared and closed by their owner."""
