"""Content rules of the core and the HTTP API: memory text that is not blank, metadata of finite numbers.

- A text is blank when it holds only characters of the categories Z* (spaces, line and paragraph
  separators), Cc (controls) and Cf (format characters such as zero-width spaces and joiners):
  ``NONBLANK_PATTERN`` finds a character outside them, and is also the ``pattern`` of texts in
  the OpenAPI schema (a search, as JSON Schema patterns are).
- Metadata numbers must be finite: JSON has no NaN or Infinity, and an overflowing literal such
  as ``1e400`` parses to infinity; stored, each would silently become ``null``. (Integers beyond
  64 bits are refused by the canonical encoding; the HTTP API narrows numbers further, see
  ``ledger/service/models.py``.)
"""

from __future__ import annotations

import functools
import math
import re
from typing import Any

from ledger.errors import InvalidRequest
from ledger.rules.unicode_tables import BLANK


def _escape(cp: int) -> str:
    # \\uXXXX reads alike in Python's re, Rust's regex and ECMA-262; other planes as literal characters
    return f"\\u{cp:04X}" if cp <= 0xFFFF else chr(cp)


NONBLANK_PATTERN = "[^" + "".join(_escape(a) if a == b else f"{_escape(a)}-{_escape(b)}" for a, b in BLANK) + "]"
BLANK_RULE = "it holds only whitespace, control or zero-width/format characters"


@functools.cache
def nonblank_regex() -> re.Pattern[str]:
    """``NONBLANK_PATTERN`` compiled."""
    return re.compile(NONBLANK_PATTERN)


def is_blank(text: str) -> bool:
    """True when ``text`` holds no character outside Z*, Cc and Cf (the empty text included)."""
    return nonblank_regex().search(text) is None


def check_text(text: object, what: str = "memory text") -> str:
    """Return ``text`` if it is a string that is not blank; else raise ``InvalidRequest``."""
    if not isinstance(text, str):
        raise InvalidRequest(f"{what} must be a non-empty string")
    if is_blank(text):
        raise InvalidRequest(f"{what} must be a non-empty string, not blank: {BLANK_RULE}")
    return text


def metadata_problem(value: Any, path: str = "metadata") -> str | None:
    """None if every number in ``value`` (nested objects and arrays included) is finite, else where not."""
    stack = [(path, value)]
    while stack:
        where, v = stack.pop()
        if isinstance(v, float) and not math.isfinite(v):
            return (
                f"{where} is {v!r}: numbers must be finite (NaN, Infinity and literals that overflow, "
                "such as 1e400, cannot be stored)"
            )
        if isinstance(v, dict):
            stack.extend((f"{where}.{k}", x) for k, x in v.items())
        elif isinstance(v, list | tuple):
            stack.extend((f"{where}[{i}]", x) for i, x in enumerate(v))
    return None


def check_metadata(metadata: Any) -> Any:
    """Return ``metadata`` if its numbers are all finite; else raise ``InvalidRequest``."""
    problem = metadata_problem(metadata)
    if problem is not None:
        raise InvalidRequest(problem)
    return metadata
