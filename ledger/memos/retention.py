"""Retention rules: how long memories may be kept, and what happens when they expire.

A rule names the memories it covers (a cube, a filter in the grammar of ``ledger.rules.filters``
over the built-in fields and the scope keys ``user_id``/``agent_id``/``run_id``, which stay readable
after an erasure so the rule replays; or both; neither: every memory), an age (``after``: ``"90d"``, ``"12h"``,
``"30m"``, ``"2w"`` or seconds) counted from the memory's creation, and an action: ``delete`` (a
tombstone; restore can bring it back) or ``erase`` (key destruction, for good). In
``memledger.toml``::

    [[scheduler.retention]]
    cube = "support"
    where = {user_id = "u1"}
    after = "90d"
    action = "erase"

The scheduler applies the rules: its decisions are a pure function of the log prefix and the
policy (which records the rules), so they replay like its other decisions. Where several rules
cover a memory, the first that has expired it wins; frozen memories are never expired; a memory
under a legal hold is not expired, and the first refusal per hold is recorded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ledger.errors import InvalidRequest
from ledger.memory_state import SCOPE_KEYS, MemoryState
from ledger.rules.filters import BUILTIN_FIELDS, Filter, fields_of, parse_filter, record_of

ACTIONS = ("delete", "erase")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
RULE_KEYS = frozenset({"cube", "where", "after", "action"})


def parse_duration(value: Any, what: str = "after") -> float:
    """Seconds from ``"90d"``-style text or a number."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _UNIT[m.group(2)]
    else:
        raise InvalidRequest(f'{what} must be a duration such as "90d", "12h", "30m" or seconds, not {value!r}')
    if seconds <= 0:
        raise InvalidRequest(f"{what} must be positive")
    return seconds


@dataclass(frozen=True)
class RetentionRule:
    """Memories of ``cube`` (any, if None) matching ``where`` expire ``after_s`` seconds after creation."""

    after_s: float
    action: str = "delete"
    cube: str | None = None
    where: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise InvalidRequest(f"retention action must be one of {', '.join(ACTIONS)}, not {self.action!r}")
        if self.cube is not None and not isinstance(self.cube, str):
            raise InvalidRequest("retention cube must be a cube name")
        parse_filter(self.where, "retention where")
        sealed = sorted(fields_of(self.where) - set(BUILTIN_FIELDS) - set(SCOPE_KEYS))
        if sealed:
            raise InvalidRequest(
                f"retention where may use the built-in fields and the scope keys ({', '.join(SCOPE_KEYS)}), "
                f"not {', '.join(sealed)}: other metadata is sealed, so the rule could not be replayed once a "
                "memory is erased"
            )

    @property
    def filter(self) -> Filter:
        return parse_filter(self.where, "retention where")

    def covers(self, m: MemoryState) -> bool:
        return (self.cube is None or m.cube == self.cube) and self.filter.matches(record_of(m))

    def describe(self) -> str:
        scope = f"cube {self.cube}" if self.cube else "every cube"
        if self.where:
            scope += f" where {self.where}"
        return f"{self.action} after {self.after_s:.0f}s ({scope})"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"after": self.after_s, "action": self.action}
        if self.cube is not None:
            d["cube"] = self.cube
        if self.where:
            d["where"] = self.where
        return d

    @staticmethod
    def from_dict(d: Any) -> RetentionRule:
        if not isinstance(d, dict):
            raise InvalidRequest("a retention rule is a table with after, action and optionally cube and where")
        unknown = sorted(set(d) - RULE_KEYS)
        if unknown:
            raise InvalidRequest(f"unknown retention rule setting(s): {', '.join(unknown)}")
        if "after" not in d:
            raise InvalidRequest('a retention rule needs after (e.g. "90d")')
        return RetentionRule(parse_duration(d["after"]), d.get("action", "delete"), d.get("cube"), d.get("where"))


def parse_rules(value: Any) -> tuple[RetentionRule, ...]:
    """The ``retention`` list of the scheduler policy."""
    if value is None:
        return ()
    if not isinstance(value, list | tuple):
        raise InvalidRequest("scheduler retention must be a list of rules ([[scheduler.retention]] tables)")
    return tuple(r if isinstance(r, RetentionRule) else RetentionRule.from_dict(r) for r in value)


def expired_by(rules: tuple[RetentionRule, ...], m: MemoryState, age_s: float) -> RetentionRule | None:
    """The first rule that has expired ``m`` at ``age_s`` seconds, if any."""
    for rule in rules:
        if age_s >= rule.after_s and rule.covers(m):
            return rule
    return None
