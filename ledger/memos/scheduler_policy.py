"""The scheduler's policy: thresholds that turn usage (reads) and age into lifecycle decisions."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from ledger.errors import InvalidRequest
from ledger.memos.retention import RetentionRule, parse_rules

DAY = 86_400.0


@dataclass(frozen=True)
class SchedulerPolicy:
    """When to promote, demote, archive and merge. Times are seconds; "now" comes from the log.

    * **usage score** of a memory: each live read (``memory.read`` without ``as_of``) counts
      ``0.5 ** (age / half_life_s)``, so recent reads weigh more.
    * **promote** (generated → activated, i.e. into KV activation memory): at least
      ``promote_min_reads`` reads in the last ``promote_window_s``, a score of at least
      ``promote_min_score``, and content unchanged for ``stable_for_s`` (hot *and* stable).
      At most ``max_activated_per_cube`` memories of a cube are activated; the best scores win.
    * **demote** (activated → generated): no read for ``demote_after_s`` since the last read or
      the activation, whichever is later.
    * **archive** (generated → archived): neither read nor changed for ``archive_after_s``.
    * **merge**: two or more plaintext memories of one cube (same data subject) whose word sets
      have a Jaccard similarity of at least ``merge_threshold`` (and ``merge_min_words`` words)
      are merged into one; the text of the most recently changed one is kept.
    * ``tick_every_s``: on an idle log, a run first appends a ``scheduler.ticked`` event when the
      last event is older than this, so time-based decisions still happen and stay replayable.
    * ``retention``: rules that delete or erase memories older than they allow
      (``ledger.memos.retention``; ``[[scheduler.retention]]`` in ``memledger.toml``).
    """

    half_life_s: float = 7 * DAY
    promote_min_reads: int = 3
    promote_window_s: float = 7 * DAY
    promote_min_score: float = 2.0
    stable_for_s: float = 3600.0
    max_activated_per_cube: int = 32
    demote_after_s: float = 14 * DAY
    archive_after_s: float = 90 * DAY
    merge_threshold: float = 0.9
    merge_min_words: int = 3
    tick_every_s: float = 3600.0
    retention: tuple[RetentionRule, ...] = field(default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "retention", parse_rules(self.retention))
        for f in fields(self):
            if f.name == "retention":
                continue
            v = getattr(self, f.name)
            if not isinstance(v, int | float) or isinstance(v, bool) or v < 0:
                raise InvalidRequest(f"scheduler policy {f.name} must be a non-negative number, not {v!r}")
        if not 0 < self.merge_threshold <= 1:
            raise InvalidRequest("scheduler policy merge_threshold must be in (0, 1]")
        if self.half_life_s <= 0:
            raise InvalidRequest("scheduler policy half_life_s must be positive")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "retention"}
        out["retention"] = [r.to_dict() for r in self.retention]
        return out

    @staticmethod
    def from_dict(d: dict[str, Any] | None) -> SchedulerPolicy:
        """Build from a dict (e.g. ``[scheduler]`` in ``memledger.toml``); unknown keys are an error."""
        d = dict(d or {})
        known = {f.name: f.type for f in fields(SchedulerPolicy)}
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise InvalidRequest(f"unknown scheduler policy setting(s): {', '.join(unknown)}")
        out: dict[str, Any] = {"retention": parse_rules(d.pop("retention", None))}
        for k, v in d.items():
            default = getattr(SchedulerPolicy, k)
            try:
                out[k] = int(v) if isinstance(default, int) else float(v)
            except (TypeError, ValueError):
                raise InvalidRequest(f"scheduler policy {k} must be a number, not {v!r}") from None
        return SchedulerPolicy(**out)
