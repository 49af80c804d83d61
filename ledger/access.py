"""Per-cube access control: roles are folded from the log, checks are audited.

Roles (a principal may hold several on one cube):

- ``owner``   read and write memories, read the cube's unredacted events, grant and revoke roles, export;
- ``writer``  read and write memories (add, update, lifecycle moves, merge, link);
- ``reader``  read memories (get, history, list, search, chat) as of any offset;
- ``auditor`` read the cube's audit trail (every event of the cube, with memory texts and metadata
  redacted), its grants, and run verification; never memory texts.

The creator of a cube is its owner (``cube.created`` payload ``owner``); ``access.granted`` and
``access.revoked`` events change roles; a cube with visibility ``shared`` (``cube.created`` or
``cube.updated``) is readable by every principal, and ``cube.shared`` gives one principal ``reader``
(``unshare`` takes it back). All of these are events, so who could do what at any past offset is itself
replayable. A refused attempt appends ``access.denied``. A principal without any role on a cube
is told the cube (or memory) does not exist, exactly as for an id that really does not exist;
both cases are audited, so guessing ids reveals nothing and leaves a trace.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from ledger import events as ev
from ledger.errors import AccessDenied, ConcurrencyConflict, InvalidRequest, NotFound, StateError
from ledger.events import Event, NewEvent
from ledger.log import Log

ROLES = ("owner", "writer", "reader", "auditor")
CUBE_UPDATED = "cube.updated"  # metadata / visibility changes (ledger.memos.cubes)
CUBE_SHARED = "cube.shared"  # share / unshare with one principal (ledger.memos.cubes): grants ``reader``


class Action(StrEnum):
    """What a request wants to do on a cube."""

    READ = "read"  # memory texts
    WRITE = "write"  # new events about memories
    AUDIT = "audit"  # the cube's event trail (redacted unless READ is also allowed), grants, verify
    MANAGE = "manage"  # grant / revoke / export


ALLOWED: dict[Action, frozenset[str]] = {
    Action.READ: frozenset({"owner", "writer", "reader"}),
    Action.WRITE: frozenset({"owner", "writer"}),
    Action.AUDIT: frozenset({"owner", "auditor"}),
    Action.MANAGE: frozenset({"owner"}),
}


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated identity of a request (``admin`` principals operate the service)."""

    name: str
    admin: bool = False


class AccessIndex:
    """Roles per cube and the cube of every memory, folded incrementally from the log."""

    def __init__(self, log: Log):
        self.log = log
        self._lock = threading.Lock()
        self._offset = -1
        self._roles: dict[str, dict[str, set[str]]] = {}
        self._shared: dict[str, set[str]] = {}  # cube -> principals it was shared with (cube.shared)
        self._public: set[str] = set()  # cubes with visibility "shared": every principal may read
        self._memory_cube: dict[str, str] = {}

    def refresh(self) -> int:
        """Apply events appended since the last refresh; return the offset folded up to."""
        with self._lock:
            head = self.log.head()
            if head > self._offset:
                for e in self.log.read(self._offset + 1, head):
                    self._apply(e)
                    self._offset = e.offset
            return self._offset

    def _apply(self, e: Event) -> None:
        p = e.payload
        if e.type == ev.CUBE_CREATED:
            self._roles.setdefault(e.stream, {}).setdefault(p["owner"], set()).add("owner")
            self._set_visibility(e.stream, p.get("visibility"))
        elif e.type == CUBE_UPDATED and "visibility" in p:
            self._set_visibility(e.stream, p["visibility"])
        elif e.type == CUBE_SHARED and p.get("cube") == e.stream:
            shared = self._shared.setdefault(e.stream, set())
            if p.get("action") == "unshare":
                shared.discard(p["principal"])
            else:
                shared.add(p["principal"])
        elif e.type in (ev.ACCESS_GRANTED, ev.ACCESS_REVOKED) and p.get("cube") != e.stream:
            return  # a role change counts only on the stream of the cube it names
        elif e.type == ev.ACCESS_GRANTED:
            self._roles.setdefault(p["cube"], {}).setdefault(p["principal"], set()).add(p["role"])
        elif e.type == ev.ACCESS_REVOKED:
            held = self._roles.get(p["cube"], {}).get(p["principal"])
            if held is not None:
                held.discard(p["role"])
            if p["role"] == "reader":  # reading obtained by a share ends with the revocation too
                self._shared.get(p["cube"], set()).discard(p["principal"])
        elif e.type in (ev.MEMORY_ADDED, ev.MEMORY_MERGED) and isinstance(p.get("memory_id"), str):
            self._memory_cube.setdefault(p["memory_id"], e.stream)
        elif e.type == ev.MESSAGE_ADDED and isinstance(p.get("message_id"), str):
            self._memory_cube.setdefault(p["message_id"], e.stream)  # erase / lineage take message ids too

    def _set_visibility(self, cube: str, visibility: object) -> None:
        if visibility == "shared":
            self._public.add(cube)
        elif visibility == "private":
            self._public.discard(cube)

    # -- queries (call refresh() first for an up-to-date answer) ---------------------------
    def cube_exists(self, cube: str) -> bool:
        with self._lock:
            return cube in self._roles

    def roles(self, cube: str, principal: str) -> frozenset[str]:
        """Explicit roles plus ``reader`` when the cube is shared with the principal or with everyone."""
        with self._lock:
            held = set(self._roles.get(cube, {}).get(principal, ()))
            if cube in self._roles and (cube in self._public or principal in self._shared.get(cube, ())):
                held.add("reader")
            return frozenset(held)

    def sharing(self, cube: str) -> dict[str, object]:
        """Visibility and ``cube.shared`` principals of a cube."""
        with self._lock:
            return {
                "visibility": "shared" if cube in self._public else "private",
                "shared_with": sorted(self._shared.get(cube, ())),
            }

    def grants(self, cube: str) -> dict[str, list[str]]:
        """Principal -> sorted roles on ``cube`` (principals with no role left are omitted)."""
        with self._lock:
            return {p: sorted(r) for p, r in sorted(self._roles.get(cube, {}).items()) if r}

    def cubes_of(self, principal: str) -> dict[str, list[str]]:
        """Cube -> sorted roles of ``principal`` (shared cubes included)."""
        with self._lock:
            names = sorted(self._roles)
        out = {}
        for c in names:
            held = self.roles(c, principal)
            if held:
                out[c] = sorted(held)
        return out

    def cube_of(self, memory_id: str) -> str | None:
        with self._lock:
            return self._memory_cube.get(memory_id)


class AccessControl:
    """Checks roles before every operation and records denials and role changes as events."""

    def __init__(
        self, log: Log, index: AccessIndex | None = None, principal_exists: Callable[[str], bool] | None = None
    ):
        self.log = log
        self.index = index or AccessIndex(log)
        self.principal_exists = principal_exists

    # -- checks ------------------------------------------------------------------------------
    def allowed(self, caller: Caller, cube: str, action: Action) -> bool:
        """Whether ``caller`` may do ``action`` on ``cube`` right now (no event written)."""
        self.index.refresh()
        if caller.admin and action is Action.MANAGE and self.index.cube_exists(cube):
            return True
        return bool(self.index.roles(cube, caller.name) & ALLOWED[action])

    def visible(self, caller: Caller, cube: str) -> bool:
        """Whether the caller holds any role on ``cube`` (so its existence may be revealed)."""
        self.index.refresh()
        return bool(self.index.roles(cube, caller.name)) or (caller.admin and self.index.cube_exists(cube))

    def require_cube(self, caller: Caller, cube: str, action: Action, operation: str) -> None:
        """Raise unless ``caller`` may do ``action`` on ``cube``; a refusal is audited.

        Without any role on the cube the error is ``NotFound`` (indistinguishable from a cube
        that does not exist); with some other role it is ``AccessDenied``.
        """
        if self.allowed(caller, cube, action):
            return
        exists = self.index.cube_exists(cube)
        if not exists:
            self.deny(caller.name, operation, cube=cube, reason="unknown cube")
            raise NotFound(f"cube {cube!r} not found")
        if not self.visible(caller, cube):
            self.deny(caller.name, operation, cube=cube, reason=f"no role on the cube (needs {action.value})")
            raise NotFound(f"cube {cube!r} not found")
        held = ", ".join(sorted(self.index.roles(cube, caller.name)))
        self.deny(caller.name, operation, cube=cube, reason=f"role {held} does not allow {action.value}")
        raise AccessDenied(f"{caller.name!r} holds {held} on cube {cube!r}, which does not allow {operation}")

    def require_memory(self, caller: Caller, memory_id: str, action: Action, operation: str) -> str:
        """Check ``action`` on the cube that holds ``memory_id`` and return that cube.

        The cube is looked up from the log, never taken from the request, so a guessed id of
        another principal's memory gets the same ``NotFound`` as an id that does not exist.
        """
        self.index.refresh()
        cube = self.index.cube_of(memory_id)
        if cube is None:
            self.deny(caller.name, operation, memory_id=memory_id, reason="unknown memory")
            raise NotFound(f"memory {memory_id} not found")
        if self.allowed(caller, cube, action):
            return cube
        if not self.visible(caller, cube):
            self.deny(
                caller.name,
                operation,
                cube=cube,
                memory_id=memory_id,
                reason=f"no role on the memory's cube (needs {action.value})",
            )
            raise NotFound(f"memory {memory_id} not found")
        held = ", ".join(sorted(self.index.roles(cube, caller.name)))
        self.deny(
            caller.name, operation, cube=cube, memory_id=memory_id, reason=f"role {held} does not allow {action.value}"
        )
        raise AccessDenied(f"{caller.name!r} holds {held} on cube {cube!r}, which does not allow {operation}")

    def deny(
        self, principal: str, operation: str, cube: str | None = None, memory_id: str | None = None, reason: str = ""
    ) -> Event:
        """Append an ``access.denied`` event (on the cube's stream when it exists, else ``_system``)."""
        self.index.refresh()
        stream = cube if cube is not None and self.index.cube_exists(cube) else ev.SYSTEM_STREAM
        payload: dict[str, object] = {
            "principal": (principal or "anonymous")[:200],
            "action": operation[:200],
            "reason": reason[:2000],
        }
        if cube is not None:
            payload["cube"] = cube[:200]
        if memory_id is not None:
            payload["memory_id"] = memory_id[:200]
        return self.log.append([NewEvent(stream, ev.ACCESS_DENIED, payload, str(payload["principal"]))])[0]

    # -- role changes --------------------------------------------------------------------------
    def grant(self, caller: Caller, cube: str, principal: str, role: str) -> Event | None:
        """Give ``principal`` ``role`` on ``cube`` (owners, or admins); None if already held."""
        _check_role(role)
        self.require_cube(caller, cube, Action.MANAGE, "grant")
        if self.principal_exists is not None and not self.principal_exists(principal):
            raise NotFound(f"principal {principal!r} does not exist")
        if role in self.index.roles(cube, principal):
            return None
        payload = {"cube": cube, "principal": principal, "role": role}
        event = self.log.append([NewEvent(cube, ev.ACCESS_GRANTED, payload, caller.name)])[0]
        self.index.refresh()
        return event

    def revoke(self, caller: Caller, cube: str, principal: str, role: str) -> Event:
        """Take ``role`` on ``cube`` away from ``principal``; effective for the next request.

        Revoking ``reader`` also ends reading obtained through ``cube.shared``. A revocation that
        could not take effect is refused before anything is written: a role the principal does not
        hold, ``reader`` on a cube every principal may read, or the cube's last owner. The check
        and the append are one step: the event is appended only if the cube's stream is still at
        the version the check saw (a concurrent role change makes it check again).
        """
        _check_role(role)
        for _ in range(50):
            version = self.log.stream_version(cube)
            self.require_cube(caller, cube, Action.MANAGE, "revoke")  # folds the roles up to >= version
            self._check_revocable(cube, principal, role)
            payload = {"cube": cube, "principal": principal, "role": role}
            try:
                event = self.log.append([NewEvent(cube, ev.ACCESS_REVOKED, payload, caller.name)], {cube: version})[0]
            except ConcurrencyConflict:
                continue  # the cube changed between the check and the append: check again
            self.index.refresh()
            return event
        raise ConcurrencyConflict(cube, version, self.log.stream_version(cube))

    def _check_revocable(self, cube: str, principal: str, role: str) -> None:
        if role not in self.index.roles(cube, principal):
            raise NotFound(f"{principal!r} holds no {role} role on cube {cube!r}")
        if role == "reader" and self.index.sharing(cube)["visibility"] == "shared":
            raise StateError(
                f"cube {cube!r} is readable by every principal (visibility shared); revoking "
                f"{principal!r}'s reader role would not take effect: make the cube private first"
            )
        if role == "owner":
            owners = [p for p, r in self.index.grants(cube).items() if "owner" in r]
            if owners == [principal]:
                raise StateError(f"{principal!r} is the last owner of cube {cube!r}; grant another owner first")


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise InvalidRequest(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
