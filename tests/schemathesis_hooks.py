"""Schemathesis hooks of tests/test_service_schemathesis.py (loaded through ``SCHEMATHESIS_HOOKS``).

One thing only, a speed-up of data generation that changes no check and no generated value:
hypothesis turns a regex character class into a strategy by adding its characters one at a
time, so a class holding the ~47,000 letters of the name grammar's pattern (``ledger.rules.names``)
costs about half a second per strategy, and schemathesis builds hundreds of them (one per
schema variant it derives). For a plain positive class of literal characters and ranges, with no
flags, the strategy hypothesis builds is exactly ``OneCharStringStrategy(class ∩ alphabet)``;
this hook builds that same strategy from the ranges directly. Anything else (negated classes,
categories such as ``\\w``, case-insensitive patterns, bytes) goes to hypothesis unchanged, and
so does everything if hypothesis's internals are not what this hook expects.
"""

from __future__ import annotations

import re
import re._constants as sre  # what hypothesis's regex module uses
from typing import Any

try:
    from hypothesis.internal.intervalsets import IntervalSet
    from hypothesis.strategies._internal import regex as _regex
    from hypothesis.strategies._internal.lazy import unwrap_strategies

    _original = _regex._strategy
    _to_strategy = _regex._intervals_to_strategy
except (ImportError, AttributeError):  # another hypothesis: generate the slow way
    _original = None

LARGE = 1000  # characters; smaller classes are cheap enough as they are


def _class_strategy(codes: Any, context: Any, is_unicode: bool, *, alphabet: Any) -> Any:
    if (
        isinstance(codes, tuple)
        and codes[0] == sre.IN
        and is_unicode
        and alphabet is not None
        and not context.flags & re.IGNORECASE
        and all(code in (sre.LITERAL, sre.RANGE) for code, _ in codes[1])
    ):
        ranges = [(v, v) if code == sre.LITERAL else v for code, v in codes[1]]
        if sum(hi - lo + 1 for lo, hi in ranges) >= LARGE:
            intervals = IntervalSet(_merged(ranges)) & unwrap_strategies(alphabet).intervals
            return _to_strategy(intervals, description="This character class")
    return _original(codes, context, is_unicode, alphabet=alphabet)


def _merged(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return [(lo, hi) for lo, hi in out]


if _original is not None:
    _regex._strategy = _class_strategy  # ``recurse`` inside looks the name up here on every call
