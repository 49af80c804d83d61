"""The documentation names every CLI command and every HTTP route (issue 15: a command or route
that exists but is documented nowhere fails here, as ``kv`` and ``revoke`` once were)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from ledger.cli.app import build_parser
from ledger.config import init_data_dir
from ledger.service import create_app

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
_ROUTE = re.compile(r"\b((?:GET|POST|PUT|PATCH|DELETE)(?:/(?:GET|POST|PUT|PATCH|DELETE))*) (/[^\s`?,)|]*)")


def _text() -> str:
    return "\n".join(p.read_text() for p in DOCS)


def _commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path (``("branch", "create")``), leaves and groups alike."""
    out: list[tuple[str, ...]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                path = (*prefix, name)
                out.append(path)
                out += _commands(sub, path)
    return out


def test_every_cli_command_is_documented():
    text = " ".join(_text().split())
    missing = [" ".join(p) for p in _commands(build_parser()) if f"memledger {' '.join(p)}" not in text]
    assert not missing, f"commands named nowhere in README.md or docs/*.md (as 'memledger ...'): {missing}"


def _normal(path: str) -> str:
    path = path.removeprefix("/v1")
    return re.sub(r"\{[^}]*\}", "{}", path.rstrip("/")) or "/"


def _documented_routes(text: str) -> set[tuple[str, str]]:
    found = set()
    for methods, path in _ROUTE.findall(text):
        for method in methods.split("/"):
            found.add((method, _normal(path)))
    return found


def _served(tmp_path: Path) -> set[tuple[str, str]]:
    """(method, path) of every operation the service publishes in its OpenAPI document."""
    data, _ = init_data_dir(tmp_path / "data")
    paths = create_app(data).openapi()["paths"]
    served = {(m.upper(), _normal(p)) for p, ops in paths.items() for m in ops if m.upper() in METHODS}
    assert len(served) > 40  # the document really was read
    return served


def test_every_http_route_is_documented(tmp_path):
    documented = _documented_routes((ROOT / "docs" / "service.md").read_text())
    missing = sorted(f"{m} {p}" for m, p in _served(tmp_path) - documented)
    assert not missing, f"routes not in docs/service.md's endpoint tables: {missing}"


def test_documented_routes_exist(tmp_path):
    stale = sorted(
        f"{m} {p}" for m, p in _documented_routes((ROOT / "docs" / "service.md").read_text()) - _served(tmp_path)
    )
    assert not stale, f"docs/service.md names routes the service does not serve: {stale}"
