"""The one name grammar of cubes, branches and data subjects (and the ASCII rule of principals).

A name is 1-200 characters (principals: 1-100) that

- is its own NFKC form (what a user types and what is stored are the same characters);
- starts with a letter or an ASCII digit (so no ``.``, ``..``, ``.x`` or ``_system``), and
  continues with letters, ASCII digits and ``_ - . @ :``: no path separator (``/``, ``\\``), no
  whitespace, no control or format character, so every name is addressable as one URL segment;
- takes its letters from a single script (Unicode TS #39 "highly restrictive"): Latin, Cyrillic,
  Greek, Arabic, ... each on its own, plus the CJK sets Latin + Han + Hiragana + Katakana,
  Latin + Han + Bopomofo and Latin + Han + Hangul. A Latin "alice" spelt with a Cyrillic "а" is
  refused. (Whole-script confusables, a name spelt entirely in Cyrillic that looks Latin, are not
  detected.)

Letters are the characters of ``ledger/rules/unicode_tables.py`` (see ``ledger/rules/unicode_gen.py``):
Unicode letters of the Basic Multilingual Plane that are NFKC-stable and cannot compose with a
neighbour, so every concatenation is NFKC-normalised by construction. Combining marks are not
letters: scripts that need them for vowels (Devanagari, Thai, ...) can only write names without
those marks. Letters whose only script is Common (modifier letters such as ``ˀ``) and letters
above the BMP (rare CJK ideographs of Extensions B-H, historic scripts, Adlam, Osage, ...) are not
name letters either.

The whole grammar except the length is ``NAME_PATTERN``, one regular expression that the
validators here match and that the HTTP API publishes as the ``pattern`` of every name in its
OpenAPI schema (it uses only literal characters, ranges, ``*``, ``|`` and anchors, so Python's
``re``, pydantic's Rust regex and ECMA-262 read it alike). Principals keep their ASCII-only rule,
``PRINCIPAL_PATTERN`` (letters, digits, ``_ . @ -``; no ``:``, which the chat's
``assistant:<model>`` actors use), a subset of the grammar.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable

from ledger.errors import InvalidRequest
from ledger.rules.unicode_tables import LETTERS

MAX_NAME = 200
MAX_PRINCIPAL = 100
PUNCTUATION = "_.@:-"  # "-" last: a literal at the end of a character class in every dialect
# script sets besides the single scripts (TS #39 highly restrictive); a single script inside one is dropped
CJK_SETS: dict[str, frozenset[str]] = {
    "Latin+Han+Hiragana+Katakana": frozenset({"Latin", "Han", "Hiragana", "Katakana"}),
    "Latin+Han+Bopomofo": frozenset({"Latin", "Han", "Bopomofo"}),
    "Latin+Han+Hangul": frozenset({"Latin", "Han", "Hangul"}),
}
PRINCIPAL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$"
PRINCIPAL_RE = re.compile(PRINCIPAL_PATTERN)


def _merge(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def _class_body(ranges: Iterable[tuple[int, int]]) -> str:
    return "".join(chr(a) if a == b else f"{chr(a)}-{chr(b)}" for a, b in ranges)


def _script_sets() -> dict[str, frozenset[str]]:
    sets = {name: frozenset({name}) for name in LETTERS}
    for name, scripts in CJK_SETS.items():
        sets = {k: v for k, v in sets.items() if not v <= scripts}
        sets[name] = scripts
    return sets


SCRIPT_SETS = _script_sets()


def _pattern() -> str:
    # per script set: units of one letter or digit followed by punctuation, so the first character
    # is a letter or digit and each class is written once (the classes are disjoint: no backtracking)
    branches = []
    for scripts in SCRIPT_SETS.values():
        letters = _class_body(_merge(r for s in sorted(scripts) for r in LETTERS[s]))
        branches.append(f"(?:[0-9{letters}][{PUNCTUATION}]*)+")
    return "^(?:" + "|".join(branches) + ")$"


NAME_PATTERN = _pattern()


@functools.cache
def name_regex() -> re.Pattern[str]:
    """``NAME_PATTERN`` compiled (on first use: compiling costs ~20 ms, which a CLI call need not pay)."""
    return re.compile(NAME_PATTERN)


NAME_DESCRIPTION = (
    "NFKC-normalised; starts with a letter or ASCII digit, then letters, ASCII digits and '_-.@:'; "
    "letters of one script (or Latin+Han with Hiragana/Katakana, Bopomofo or Hangul)"
)
PRINCIPAL_DESCRIPTION = "ASCII letters, digits and '_.@-', starting with a letter or digit"


def scripts_of(char: str) -> list[str]:
    """The scripts (of ``LETTERS``) a name letter belongs to; empty for anything else."""
    cp = ord(char)
    return [s for s, rs in LETTERS.items() if any(a <= cp <= b for a, b in rs)]


def _is_letter(char: str) -> bool:
    return bool(scripts_of(char))


def _char(c: str) -> str:
    return f"{c!r} (U+{ord(c):04X} {unicodedata.name(c, 'unnamed')})"


def explain(name: str) -> str:
    """Which rule of the grammar ``name`` breaks (for error messages; ``NAME_PATTERN`` decides)."""
    for c in name:
        if c in "/\\":
            return f"it contains the path separator {c!r}"
    for c in name:
        if unicodedata.category(c)[0] in "ZC":
            return f"it contains whitespace or a control or format character, {_char(c)}"
    nfkc = unicodedata.normalize("NFKC", name)
    if nfkc != name:
        return f"it is not NFKC-normalised (its NFKC form is {nfkc!r})"
    if not ("0" <= name[0] <= "9" or _is_letter(name[0])):
        return f"it must start with a letter or an ASCII digit, not {name[0]!r}"
    for c in name:
        if not ("0" <= c <= "9" or c in PUNCTUATION or _is_letter(c)):
            kind = "a combining mark" if unicodedata.category(c)[0] == "M" else "not a name character"
            return f"{_char(c)} is {kind}: names hold letters, ASCII digits and '{PUNCTUATION}'"
    covering = set(SCRIPT_SETS)
    seen: list[str] = []
    for c in name:
        scripts = set(scripts_of(c))
        if not scripts:
            continue
        still = {k for k in covering if SCRIPT_SETS[k] & scripts}
        if not still:
            first = next(p for p in seen if not set(scripts_of(p)) & scripts)
            return (
                f"it mixes scripts: {'/'.join(scripts_of(first))} {first!r} and {'/'.join(sorted(scripts))} "
                f"{c!r}; letters must come from one script (Han may join Latin with Hiragana/Katakana, "
                "Bopomofo or Hangul)"
            )
        covering = still
        seen.append(c)
    return "it does not match the name grammar"


def name_problem(name: object, max_length: int = MAX_NAME) -> str | None:
    """None if ``name`` follows the grammar, else the rule it breaks."""
    if not isinstance(name, str):
        return "it must be a string"
    if not 1 <= len(name) <= max_length:
        return f"it must be 1-{max_length} characters long, not {len(name)}"
    if name_regex().fullmatch(name):
        return None
    return explain(name)


def check_name(name: object, kind: str, max_length: int = MAX_NAME) -> str:
    """Return ``name`` if it follows the grammar; else raise ``InvalidRequest`` naming the rule broken."""
    problem = name_problem(name, max_length)
    if problem is not None:
        raise InvalidRequest(f"invalid {kind} {name!r}: {problem}")
    return name  # type: ignore[return-value]


def principal_problem(name: object) -> str | None:
    """None if ``name`` follows the principals' ASCII rule, else the rule it breaks."""
    if not isinstance(name, str):
        return "it must be a string"
    if not 1 <= len(name) <= MAX_PRINCIPAL:
        return f"it must be 1-{MAX_PRINCIPAL} characters long, not {len(name)}"
    if PRINCIPAL_RE.fullmatch(name):
        return None
    if not name[0].isascii() or not name[0].isalnum():
        return f"it must start with an ASCII letter or digit, not {name[0]!r}"
    bad = next(c for c in name if not (c.isascii() and (c.isalnum() or c in "_.@-")))
    return f"{_char(bad)} is not allowed: principal names hold ASCII letters, digits and '_.@-'"
