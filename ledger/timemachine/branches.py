"""Counterfactual branches: create, list, drop, open, and the search overlay of a branch.

A branch sees its base (main, or another branch with ``from_branch``) up to its fork offset plus
its own events, and nothing written on it is visible on the base. Branch events live in
``branches.sqlite`` in the data directory (never a copy of the base log); creating, dropping and
merging a branch is recorded on main's ``_system`` stream, so the audit trail has them.
Writing to, forking from, merging and dropping a branch needs its creator, a role granted on it
or an admin (``ledger.timemachine.branch_access``). Diff and merge live in ``ledger.timemachine.branch_merge``.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ledger import events as ev
from ledger.api import Ledger
from ledger.canonical import GENESIS_HASH
from ledger.errors import InvalidRequest, NotFound, StateError, present
from ledger.events import Event, NewEvent, new_event_id
from ledger.log import Log
from ledger.memory_state import MemoryState, fold
from ledger.rules.names import check_name
from ledger.storage.sqlite_pool import immediate
from ledger.timemachine.branch_access import (
    BRANCH_GRANTED,
    BRANCH_REVOKED,
    BranchAccess,
    BranchAction,
    check_branch_role,
)
from ledger.timemachine.branch_log import BranchLog
from ledger.timemachine.branch_store import ACTIVE, BranchInfo, BranchStore

MAIN = "main"
BRANCH_DB = "branches.sqlite"


def check_branch_name(name: str) -> str:
    """Return ``name`` if it is a valid branch name (the name grammar of ``ledger.rules.names``, not ``main``)."""
    check_name(name, "branch name")
    if name == MAIN:
        raise InvalidRequest(f"invalid branch name {name!r}: {MAIN!r} is the main log, not a branch")
    return name


def default_store_path(ledger: Ledger) -> Path:
    """``<data dir>/branches.sqlite``: from the ledger's config, else next to a file-backed log."""
    if ledger.config is not None:
        return Path(ledger.config.data_dir) / BRANCH_DB
    log_path = ledger.log.storage_path()
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
        super().__init__(
            log,
            registry=main.registry,
            opener=main.opener,
            sealer=main.sealer,
            record_reads=main.record_reads,
            config=main.config,
            erasure_participants=main.erasure_participants,
        )
        self.main = main
        self.branch = log.name

    def _record_read(
        self,
        cube: str,
        ids: list[str],
        operation: str,
        actor: str | None,
        record_read: bool | None,
        query: str | None = None,
        as_of: int | None = None,
    ) -> None:
        if record_read is False or (record_read is None and (not self.record_reads or actor is None)):
            return
        payload: dict[str, Any] = {"memory_ids": ids, "operation": operation, "as_of": as_of, "branch": self.branch}
        if query is not None:
            payload["query"] = query
        stream = cube if self.main.cube_exists(cube) else ev.SYSTEM_STREAM  # a cube born on the branch
        self.main.log.append([NewEvent(stream, ev.MEMORY_READ, payload, actor or "anonymous")])


class Branches:
    """The branch registry of one ledger (main).

    ``is_admin(principal)`` names the principals that may act on any branch (default: nobody);
    everyone else needs to be a branch's creator or hold a role on it (``ledger.timemachine.branch_access``).
    """

    def __init__(self, main: Ledger, path: str | Path | None = None, is_admin: Callable[[str], bool] | None = None):
        if isinstance(main, BranchLedger):
            main = main.main
        self.main = main
        self.store = BranchStore(path or default_store_path(main))
        self.access = BranchAccess(self.store, main.log, is_admin)

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
        return self.branch_log(name)

    def branch_log(self, name: str) -> BranchLog:
        """The log of branch ``name`` (not main), nested bases resolved."""
        info = self.info(name)
        return BranchLog(self.store, info, self.log(info.parent), self.main.registry, guard=self.access.guard_writes)

    def ledger(self, name: str | None) -> Ledger:
        """A ``Ledger`` over the branch (main's ledger for ``None``/``"main"``)."""
        if name is None or name == MAIN:
            return self.main
        return self.branch_ledger(name)

    def branch_ledger(self, name: str) -> BranchLedger:
        """A ``BranchLedger`` over branch ``name`` (not main)."""
        return BranchLedger(self.branch_log(name), self.main)

    # -- registry operations ------------------------------------------------------------
    def create(self, name: str, at: int | str | None, actor: str, from_branch: str | None = None) -> BranchInfo:
        """Fork ``name`` from main (or ``from_branch``, which needs the right to fork it) at ``at``
        (offset or ISO time; None: head). ``actor`` becomes the branch's creator and owner."""
        check_branch_name(name)
        parent = None if from_branch in (None, MAIN) else from_branch
        base = self.ledger(parent)
        at_offset = base.resolve_as_of(at)
        if parent is not None and at_offset < 0:
            raise InvalidRequest("a nested branch must fork at an offset of its parent (0 or more)")
        if parent is not None:  # after the input checks: bad input is refused without an audit record
            self.access.require(self.info(parent), actor, BranchAction.FORK)
        fork_event = next(iter(base.log.read(at_offset, at_offset)), None) if at_offset >= 0 else None
        fork_hash = fork_event.hash if fork_event else GENESIS_HASH
        fork_ts = fork_event.ts_us if fork_event else 0
        conn = self.store.conn()
        with immediate(conn):
            if self.store.info(name) is not None:
                raise StateError(f"branch {name!r} already exists")
            if parent is not None and self.store.info(parent) is None:
                raise NotFound(f"parent branch {parent!r} was dropped")
            audit = self.main.log.append(
                [
                    NewEvent(
                        ev.SYSTEM_STREAM,
                        ev.BRANCH_CREATED,
                        {"name": name, "at_offset": at_offset, "from_branch": parent},
                        actor,
                    )
                ]
            )[0]
            info = BranchInfo(name, parent, at_offset, fork_hash, fork_ts, audit.ts_us, actor, ACTIVE, audit.event_id)
            self.store.insert(conn, info)
        return info

    def list(self) -> list[dict[str, Any]]:
        """Every branch with its fork point, head and number of own events."""
        out = []
        for info in self.store.all():
            d = info.to_dict()
            n = self.store.event_count(info.name)
            d["events"] = n
            d["head"] = BranchLog(self.store, info, self.main.log).head()
            d["grants"] = self.store.grants(info.name)
            out.append(d)
        return out

    def drop(self, name: str, actor: str, cascade: bool = False) -> BranchInfo:
        """Discard a branch and its own events (its owner, or an admin).

        Branches forked from it are refused unless ``cascade``: then they are dropped with it
        (see :meth:`drop_tree`), so nobody can keep a branch alive by forking from it.
        """
        return self.drop_tree(name, actor, cascade)[-1]

    def drop_tree(self, name: str, actor: str, cascade: bool = True) -> builtins.list[BranchInfo]:
        """Drop ``name`` and (``cascade``) every branch forked from it, deepest first, in one
        batch of ``branch.dropped`` events on main; return the dropped branches in that order.
        Only the right to drop ``name`` is needed: nested branches live on its data."""
        info = self.info(name)
        self.access.require(info, actor, BranchAction.DROP)
        conn = self.store.conn()
        with immediate(conn):
            nested = self.store.descendants(name)
            if nested and not cascade:
                kids = ", ".join(b.name for b in nested)
                raise StateError(
                    f"branch {name!r} has nested branches ({kids}); drop them first, or drop it "
                    f"with them (memledger branch drop {name} --cascade)"
                )
            doomed = [*reversed(nested), self.store.info(name) or info]
            correlation = new_event_id()
            self.main.log.append(
                [
                    NewEvent(ev.SYSTEM_STREAM, ev.BRANCH_DROPPED, {"name": b.name}, actor, correlation_id=correlation)
                    for b in doomed
                ]
            )
            for b in doomed:
                for table in ("branch_refs", "branch_events", "branch_grants"):
                    conn.execute(f"DELETE FROM {table} WHERE branch = ?", (b.name,))
                conn.execute("DELETE FROM branches WHERE name = ?", (b.name,))
        return doomed

    # -- roles on a branch --------------------------------------------------------------
    def roles(self, name: str, principal: str) -> builtins.list[str]:
        """The roles ``principal`` holds on branch ``name`` (its creator holds ``owner``)."""
        return sorted(self.access.roles(self.info(name), principal))

    def grant(self, name: str, principal: str, role: str, actor: str) -> Event | None:
        """Give ``principal`` ``role`` (``writer`` or ``owner``) on branch ``name``; None if already held.

        ``actor`` must own the branch (or be an admin); the grant is a ``branch.granted`` event on
        main's ``_system`` stream.
        """
        return self._change_role(name, principal, role, actor, grant=True)

    def revoke(self, name: str, principal: str, role: str, actor: str) -> Event:
        """Take ``role`` on branch ``name`` away from ``principal`` (a ``branch.revoked`` event)."""
        return present(self._change_role(name, principal, role, actor, grant=False), "the branch.revoked event")

    def _change_role(self, name: str, principal: str, role: str, actor: str, grant: bool) -> Event | None:
        check_branch_role(role)
        if not isinstance(principal, str) or not 0 < len(principal) <= 200:
            raise InvalidRequest("principal must be a name of 1-200 characters")
        info = self.info(name)
        self.access.require(info, actor, BranchAction.GRANT)
        conn = self.store.conn()
        with immediate(conn):
            held = role in self.store.grants(name).get(principal, [])
            if grant and held:
                return None
            if not grant and not held:
                implicit = principal == info.created_by and role == "owner"
                raise (
                    StateError(f"{principal!r} created branch {name!r} and always owns it")
                    if implicit
                    else NotFound(f"{principal!r} holds no {role} role on branch {name!r}")
                )
            payload = {"name": name, "principal": principal, "role": role}
            event = self.main.log.append(
                [NewEvent(ev.SYSTEM_STREAM, BRANCH_GRANTED if grant else BRANCH_REVOKED, payload, actor)]
            )[0]
            if grant:
                conn.execute(
                    "INSERT INTO branch_grants(branch, principal, role) VALUES (?,?,?)", (name, principal, role)
                )
            else:
                conn.execute(
                    "DELETE FROM branch_grants WHERE branch = ? AND principal = ? AND role = ?", (name, principal, role)
                )
        return event

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
                    "SELECT DISTINCT ref FROM branch_refs WHERE branch = ? AND offset <= ?", (log.name, limit)
                )
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


def branch_overlay(
    main: Ledger, name: str, as_of: int | str | None = None, path: str | Path | None = None
) -> tuple[int, Mapping[str, MemoryState | None]]:
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
