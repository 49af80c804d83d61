"""Counterfactual branches: create, list, drop, open, and the search overlay of a branch.

A branch sees its base (main, or another branch with ``from_branch``) up to its fork offset plus
its own events, and nothing written on it is visible on the base. Branch events live in
``branches.sqlite`` in the data directory (never a copy of the base log); creating, dropping and
merging a branch is recorded on main's ``_system`` stream, so the audit trail has them.
Diff and merge live in ``ledger.branch_merge``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ledger import events as ev
from ledger.api import Ledger
from ledger.branch_log import BranchLog
from ledger.branch_store import ACTIVE, BranchInfo, BranchStore
from ledger.canonical import GENESIS_HASH
from ledger.errors import InvalidRequest, NotFound, StateError
from ledger.events import NewEvent
from ledger.log import Log
from ledger.memory_state import MemoryState, fold
from ledger.names import check_name

MAIN = "main"
BRANCH_DB = "branches.sqlite"


def check_branch_name(name: str) -> str:
    """Return ``name`` if it is a valid branch name (the name grammar of ``ledger.names``, not ``main``)."""
    check_name(name, "branch name")
    if name == MAIN:
        raise InvalidRequest(f"invalid branch name {name!r}: {MAIN!r} is the main log, not a branch")
    return name


def default_store_path(ledger: Ledger) -> Path:
    """``<data dir>/branches.sqlite``: from the ledger's config, else next to a file-backed log."""
    config = getattr(ledger, "config", None)
    if config is not None:
        return Path(config.data_dir) / BRANCH_DB
    log_path = getattr(ledger.log, "path", None)
    if log_path is not None:
        return Path(log_path).parent / BRANCH_DB
    raise InvalidRequest("cannot place branch storage: the ledger has neither a data directory nor a file-backed log")


class BranchLedger(Ledger):
    """A ``Ledger`` whose log is a ``BranchLog``.

    Reads are audited on *main* (they are real reads of real data and must outlive the branch):
    a ``memory.read`` naming the branch, on the cube's stream of main, or on ``_system`` when
    the cube exists only on the branch.
    """

    def __init__(self, log: BranchLog, main: Ledger):
        super().__init__(log, registry=main.registry, opener=main.opener, sealer=main.sealer,
                         record_reads=main.record_reads)
        self.main = main
        self.branch = log.name
        config = getattr(main, "config", None)
        if config is not None:
            self.config = config

    def _record_read(self, cube: str, ids: list[str], operation: str, actor: str | None,
                     record_read: bool | None, query: str | None = None, as_of: int | None = None) -> None:
        if record_read is False or (record_read is None and (not self.record_reads or actor is None)):
            return
        payload: dict[str, Any] = {"memory_ids": ids, "operation": operation, "as_of": as_of, "branch": self.branch}
        if query is not None:
            payload["query"] = query
        stream = cube if self.main.cube_exists(cube) else ev.SYSTEM_STREAM  # a cube born on the branch
        self.main.log.append([NewEvent(stream, ev.MEMORY_READ, payload, actor or "anonymous")])


class Branches:
    """The branch registry of one ledger (main)."""

    def __init__(self, main: Ledger, path: str | Path | None = None):
        if isinstance(main, BranchLedger):
            main = main.main
        self.main = main
        self.store = BranchStore(path or default_store_path(main))

    def close(self) -> None:
        self.store.close()

    # -- lookup ------------------------------------------------------------------------
    def info(self, name: str) -> BranchInfo:
        """The registry row of ``name``; ``NotFound`` if there is no such branch."""
        info = self.store.info(name)
        if info is None:
            known = ", ".join(b.name for b in self.store.all()) or "none"
            raise NotFound(f"no branch named {name!r} (branches: {known})")
        return info

    def log(self, name: str | None) -> Log:
        """The log of ``name`` (``None`` or ``"main"``: main's log), nested bases resolved."""
        if name is None or name == MAIN:
            return self.main.log
        info = self.info(name)
        return BranchLog(self.store, info, self.log(info.parent), self.main.registry)

    def ledger(self, name: str | None) -> Ledger:
        """A ``Ledger`` over the branch (main's ledger for ``None``/``"main"``)."""
        if name is None or name == MAIN:
            return self.main
        log = self.log(name)
        assert isinstance(log, BranchLog)
        return BranchLedger(log, self.main)

    # -- registry operations ------------------------------------------------------------
    def create(self, name: str, at: int | str | None, actor: str, from_branch: str | None = None) -> BranchInfo:
        """Fork ``name`` from main (or ``from_branch``) at ``at`` (offset or ISO time; None: head)."""
        check_branch_name(name)
        parent = None if from_branch in (None, MAIN) else from_branch
        base = self.ledger(parent)
        at_offset = base.resolve_as_of(at)
        if parent is not None and at_offset < 0:
            raise InvalidRequest("a nested branch must fork at an offset of its parent (0 or more)")
        fork_event = next(iter(base.log.read(at_offset, at_offset)), None) if at_offset >= 0 else None
        fork_hash = fork_event.hash if fork_event else GENESIS_HASH
        fork_ts = fork_event.ts_us if fork_event else 0
        conn = self.store.conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            if self.store.info(name) is not None:
                raise StateError(f"branch {name!r} already exists")
            if parent is not None and self.store.info(parent) is None:
                raise NotFound(f"parent branch {parent!r} was dropped")
            audit = self.main.log.append([NewEvent(ev.SYSTEM_STREAM, ev.BRANCH_CREATED,
                                                   {"name": name, "at_offset": at_offset, "from_branch": parent},
                                                   actor)])[0]
            info = BranchInfo(name, parent, at_offset, fork_hash, fork_ts, audit.ts_us, actor, ACTIVE, audit.event_id)
            self.store.insert(conn, info)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return info

    def list(self) -> list[dict[str, Any]]:
        """Every branch with its fork point, head and number of own events."""
        out = []
        for info in self.store.all():
            d = info.to_dict()
            n = self.store.event_count(info.name)
            d["events"] = n
            d["head"] = BranchLog(self.store, info, self.main.log).head()
            out.append(d)
        return out

    def drop(self, name: str, actor: str) -> BranchInfo:
        """Discard a branch and its own events; refused while other branches fork from it."""
        info = self.info(name)
        conn = self.store.conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            kids = [b.name for b in self.store.children(name)]
            if kids:
                raise StateError(f"branch {name!r} has nested branches ({', '.join(kids)}); drop them first")
            self.main.log.append([NewEvent(ev.SYSTEM_STREAM, ev.BRANCH_DROPPED, {"name": name}, actor)])
            conn.execute("DELETE FROM branch_refs WHERE branch = ?", (name,))
            conn.execute("DELETE FROM branch_events WHERE branch = ?", (name,))
            conn.execute("DELETE FROM branches WHERE name = ?", (name,))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return info

    # -- search overlay -----------------------------------------------------------------
    def overlay(self, name: str, as_of: int | str | None = None) -> tuple[int, dict[str, MemoryState | None]]:
        """``(fork_offset, overlay)`` for searching a branch with main's views.

        ``fork_offset`` is the offset of *main* below which the branch equals main; ``overlay``
        maps each memory changed on the branch (or an ancestor branch, within what it sees) to
        its state on the branch as of ``as_of``, or ``None`` when it does not exist there. A
        search as of ``fork_offset`` with this overlay laid on top answers for the branch.
        """
        leaf = self.ledger(name)
        end = leaf.resolve_as_of(as_of)
        limit = end
        ids: set[str] = set()
        log: Log = leaf.log
        while isinstance(log, BranchLog):
            if limit > log.fork:
                rows = log.store.conn().execute(
                    "SELECT DISTINCT ref FROM branch_refs WHERE branch = ? AND offset <= ?", (log.name, limit))
                ids.update(r[0] for r in rows)
                limit = log.fork
            log = log.base
        overlay: dict[str, MemoryState | None] = {}
        up = leaf.registry.upcast
        for mid in sorted(ids):
            state = fold((up(e) for e in leaf.log.read_refs(mid, end)), leaf.opener).get(mid)
            if state is None:
                continue  # a subject or cube id, not a memory
            overlay[mid] = state if state.exists else None
        return limit, overlay


def branch_overlay(main: Ledger, name: str, as_of: int | str | None = None,
                   path: str | Path | None = None) -> tuple[int, Mapping[str, MemoryState | None]]:
    """Convenience form of :meth:`Branches.overlay` for search (see there)."""
    branches = Branches(main, path)
    try:
        return branches.overlay(name, as_of)
    finally:
        branches.close()


def open_branch_ledger(main: Ledger, name: str | None, path: str | Path | None = None) -> Ledger:
    """``main`` itself for ``None``/``"main"``, else a ``Ledger`` over the branch ``name``."""
    if name is None or name == MAIN:
        return main
    return Branches(main, path).ledger(name)
