"""Who may write to, fork from, merge, drop and grant roles on a branch.

A branch belongs to its creator (``created_by`` in the registry). Anyone else acts on it only
through a role granted on that branch:

- ``writer``  append events to the branch (add, update, lifecycle moves, restore, ...) and fork
  nested branches from it;
- ``owner``   also merge it, drop it (with the branches forked from it) and grant or revoke roles on it.

The creator holds ``owner`` for good; admins (``is_admin(principal)``) may do everything. Roles on
cubes are untouched by this: writing a memory of cube C on a branch still needs the right to write
C where the caller is checked (the HTTP service). Role changes are ``branch.granted`` and
``branch.revoked`` events on main's ``_system`` stream, written in the same transaction protocol as
``branch.created`` (the event on main, the registry row in ``branches.sqlite``); a refusal appends
``access.denied`` to main's ``_system`` stream, as refusals on cubes do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import StrEnum

from ledger import events as ev
from ledger.errors import AccessDenied, InvalidRequest
from ledger.events import NewEvent
from ledger.log import Log
from ledger.timemachine.branch_store import BranchInfo, BranchStore

BRANCH_ROLES = ("owner", "writer")
BRANCH_GRANTED = "branch.granted"
BRANCH_REVOKED = "branch.revoked"


class BranchAction(StrEnum):
    """What a principal wants to do with a branch."""

    WRITE = "write"
    FORK = "fork"
    MERGE = "merge"
    DROP = "drop"
    GRANT = "grant"


ALLOWED: dict[BranchAction, frozenset[str]] = {
    BranchAction.WRITE: frozenset({"owner", "writer"}),
    BranchAction.FORK: frozenset({"owner", "writer"}),
    BranchAction.MERGE: frozenset({"owner"}),
    BranchAction.DROP: frozenset({"owner"}),
    BranchAction.GRANT: frozenset({"owner"}),
}


def check_branch_role(role: str) -> str:
    """Return ``role`` if it is a branch role, else raise ``InvalidRequest``."""
    if role not in BRANCH_ROLES:
        raise InvalidRequest(f"unknown branch role {role!r}; branch roles are {', '.join(BRANCH_ROLES)}")
    return role


class BranchAccess:
    """Role checks on the branches of one registry; refusals are audited on main."""

    def __init__(self, store: BranchStore, main_log: Log, is_admin: Callable[[str], bool] | None = None):
        self.store = store
        self.main_log = main_log
        self.is_admin = is_admin or (lambda principal: False)

    def roles(self, info: BranchInfo, principal: str) -> frozenset[str]:
        """The roles ``principal`` holds on the branch (its creator always holds ``owner``)."""
        held = set(self.store.grants(info.name).get(principal, ()))
        if principal == info.created_by:
            held.add("owner")
        return frozenset(held)

    def allowed(self, info: BranchInfo, principal: str, action: BranchAction) -> bool:
        """Whether ``principal`` may do ``action`` on the branch now (nothing is written)."""
        return self.is_admin(principal) or bool(self.roles(info, principal) & ALLOWED[action])

    def require(self, info: BranchInfo, principal: str, action: BranchAction) -> None:
        """Raise ``AccessDenied`` (and append ``access.denied``) unless ``principal`` may do ``action``."""
        if self.allowed(info, principal, action):
            return
        held = ", ".join(sorted(self.roles(info, principal))) or "no role"
        needs = " or ".join(sorted(ALLOWED[action]))
        reason = f"branch {info.name!r}: {held} does not allow {action.value} (needs {needs})"
        payload = {
            "principal": (principal or "anonymous")[:200],
            "action": f"branch.{action.value}",
            "reason": reason[:2000],
        }
        self.main_log.append([NewEvent(ev.SYSTEM_STREAM, ev.ACCESS_DENIED, payload, payload["principal"])])
        raise AccessDenied(
            f"{principal!r} may not {action.value} branch {info.name!r}: that needs its creator "
            f"({info.created_by}), the {needs} role on the branch (memledger branch grant), "
            "or an admin"
        )

    def guard_writes(self, info: BranchInfo, writers: Iterable[str]) -> None:
        """Called by ``BranchLog.append`` inside its transaction: every writer needs ``write``."""
        for principal in sorted(set(writers)):
            self.require(info, principal, BranchAction.WRITE)
