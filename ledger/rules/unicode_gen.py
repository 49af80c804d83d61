"""Derive the Unicode tables of ``ledger/rules/unicode_tables.py`` (run ``python -m ledger.rules.unicode_gen``).

The tables are derived here, once, because scanning all 1.1 million code points costs about a
quarter of a second, more than a whole CLI start-up; ``ledger.rules.names`` builds its regular
expression from them at import. ``tests/test_trust_names.py`` re-derives them and compares.

- ``LETTERS[script]``: the name letters of each script, as code-point ranges. A name letter is a
  character of a Unicode letter category (``L*``) that is its own NFKC form, has canonical
  combining class 0, is no second half of a canonical composition (so no concatenation of name
  letters ever composes: every name made of them is NFKC-normalised) and is not default-ignorable
  (invisible). Combining marks (``M*``) are never name letters. Scripts are the character's
  Script_Extensions; letters whose only script is Common or Inherited are left out. Name letters
  are in the Basic Multilingual Plane: the rare ideographs of CJK Extensions B-H, historic
  scripts and a few recent ones (Adlam, Osage, ...) live above it, and leaving them out keeps
  every name letter one UTF-16 unit (so the pattern reads alike in ECMA-262 with or without the
  ``u`` flag) and the pattern's character classes small enough (47,000 letters instead of
  128,000) for property-based generators such as hypothesis, which expand a class character by
  character, to build a strategy for it in a fraction of a second.
- ``BLANK``: the code points of the categories Z* (separators), Cc (controls) and Cf (format
  characters, e.g. zero-width spaces): a text made only of these is blank.

``unicodedata`` (of the Python running this) supplies categories, normalisation and
decompositions. Python has no Script property, so scripts and default-ignorability come from the
``regex`` module (a dependency of ``transformers``), needed only to run this derivation.
"""

from __future__ import annotations

import sys
import unicodedata
from collections.abc import Iterable
from pathlib import Path

TABLES = Path(__file__).with_name("unicode_tables.py")
# Hangul composition (Unicode ch. 3.12): L+V and LV+T compose algorithmically, outside the decomposition data
HANGUL_V = range(0x1161, 0x1161 + 21)
HANGUL_T = range(0x11A8, 0x11A7 + 28)
EXCLUDED_SCRIPTS = frozenset({"Common", "Inherited", "Unknown"})
BMP_END = 0xFFFF  # name letters are in the Basic Multilingual Plane (see the module docstring)


def _code_points(limit: int = 0x110000) -> Iterable[int]:
    return (cp for cp in range(limit) if not 0xD800 <= cp <= 0xDFFF)


def composition_seconds() -> set[int]:
    """Characters that can compose with a preceding character (second halves of canonical pairs)."""
    out = set(HANGUL_V) | set(HANGUL_T)
    for cp in _code_points():
        d = unicodedata.decomposition(chr(cp))
        if d and not d.startswith("<"):
            parts = d.split()
            if len(parts) == 2:
                out.add(int(parts[1], 16))
    return out


def name_letters() -> list[int]:
    """Code points of every name letter (see the module docstring), scripts not yet considered."""
    import regex

    seconds = composition_seconds()
    ignorable = regex.compile(r"\p{Default_Ignorable_Code_Point}")
    out = []
    for cp in _code_points(BMP_END + 1):
        c = chr(cp)
        if (
            unicodedata.category(c)[0] == "L"
            and unicodedata.normalize("NFKC", c) == c
            and unicodedata.combining(c) == 0
            and cp not in seconds
            and not ignorable.match(c)
        ):
            out.append(cp)
    return out


def _script_names() -> list[str]:
    """The long names of every script the ``regex`` module knows (its property table)."""
    from regex import _regex_core  # no public listing of property values exists

    aliases: dict[int, list[str]] = {}
    for name, value in _regex_core.PROPERTIES["SCRIPTEXTENSIONS"][1].items():
        aliases.setdefault(value, []).append(name)
    # each script has its long name and its 4-letter ISO 15924 code (they coincide for e.g. THAI)
    return sorted(max(names, key=lambda n: (len(n) != 4, len(n))) for names in aliases.values())


def _display_name(raw: str, letters: list[int]) -> str:
    """A readable script name: ``OLDITALIC`` -> ``Old Italic`` (spaced as in the names of its letters)."""
    for cp in letters:
        words = unicodedata.name(chr(cp), "").split()
        for n in range(len(words), 0, -1):
            joined = "".join(words[:n]).replace("-", "")  # CYPROMINOAN: "CYPRO-MINOAN SIGN CM001"
            if joined in (raw, raw[:-1]):  # ANATOLIANHIEROGLYPHS: "ANATOLIAN HIEROGLYPH A001"
                return " ".join(words[:n]).title() + ("s" if joined != raw else "")
    return {
        "CANADIANABORIGINAL": "Canadian Aboriginal",
        "MEROITICHIEROGLYPHS": "Meroitic Hieroglyphs",
        "TULUTIGALARI": "Tulu-Tigalari",
    }.get(raw, raw.title())


def letters_by_script() -> dict[str, list[tuple[int, int]]]:
    """``{script: [(first, last), ...]}`` of the name letters, by Script_Extensions."""
    import regex

    letters = name_letters()
    text = "".join(map(chr, letters))
    out: dict[str, list[tuple[int, int]]] = {}
    for raw in _script_names():
        cps = [ord(m.group()) for m in regex.finditer(rf"\p{{scx={raw}}}", text)]
        if cps and raw.title() not in EXCLUDED_SCRIPTS:
            out[_display_name(raw, cps)] = ranges(cps)
    return dict(sorted(out.items()))


def blank_ranges() -> list[tuple[int, int]]:
    """Ranges of the categories Z*, Cc and Cf."""
    return ranges(cp for cp in _code_points() if unicodedata.category(chr(cp)) in ("Zs", "Zl", "Zp", "Cc", "Cf"))


def ranges(cps: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted code points folded into inclusive ``(first, last)`` ranges."""
    out: list[list[int]] = []
    for cp in sorted(cps):
        if out and out[-1][1] == cp - 1:
            out[-1][1] = cp
        else:
            out.append([cp, cp])
    return [(a, b) for a, b in out]


def render() -> str:
    """The source of ``ledger/rules/unicode_tables.py``."""
    import regex

    lines = [
        '"""Unicode tables of the name grammar and of blank text.',
        "GENERATED by ``python -m ledger.rules.unicode_gen``: do not edit (see ``ledger/rules/unicode_gen.py``",
        "for what they hold and how they are derived).",
        '"""',
        "",
        f"UNIDATA_VERSION = {unicodedata.unidata_version!r}  # unicodedata the tables were derived with",
        f"SCRIPT_DATA = {'regex ' + regex.__version__!r}  # source of Script_Extensions",
        "",
        "# script -> inclusive code-point ranges of its name letters",
        "LETTERS: dict[str, tuple[tuple[int, int], ...]] = {",
    ]
    for script, rs in letters_by_script().items():
        lines.append(f"    {script!r}: (")
        lines.extend(_wrap(rs, "        "))
        lines.append("    ),")
    lines += [
        "}",
        "",
        "# inclusive code-point ranges of the categories Z*, Cc, Cf",
        "BLANK: tuple[tuple[int, int], ...] = (",
    ]
    lines.extend(_wrap(blank_ranges(), "    "))
    lines += [")", ""]
    return "\n".join(lines)


def _wrap(rs: list[tuple[int, int]], indent: str) -> list[str]:
    items = [f"(0x{a:04X}, 0x{b:04X})," for a, b in rs]
    out, line = [], indent
    for item in items:
        if len(line) + len(item) + 1 > 118:
            out.append(line.rstrip())
            line = indent
        line += item + " "
    if line.strip():
        out.append(line.rstrip())
    return out


def main() -> int:
    TABLES.write_text(render())
    print(f"wrote {TABLES} (unicodedata {unicodedata.unidata_version})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
