"""Finding the memory an ``add`` would duplicate: same cube, same scope, same subject, same text.

"Same text" is the normalised text of ``ledger.memos.extraction.reconcile.normalise``: case,
punctuation, white space and articles do not count ("Alice likes tea." and "alice likes  the tea"
are duplicates). The scope is the memory's ``user_id`` / ``agent_id`` / ``run_id``. Only current,
searchable memories count (generated, activated, frozen; not deleted, archived or merged).

The index is kept per cube in memory and brought up to date incrementally from the cube's stream
(the events after the version it has seen), so a check costs the new events plus one lookup. The
extraction consumer reads the scope's current memories from it too (``memories``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ledger import events as ev
from ledger.events import Event
from ledger.lifecycle import SEARCHABLE_BY_DEFAULT
from ledger.memory_state import MemoryState, Opener, apply_event, scope_of
from ledger.memos.extraction.reconcile import normalise

Key = tuple[str, str, str | None]


def duplicate_key(text: str, metadata: dict[str, Any] | None, subject: str | None) -> Key:
    """What two memories must share to be duplicates."""
    scope = scope_of(metadata)
    return normalise(text), repr(sorted(scope.items())), subject


@dataclass(slots=True)
class _Cube:
    version: int = 0
    states: dict[str, MemoryState] = field(default_factory=dict)
    keys: dict[str, Key] = field(default_factory=dict)
    by_key: dict[Key, dict[str, None]] = field(default_factory=dict)

    def apply(self, events: Iterable[Event], opener: Opener | None) -> None:
        for e in events:
            self.version = max(self.version, e.version)
            for mid in apply_event(self.states, e, opener):
                self._reindex(mid)

    def _reindex(self, mid: str) -> None:
        old = self.keys.pop(mid, None)
        if old is not None:
            self.by_key.get(old, {}).pop(mid, None)
        s = self.states.get(mid)
        if s is None or not s.exists or s.text is None or s.state not in SEARCHABLE_BY_DEFAULT:
            return
        key = duplicate_key(s.text, s.metadata, s.subject)
        self.keys[mid] = key
        self.by_key.setdefault(key, {})[mid] = None


class DuplicateIndex:
    """Per-cube index of current memories by ``duplicate_key`` (see the module docstring)."""

    def __init__(self, read_stream: Callable[[str, int], Iterable[Event]], opener: Opener | None):
        self._read = read_stream
        self._opener = opener
        self._cubes: dict[str, _Cube] = {}
        self._system = 0  # version of the _system stream seen
        self._lock = threading.Lock()

    def _caught_up(self, cube: str) -> _Cube:
        # a forgotten subject (recorded on _system, not on the cube) makes memories unreadable: fold anew
        for e in self._read(ev.SYSTEM_STREAM, self._system + 1):
            self._system = max(self._system, e.version)
            if e.type == ev.SUBJECT_FORGOTTEN:
                self._cubes.clear()
        c = self._cubes.setdefault(cube, _Cube())
        c.apply(self._read(cube, c.version + 1), self._opener)
        return c

    def find(self, cube: str, text: str, metadata: dict[str, Any] | None, subject: str | None) -> MemoryState | None:
        """The oldest current memory of ``cube`` that ``text`` (with this scope and subject) duplicates."""
        with self._lock:
            c = self._caught_up(cube)
            ids = c.by_key.get(duplicate_key(text, metadata, subject))
            return c.states[next(iter(ids))] if ids else None

    def memories(self, cube: str) -> dict[str, MemoryState]:
        """Every existing memory of ``cube`` at its current version (``Ledger.cube_memories`` at the head,
        without folding the whole stream again)."""
        with self._lock:
            return {mid: s for mid, s in self._caught_up(cube).states.items() if s.exists}
