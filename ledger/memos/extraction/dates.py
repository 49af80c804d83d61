"""Relative dates in a fact, resolved against the time its message was said.

``resolve("Alice visited Rome yesterday.", "2024-05-08T10:00:00Z")`` gives
``("Alice visited Rome on 2024-05-07.", "2024-05-07")``. Only the simple shapes: ``today``,
``yesterday``, ``N days/weeks ago`` (digits or one to ten), ``last week`` (the Monday that starts
it), ``last month`` and ``last year``. Without a time, or without such a phrase, the text is kept.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from ledger.errors import InvalidRequest
from ledger.events import iso_to_us

_NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9}
_NUMBERS["ten"] = 10
_N = r"(?P<n>\d{1,3}|" + "|".join(_NUMBERS) + r"|a|an)"
_PHRASE = re.compile(
    r"\b(?:(?P<today>today)|(?P<yesterday>yesterday)|" + _N + r"\s+(?P<unit>days?|weeks?)\s+ago|"
    r"last\s+(?P<last>week|month|year))\b",
    re.I,
)


def day_of(observed_at: str | None) -> date | None:
    """The UTC calendar day of an ISO-8601 time (None when absent or unreadable)."""
    if not observed_at:
        return None
    try:
        return datetime.fromtimestamp(iso_to_us(observed_at) / 1e6, tz=UTC).date()
    except (InvalidRequest, OverflowError, OSError, ValueError):
        return None


def _count(word: str) -> int:
    w = word.lower()
    if w in ("a", "an"):
        return 1
    return _NUMBERS[w] if w in _NUMBERS else int(w)


def resolve(text: str, observed_at: str | None) -> tuple[str, str | None]:
    """``text`` with its first relative date replaced by the date it means, and that date (ISO)."""
    day = day_of(observed_at)
    m = _PHRASE.search(text)
    if day is None or m is None:
        return text, None
    if m["today"]:
        when, phrase = day.isoformat(), f"on {day.isoformat()}"
    elif m["yesterday"]:
        d = day - timedelta(days=1)
        when, phrase = d.isoformat(), f"on {d.isoformat()}"
    elif m["unit"]:
        n = _count(m["n"])
        d = day - timedelta(days=n * (7 if m["unit"].lower().startswith("week") else 1))
        when, phrase = d.isoformat(), f"on {d.isoformat()}"
    elif m["last"].lower() == "week":
        monday = day - timedelta(days=day.weekday() + 7)
        when, phrase = monday.isoformat(), f"in the week of {monday.isoformat()}"
    elif m["last"].lower() == "month":
        first = day.replace(day=1) - timedelta(days=1)
        when = f"{first.year:04d}-{first.month:02d}"
        phrase = f"in {when}"
    else:
        when = f"{day.year - 1:04d}"
        phrase = f"in {when}"
    return text[: m.start()] + phrase + text[m.end() :], when
