"""Shared output helpers for CLI commands (text or ``--json``)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson


def emit(args: argparse.Namespace, obj: Any, text: str | None = None) -> None:
    """Print ``obj`` as JSON when ``--json`` was given, else ``text`` (or a readable dump)."""
    if getattr(args, "json", False) or text is None:
        sys.stdout.write(orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS).decode() + "\n")
    else:
        sys.stdout.write(text + ("" if text.endswith("\n") else "\n"))


def emit_line(obj: Any) -> None:
    """One JSON object per line (for streams such as ``memledger log``)."""
    sys.stdout.write(orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS).decode() + "\n")


def parse_json_object(text: str | None, what: str) -> dict[str, Any] | None:
    """Parse a JSON object given on the command line, with a clear error."""
    from ledger.errors import InvalidRequest

    if text is None:
        return None
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidRequest(f"{what} must be a JSON object")
    return value


def erasure_lines(report: dict[str, Any], head: str) -> str:
    """The text of an erasure's report (``problems``, ``residue``, ``complete``) under ``head``."""
    lines = [head]
    lines += [f"  problem: {p}" for p in report["problems"]]
    lines += [f"  residue: {f}" for f in report["residue"]]
    if not report["complete"]:
        lines.append("  the erasure is INCOMPLETE: remove the files above (or catch the views up) and re-run")
    return "\n".join(lines)
