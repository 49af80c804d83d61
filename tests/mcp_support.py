"""Driving memledger's MCP server with the SDK's own client, over stdio and over streamable HTTP."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

ROOT = Path(__file__).resolve().parents[1]
EXPECTED_TOOLS = {
    "add_memory",
    "search_memories",
    "get_memory",
    "memory_history",
    "update_memory",
    "list_memories",
    "memory_audit",
    "set_memory_state",
    "list_cubes",
    "create_branch",
    "diff_branch",
    "list_branches",
    "delete_memory",
    "erase_memory",
    "memory_lineage",
    "ingest_messages",
}


def stdio_params(command: str, args: Sequence[str], env: dict[str, str] | None = None) -> StdioServerParameters:
    """Launch ``command args`` with this checkout importable (what an MCP host's config does)."""
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    return StdioServerParameters(command=command, args=list(args), env={**base, "PYTHONPATH": str(ROOT), **(env or {})})


def memledger_stdio(data: Path, *args: str) -> StdioServerParameters:
    return stdio_params(sys.executable, ["-m", "ledger", "--data", str(data), "mcp", *args])


@asynccontextmanager
async def http_client(url: str, token: str | None) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx2.AsyncClient(headers=headers, timeout=60) as http:
        async with Client(streamable_http_client(url, http_client=http)) as client:
            yield client


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    """The structured result of a tool call that must succeed."""
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, f"{tool} failed: {result.content}"
    assert result.structured_content is not None, tool
    text = result.content[0].text  # type: ignore[union-attr]
    assert json.loads(text) == result.structured_content  # the text content is the same JSON
    return result.structured_content


async def refused(client: Client, tool: str, **arguments: Any) -> str:
    """The one-line error of a tool call that must fail."""
    result = await client.call_tool(tool, arguments)
    assert result.is_error, f"{tool} should have failed: {result.structured_content}"
    text = result.content[0].text  # type: ignore[union-attr]
    assert "\n" not in text and "Traceback" not in text
    return text


async def every_tool(client: Client, cube: str | None) -> dict[str, Any]:
    """Call each tool once (``cube`` None: rely on the session's default cube); return what was made."""
    tools = await client.list_tools()
    assert {t.name for t in tools.tools} == EXPECTED_TOOLS
    assert all(t.description and len(t.description) > 30 for t in tools.tools)
    named = {"cube": cube} if cube else {}
    tea = await call(client, "add_memory", text="Alice prefers green tea", metadata={"user_id": "alice"}, **named)
    home = await call(client, "add_memory", text="Alice lives in Lisbon", tags=["place"], **named)
    hits = (await call(client, "search_memories", query="what does Alice drink? tea"))["hits"]
    assert hits[0]["id"] == tea["id"] and hits[0]["text"] == "Alice prefers green tea"
    only = await call(client, "search_memories", query="Alice", metadata={"user_id": "alice"}, k=3)
    assert [h["id"] for h in only["hits"]] == [tea["id"]]
    scoped = await call(
        client, "search_memories", query="Alice", where={"user_id": {"$in": ["alice"]}}, k=1, min_score=0
    )
    assert [h["id"] for h in scoped["hits"]] == [tea["id"]]
    past = await call(client, "search_memories", query="Lisbon", as_of=str(home["offset"] - 1))
    assert past["hits"] == []
    got = await call(client, "get_memory", memory_id=home["id"])
    assert got["text"] == "Alice lives in Lisbon" and got["tags"] == ["place"]
    await call(client, "update_memory", memory_id=home["id"], text="Alice moved to Porto", reason="moved")
    assert (await call(client, "get_memory", memory_id=home["id"], as_of=str(home["offset"])))["text"] == (
        "Alice lives in Lisbon"
    )
    versions = (await call(client, "memory_history", memory_id=home["id"]))["versions"]
    assert [v["text"] for v in versions] == ["Alice lives in Lisbon", "Alice moved to Porto"]
    listed = await call(client, "list_memories", **named)
    assert sorted(m["id"] for m in listed["memories"]) == sorted([tea["id"], home["id"]])
    filtered = await call(client, "list_memories", where={"user_id": "alice"}, limit=1, **named)
    assert [m["id"] for m in filtered["memories"]] == [tea["id"]] and filtered["next_cursor"] is None
    moved = await call(client, "set_memory_state", memory_id=tea["id"], state="activated", reason="in use")
    assert moved["state"] == "activated"
    cubes = await call(client, "list_cubes")
    assert tea["cube"] in [c["cube"] for c in cubes["cubes"]]
    branch = await call(client, "create_branch", name="what-if")
    assert branch["name"] == "what-if"
    assert "what-if" in [b["name"] for b in (await call(client, "list_branches"))["branches"]]
    assert (await call(client, "diff_branch", name="what-if"))["changes"] == []
    await call(client, "update_memory", memory_id=tea["id"], text="Alice prefers oolong", branch="what-if")
    changes = (await call(client, "diff_branch", name="what-if"))["changes"]
    assert [(c["id"], c["change"]) for c in changes] == [(tea["id"], "changed")]
    assert (await call(client, "get_memory", memory_id=tea["id"]))["text"] == "Alice prefers green tea"  # main
    trail = (await call(client, "memory_audit", memory_id=home["id"]))["entries"]
    types = [e["type"] for e in trail]
    assert types[0] == "memory.added" and "memory.updated" in types and "memory.read" in types
    lineage = await call(client, "memory_lineage", memory_id=home["id"])
    assert lineage["memory_id"] == home["id"] and lineage["sources"] == [] and lineage["descendants"] == []
    jazz = await call(client, "add_memory", text="Alice likes jazz", **named)
    gone = await call(client, "delete_memory", memory_id=jazz["id"], reason="the user asked me to forget it")
    assert gone["deleted"] is True and gone["id"] == jazz["id"]
    assert "deleted" in await refused(client, "get_memory", memory_id=jazz["id"])
    assert (await call(client, "get_memory", memory_id=jazz["id"], as_of=str(jazz["offset"])))["text"] == (
        "Alice likes jazz"
    )
    phone = await call(client, "add_memory", text="Alice's phone is 555-0100", **named)
    assert "blank" in await refused(client, "erase_memory", memory_id=phone["id"], reason="   ")
    erased = await call(client, "erase_memory", memory_id=phone["id"], reason="the user asked to erase it")
    assert erased["erased"] == [phone["id"]] and erased["complete"] is True
    assert "erased" in await refused(client, "get_memory", memory_id=phone["id"])
    past = await call(client, "get_memory", memory_id=phone["id"], as_of=str(phone["offset"]))
    assert past["text"] is None  # not even the past can read it
    tools = {t.name: t for t in tools.tools}
    assert "IRREVERSIBLE" in (tools["erase_memory"].description or "")
    assert tools["erase_memory"].annotations.destructive_hint is True  # type: ignore[union-attr]
    assert tools["delete_memory"].annotations.destructive_hint is True  # type: ignore[union-attr]
    bad = await refused(client, "add_memory", text="   ", **named)
    assert "blank" in bad
    assert "NotFound" in await refused(client, "get_memory", memory_id="mem_missing")
    resource = await client.read_resource(f"memledger://cubes/{tea['cube']}/memories")
    assert {m["id"] for m in json.loads(resource.contents[0].text)["memories"]} == {tea["id"], home["id"]}  # type: ignore[union-attr]
    one = await client.read_resource(f"memledger://memories/{tea['id']}")
    assert json.loads(one.contents[0].text)["text"] == "Alice prefers green tea"  # type: ignore[union-attr]
    said = await call(
        client,
        "ingest_messages",
        messages=[
            {"role": "user", "content": "I live in Oslo.", "name": "Bea", "timestamp": "2026-11-02T09:00:00Z"},
            {"role": "assistant", "content": "Noted, Bea."},
        ],
        user_id="bea",
        **named,
    )
    assert said["count"] == 2 and all(m.startswith("msg_") for m in said["message_ids"])
    assert said["status"]["extractor"] == "rules"
    facts: list[Any] = []
    for _ in range(1200):  # extraction runs in the background (a consumer of the log); not a timing assertion
        facts = (await call(client, "search_memories", query="where does Bea live", where={"user_id": "bea"}))["hits"]
        if facts:
            break
        await anyio.sleep(0.1)
    assert [(h["text"], h["metadata"]["observed_at"]) for h in facts] == [
        ("Bea lives in Oslo.", "2026-11-02T09:00:00Z")
    ]
    lineage = await call(client, "memory_lineage", memory_id=facts[0]["id"])
    assert said["message_ids"][0] in json.dumps(lineage)  # the fact names the message it came from
    return {"tea": tea, "home": home, "trail": trail, "said": said}
