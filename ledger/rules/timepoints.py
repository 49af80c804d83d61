"""The one parser of the offsets and times users give (CLI arguments, HTTP parameters, API calls).

An offset is written with the ASCII digits 0-9 (and an optional leading ``-``) and lies within
``±MAX_OFFSET``; anything else is read as an ISO-8601 time (``ledger.events.iso_to_us``). Python's
own ``str.isdigit`` and ``int`` accept far more (``"²".isdigit()`` is true and ``int("٣")`` is 3),
so nothing else in memledger turns user text into an offset.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from typing import Literal

from ledger.errors import InvalidRequest
from ledger.events import iso_to_us

MAX_OFFSET = 2**62  # beyond any log; also the bound the HTTP service puts on offset parameters
# An ISO-8601 time exactly as ``iso_to_us`` parses it: a calendar date (leap days included), optionally
# a time (``T`` or a space; seconds and up to 6 fractional digits optional) and a zone (none: UTC).
# Schemas state this pattern, so a value they accept always parses.
_YEAR = "(?:000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})"
_LEAP_YEAR = "(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:0[48]|[2468][048]|[13579][26])00)"
_MONTH_DAY = (
    "(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
    "|02-(?:0[1-9]|1[0-9]|2[0-8]))"
)
_TIME = "(?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:[.][0-9]{1,6})?)?"
_ZONE = "(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
OFFSET_PATTERN = "-1|[0-9]{1,19}"
TIME_PATTERN = f"(?:{_YEAR}-{_MONTH_DAY}|{_LEAP_YEAR}-02-29)(?:[Tt ]{_TIME}{_ZONE}?)?"
TIME_RE = re.compile(f"^{TIME_PATTERN}$")

_OFFSET = re.compile(r"-?[0-9]+")

Kind = Literal["offset", "time"]


def parse_offset(value: object, what: str = "offset") -> int:
    """An offset from an ``int`` or a string of ASCII digits, within ``±MAX_OFFSET``; else ``InvalidRequest``."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidRequest(f"{what} must be an offset (digits 0-9), not {value!r}")
    if isinstance(value, str):
        text = value.strip()
        if not _OFFSET.fullmatch(text):
            raise InvalidRequest(f"{what} must be an offset (digits 0-9), not {value!r}")
        if len(text.lstrip("-")) > 19:  # int() of thousands of digits is slow or refused
            raise InvalidRequest(
                f"{what} {text[:40]}{'...' if len(text) > 40 else ''} is out of range "
                f"(offsets lie within ±{MAX_OFFSET})"
            )
        value = int(text)
    if not -MAX_OFFSET <= value <= MAX_OFFSET:
        raise InvalidRequest(f"{what} {value} is out of range (offsets lie within ±{MAX_OFFSET})")
    return value


def parse_point(value: object, what: str = "as-of") -> tuple[Kind, int]:
    """``("offset", n)`` or ``("time", microseconds since the epoch)`` for an offset or an ISO-8601 time."""
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit():  # any Unicode digits: parse_offset accepts only 0-9
            return "offset", parse_offset(text, what)
        try:
            return "time", iso_to_us(text)
        except InvalidRequest:
            raise InvalidRequest(f"{what} must be an offset (digits 0-9) or an ISO-8601 time, not {value!r}") from None
    if isinstance(value, int) and not isinstance(value, bool):
        return "offset", parse_offset(value, what)
    raise InvalidRequest(f"{what} must be an offset or an ISO-8601 time, not {value!r}")


def offset_arg(minimum: int = 0) -> Callable[[str], int]:
    """An ``argparse`` ``type=`` for offset arguments (at least ``minimum``), with a one-line error."""

    def parse(text: str) -> int:
        try:
            n = parse_offset(text)
        except InvalidRequest as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        if n < minimum:
            raise argparse.ArgumentTypeError(f"offset {n} is below {minimum}")
        return n

    parse.__name__ = "offset"
    return parse
