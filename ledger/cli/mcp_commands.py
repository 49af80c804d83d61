"""``memledger mcp``: the MCP server over stdio, on the embedded ledger of the data directory."""

from __future__ import annotations

import argparse

from ledger.cli.app import default_actor


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("mcp", help="serve the Model Context Protocol over stdio (what desktop agents and IDEs launch)")
    p.add_argument("--cube", default=None, help="default cube: add needs only text, search only a query")
    p.add_argument("--actor", default=None, help="who the events name (default $MEMLEDGER_ACTOR, else the login name)")
    p.set_defaults(func=cmd_mcp)


def cmd_mcp(args: argparse.Namespace) -> int:
    from ledger.mcp.server import run_stdio

    run_stdio(args.data, args.actor or default_actor(), args.cube)
    return 0
