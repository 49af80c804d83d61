"""Argument parsing and dispatch. Each command group lives in its own module with a
``register(subparsers, common)`` function; ``COMMAND_MODULES`` lists them."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn

from ledger.config import default_data_dir
from ledger.errors import InvalidRequest, LedgerError, NotFound
from ledger.storage.file_modes import private_umask

EXIT_INTERNAL = 70  # an unexpected error (EX_SOFTWARE); 1 means `verify` found a problem, 2 bad input, 3 not found

COMMAND_MODULES = [
    "ledger.cli.core_commands",
    "ledger.cli.time_commands",
    "ledger.cli.search_commands",
    "ledger.cli.demo_commands",
    "ledger.cli.governance_commands",
    "ledger.cli.erasure_commands",
    "ledger.cli.memos_commands",
    "ledger.cli.service_commands",
    "ledger.cli.mcp_commands",
    "ledger.cli.dist_commands",
    "ledger.cli.ingest_commands",
    "ledger.cli.llm_commands",
]


def default_actor() -> str:
    """``$MEMLEDGER_ACTOR`` or the login name."""
    return os.environ.get("MEMLEDGER_ACTOR") or os.environ.get("USER") or "cli"


class UsageError(InvalidRequest):
    """A command line argparse rejects (bad or missing argument): one line and exit code 2."""


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are ``UsageError`` instead of a usage dump and ``exit(2)``."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="memledger", description="Event-sourced memory ledger for LLM agents.")
    parser.add_argument("--data", default=None, help="data directory (default: $MEMLEDGER_DATA or ./memledger-data)")
    common = _Parser(add_help=False)
    common.add_argument("--json", action="store_true", help="machine-readable output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit code (see ``EXIT_*`` and the README: bad input is 2)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    old_umask = private_umask()  # every file the command (or `serve`) creates is private to its owner
    _show_warnings()
    try:
        _check_utf8(argv)
        args = build_parser().parse_args(argv)
        if args.data is None:
            args.data = str(default_data_dir())
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
    except Exception as exc:  # noqa: BLE001 - a bug: one line, its own exit code, the traceback on request
        if os.environ.get("MEMLEDGER_DEBUG"):
            traceback.print_exc()
        detail = " ".join(f"{type(exc).__name__}: {exc}".split())[:500]
        print(
            f"error: internal error ({detail}); this is a bug, MEMLEDGER_DEBUG=1 shows the traceback", file=sys.stderr
        )
        return EXIT_INTERNAL
    finally:
        os.umask(old_umask)


class _WarningLine(logging.Handler):
    """Warnings of the library (``memledger`` logger) as ``warning: ...`` lines on the current stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        print(f"warning: {record.getMessage()}", file=sys.stderr)


def _show_warnings() -> None:
    logger = logging.getLogger("memledger")
    if not any(isinstance(h, _WarningLine) for h in logger.handlers):
        handler = _WarningLine(logging.WARNING)
        logger.addHandler(handler)


def _check_utf8(argv: Sequence[str]) -> None:
    """Refuse arguments that are not valid UTF-8 (undecodable bytes arrive as lone surrogates)."""
    for i, arg in enumerate(argv, start=1):
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidRequest(f"argument {i} ({arg!r}) is not valid UTF-8 text") from None
