"""Building the MCP server (tools and resources over a session factory) and running it over stdio.

``memledger mcp --cube C`` serves the embedded ledger of the data directory on stdin/stdout: the
process an IDE or desktop agent launches. Its events name ``--actor`` (default ``$MEMLEDGER_ACTOR``,
else the login name, as for the CLI): over stdio there is no token, and whoever can launch the
process can open the data directory anyway. Over HTTP see ``ledger.mcp.http``.
"""

from __future__ import annotations

from pathlib import Path

from mcp.server.mcpserver import MCPServer

from ledger.mcp.backend import SessionFactory, embedded_sessions
from ledger.mcp.resources import register_resources
from ledger.mcp.tools import TOOLS, tool_hints

INSTRUCTIONS = (
    "memledger is your long-term memory. Before answering a question that depends on what you "
    "were told earlier, call search_memories. When the user tells you a durable fact, preference "
    "or decision, call add_memory with one self-contained statement; when a fact changes, "
    "update_memory (or set_memory_state archived) instead of adding a contradiction. When the user "
    "asks you to forget something, delete_memory; erase_memory destroys a memory for good and only "
    "fits an explicit request to erase data. Every call is recorded in an audit trail under your identity."
)


def build_server(sessions: SessionFactory, default_cube: str | None = None) -> MCPServer:
    """An MCP server whose tools and resources run through ``sessions``."""
    where = f" Default cube: {default_cube}." if default_cube else ""
    server: MCPServer = MCPServer("memledger", instructions=INSTRUCTIONS + where, version="0.1.0", log_level="WARNING")
    for spec in TOOLS:
        server.add_tool(spec.make(sessions), name=spec.name, description=spec.description, annotations=tool_hints(spec))
    register_resources(server, sessions)
    return server


def run_stdio(data_dir: str | Path, actor: str, cube: str | None) -> None:
    """Serve the embedded ledger of ``data_dir`` over stdio until the client closes the pipe."""
    from ledger.rules.names import check_name

    if cube is not None:
        check_name(cube, "cube name")
    from ledger.client.partitioned_embedded import open_embedded_client

    with open_embedded_client(data_dir, actor) as client:
        build_server(embedded_sessions(client, cube), cube).run("stdio")
