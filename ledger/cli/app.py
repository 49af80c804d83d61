"""Argument parsing and dispatch. Each command group lives in its own module with a
``register(subparsers, common)`` function; ``COMMAND_MODULES`` lists them."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from ledger.config import default_data_dir
from ledger.errors import LedgerError, NotFound

COMMAND_MODULES = [
    "ledger.cli.core_commands",
    "ledger.cli.time_commands",
    "ledger.cli.search_commands",
    "ledger.cli.demo_commands",
    "ledger.cli.governance_commands",
    "ledger.cli.memos_commands",
    "ledger.cli.service_commands",
    "ledger.cli.dist_commands",
]


def default_actor() -> str:
    """``$MEMLEDGER_ACTOR`` or the login name."""
    return os.environ.get("MEMLEDGER_ACTOR") or os.environ.get("USER") or "cli"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="memledger", description="Event-sourced memory ledger for LLM agents.")
    parser.add_argument("--data", default=None,
                        help="data directory (default: $MEMLEDGER_DATA or ./memledger-data)")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="machine-readable output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.data is None:
        args.data = str(default_data_dir())
    try:
        return int(args.func(args) or 0)
    except NotFound as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except LedgerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return 130
