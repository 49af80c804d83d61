"""MCP resources (templates): a cube's memories, and one memory, as JSON documents.

``memledger://cubes/{cube}/memories`` is the first page (up to 1,000, ordered by id) of a cube's
memories; ``memledger://memories/{memory_id}`` is one memory's current version. Reading either is
audited like the equivalent tool call (``memory.read``). Both are templates because each read
needs the request's context (over HTTP: the caller's token).
"""

from __future__ import annotations

import json

from mcp.server.mcpserver import Context, MCPServer

from ledger.mcp.backend import SessionFactory

MEMORIES_URI = "memledger://cubes/{cube}/memories"
MEMORY_URI = "memledger://memories/{memory_id}"


def register_resources(server: MCPServer, sessions: SessionFactory) -> None:
    """Add the resource templates to ``server``."""

    @server.resource(
        MEMORIES_URI,
        name="cube-memories",
        mime_type="application/json",
        description="a cube's memories (first 1,000, ordered by id)",
    )
    async def memories(cube: str, ctx: Context) -> str:
        async with sessions(ctx) as s:
            page = await s.api.list_memories(cube, limit=1000)
            body = {"cube": cube, "memories": [m.raw for m in page.memories], "next_after": page.next_after}
            return json.dumps(body, ensure_ascii=False)

    @server.resource(MEMORY_URI, name="memory", mime_type="application/json", description="one memory")
    async def memory(memory_id: str, ctx: Context) -> str:
        async with sessions(ctx) as s:
            return json.dumps((await s.api.get(memory_id)).raw, ensure_ascii=False)
