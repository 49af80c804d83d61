"""The memory lifecycle state machine: generated → activated → merged → archived → frozen."""

from __future__ import annotations

from ledger.errors import InvalidRequest, StateError

STATES = ("generated", "activated", "merged", "archived", "frozen")

# Allowed moves. ``activated -> generated`` is a demotion out of activation memory;
# ``archived -> activated`` revives an archived memory; ``frozen`` is terminal and read-only.
TRANSITIONS: dict[str, frozenset[str]] = {
    "generated": frozenset({"activated", "merged", "archived", "frozen"}),
    "activated": frozenset({"generated", "merged", "archived", "frozen"}),
    "merged": frozenset({"archived", "frozen"}),
    "archived": frozenset({"activated", "frozen"}),
    "frozen": frozenset(),
}

WRITABLE = frozenset({"generated", "activated"})
SEARCHABLE_BY_DEFAULT = frozenset({"generated", "activated", "frozen"})


def check_state(state: str) -> str:
    """Return ``state`` if it is a lifecycle state, else raise ``InvalidRequest``."""
    if state not in TRANSITIONS:
        raise InvalidRequest(f"unknown lifecycle state {state!r}; expected one of {', '.join(STATES)}")
    return state


def check_transition(memory_id: str, current: str, target: str) -> None:
    """Raise ``StateError`` unless ``current -> target`` is a legal move."""
    check_state(target)
    if target == current:
        raise StateError(f"memory {memory_id} is already {current}")
    if target not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(TRANSITIONS[current])) or "none (frozen is read-only)"
        raise StateError(f"illegal lifecycle move for memory {memory_id}: {current} -> {target} (allowed: {allowed})")


def check_writable(memory_id: str, current: str) -> None:
    """Raise ``StateError`` if a memory in ``current`` state may not be changed."""
    if current not in WRITABLE:
        raise StateError(f"memory {memory_id} is {current} and cannot be modified")
