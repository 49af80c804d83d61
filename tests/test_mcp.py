"""The MCP server (issue 14), driven by the official SDK client: ``memledger mcp`` as a subprocess
over stdio on a data directory that does not exist yet (a clean start: no init, default config),
and ``memledger serve --mcp`` over streamable HTTP with tokens and roles. Every tool is called;
the audit trail must name the principal."""

from __future__ import annotations

import anyio
import httpx
import pytest

from ledger.factory import open_ledger
from tests.live_server import LiveServer
from tests.mcp_support import EXPECTED_TOOLS, call, every_tool, http_client, memledger_stdio, refused


def test_stdio_server_from_a_clean_start_calls_every_tool_as_the_actor(tmp_path):
    data = tmp_path / "fresh-data"  # never initialised: `memledger mcp` needs no extra step
    from mcp import Client

    async def run() -> dict:
        async with Client(memledger_stdio(data, "--cube", "alice", "--actor", "agent-7")) as client:
            return await every_tool(client, cube=None)

    made = anyio.run(run)
    assert made["tea"]["cube"] == "alice"
    assert {e["actor"] for e in made["trail"]} == {"agent-7"}
    ledger = open_ledger(data)
    try:
        events = list(ledger.events())
        # writes, reads, the branch: all the actor's; the facts extracted from its messages are the extractor's
        assert events and {e.actor for e in events} == {"agent-7", "extractor:rules"}
        assert {e.type for e in events if e.actor == "extractor:rules"} == {"extraction.decided", "memory.added"}
        reads = {e.payload["operation"] for e in events if e.type == "memory.read"}
        # the tools that write nothing through the API are recorded too (ledger.mcp.audit)
        assert {"get", "history", "search", "list", "list_cubes", "list_branches", "branch_diff", "audit"} <= reads
        assert "lineage" in reads and {"memory.deleted", "memory.erased"} <= {e.type for e in events}
    finally:
        ledger.log.close()


def test_stdio_server_without_a_default_cube_asks_for_one(tmp_path):
    from mcp import Client

    async def run() -> str:
        async with Client(memledger_stdio(tmp_path / "d", "--actor", "agent-1")) as client:
            message = await refused(client, "add_memory", text="x")
            written = await call(client, "add_memory", text="x", cube="notes")
            assert written["cube"] == "notes"
            return message

    assert "name a cube" in anyio.run(run)


@pytest.fixture
def mcp_server(tmp_path):
    server = LiveServer.start(tmp_path / "data", extra_args=["--mcp"], config='[views]\nvector = "none"\n')
    try:
        for name in ("alice", "bob"):
            server.principal(name)
        yield server
    finally:
        server.stop()


def test_http_mcp_calls_every_tool_as_the_token_principal(mcp_server):
    url = f"{mcp_server.url}/mcp?cube=notes"

    async def run() -> dict:
        async with http_client(url, mcp_server.tokens["alice"]) as client:
            return await every_tool(client, cube=None)

    made = anyio.run(run)
    assert made["tea"]["cube"] == "notes"
    ledger = open_ledger(mcp_server.data)
    try:
        events = [e for e in ledger.events() if e.stream == "notes"]
        assert {e.actor for e in events} == {"alice", "extractor:rules"}
        # an erasure's events are correlated by its erasure id (a re-run finds them), an ingest's by its batch,
        # the facts extracted from it by their decision; the rest by the tool call
        mine = [e for e in events if e.actor == "alice" and e.type not in ("memory.erased", "message.added")]
        assert all((e.correlation_id or "").startswith("mcp.") for e in mine)
        assert [e.actor for e in events if e.type == "memory.erased"] == ["alice"]
        called = [e for e in ledger.events() if (e.correlation_id or "").startswith("mcp.")]
        assert {e.actor for e in called} == {"alice"}
        tools = {e.correlation_id.split(".")[1] for e in called if e.correlation_id}
        # every tool call left an event naming the principal (an ingest's batch has its own correlation id)
        assert EXPECTED_TOOLS - {"erase_memory", "ingest_messages"} <= tools
        said = [e for e in ledger.events() if e.type == "message.added"]
        assert len(said) == 2 and {e.actor for e in said} == {"alice"}
        system = [e for e in called if e.stream == "_system" and e.type == "memory.read"]
        assert {e.payload["operation"] for e in system} >= {"list_cubes", "list_branches", "branch_diff"}
        diffs = [e.payload for e in events if e.type == "memory.read" and e.payload["operation"] == "branch_diff"]
        assert diffs == [{"memory_ids": [made["tea"]["id"]], "operation": "branch_diff", "branch": "what-if"}]
    finally:
        ledger.log.close()


def test_http_mcp_enforces_the_rest_api_roles(mcp_server):
    async def run() -> None:
        async with http_client(f"{mcp_server.url}/mcp", mcp_server.tokens["alice"]) as alice:
            w = await call(alice, "add_memory", text="alice's secret", cube="private")
        async with http_client(f"{mcp_server.url}/mcp", mcp_server.tokens["bob"]) as bob:
            assert "NotFound" in await refused(bob, "get_memory", memory_id=w["id"])  # invisible, as over REST
            assert (await call(bob, "search_memories", query="secret"))["hits"] == []
            assert "NotFound" in await refused(bob, "add_memory", text="x", cube="private")
        async with http_client(f"{mcp_server.url}/mcp", mcp_server.tokens["alice"]) as alice:
            await call(alice, "list_cubes")
        with httpx.Client() as h:
            h.post(
                f"{mcp_server.url}/v1/cubes/private/grants",
                json={"principal": "bob", "role": "reader"},
                headers=mcp_server.h("alice"),
            ).raise_for_status()
        async with http_client(f"{mcp_server.url}/mcp", mcp_server.tokens["bob"]) as bob:
            assert (await call(bob, "get_memory", memory_id=w["id"]))["text"] == "alice's secret"
            assert "AccessDenied" in await refused(bob, "update_memory", memory_id=w["id"], text="bob was here")

    anyio.run(run)
    ledger = open_ledger(mcp_server.data)
    try:
        denied = [e for e in ledger.events() if e.type == "access.denied"]
        assert [e.actor for e in denied].count("bob") >= 3  # the refusals are audited under bob's name
    finally:
        ledger.log.close()


def test_http_mcp_delete_and_erase_follow_the_roles_and_the_legal_holds(mcp_server):
    root = mcp_server.principal("root", admin=True)
    url = f"{mcp_server.url}/mcp?cube=team"

    async def run() -> tuple[dict, str]:
        async with http_client(url, mcp_server.tokens["alice"]) as alice:
            w = await call(alice, "add_memory", text="the launch is on Friday")
        with httpx.Client() as h:
            h.post(
                f"{mcp_server.url}/v1/cubes/team/grants",
                json={"principal": "bob", "role": "writer"},
                headers=mcp_server.h("alice"),
            ).raise_for_status()
            hold = h.post(
                f"{mcp_server.url}/v1/holds", json={"cube": "team", "reason": "audit"}, headers=mcp_server.h("root")
            ).json()
        async with http_client(url, mcp_server.tokens["bob"]) as bob:
            assert "AccessDenied" in await refused(bob, "erase_memory", memory_id=w["id"], reason="bob wants it gone")
            held = await refused(bob, "delete_memory", memory_id=w["id"])  # a writer may delete, but not under a hold
        async with http_client(url, root) as admin:
            assert "LegalHold" in await refused(admin, "erase_memory", memory_id=w["id"], reason="asked")
        with httpx.Client() as h:
            h.post(f"{mcp_server.url}/v1/holds/{hold['hold_id']}/release", json={}, headers=mcp_server.h("root"))
        async with http_client(url, mcp_server.tokens["bob"]) as bob:
            deleted = await call(bob, "delete_memory", memory_id=w["id"], reason="done")
        return deleted, held

    deleted, held = anyio.run(run)
    assert "LegalHold: delete refused: under legal hold" in held
    ledger = open_ledger(mcp_server.data)
    try:
        refusals = [(e.payload["operation"], e.actor) for e in ledger.events() if e.type == "hold.refused"]
        assert refusals == [("delete", "bob"), ("erase", "root")]
        tomb = [e for e in ledger.events() if e.type == "memory.deleted"]
        assert [(e.offset, e.actor) for e in tomb] == [(deleted["offset"], "bob")]
    finally:
        ledger.log.close()


def test_http_mcp_refuses_requests_without_a_valid_token(mcp_server):
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    head = open_ledger(mcp_server.data)
    try:
        before = head.head()
        for headers in ({}, {"Authorization": "Bearer mlk_wrong"}):
            r = httpx.post(f"{mcp_server.url}/mcp", json=body, headers=headers)
            assert r.status_code == 401 and r.json()["error"]["type"] == "Unauthenticated"
            assert r.headers["www-authenticate"].startswith("Bearer")
        assert head.head() == before + 2  # each refusal is an audited access.denied, as on the REST API
    finally:
        head.log.close()


def test_in_process_servers_serve_the_same_tools(tmp_path):
    """The same tool table in this process: the SDK's in-memory connection to the embedded server,
    and ``create_app(mcp=True)`` under uvicorn in a thread (what ``serve --mcp`` runs)."""
    import threading
    import time

    import uvicorn
    from mcp import Client

    from ledger.client.embedded import EmbeddedClient
    from ledger.config import init_data_dir
    from ledger.mcp.backend import embedded_sessions
    from ledger.mcp.server import build_server
    from ledger.principals import PrincipalStore
    from ledger.service import create_app
    from tests.live_server import free_port
    from tests.mcp_support import every_tool

    for name in ("embedded", "served"):
        data, _ = init_data_dir(tmp_path / name)
        (data / "memledger.toml").write_text('[views]\nvector = "none"\n')
    with EmbeddedClient(tmp_path / "embedded", actor="agent-9") as embedded:

        async def direct() -> dict:
            async with Client(build_server(embedded_sessions(embedded, "mine"), "mine")) as client:
                return await every_tool(client, cube=None)

        assert anyio.run(direct)["tea"]["cube"] == "mine"
    token = PrincipalStore(tmp_path / "served").create("carol")[1]
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(tmp_path / "served", mcp=True, follow_views=True),
            host="127.0.0.1",
            port=port,
            log_level="warning",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)

        async def over_http() -> dict:
            async with http_client(f"http://127.0.0.1:{port}/mcp?cube=shared", token) as client:
                return await every_tool(client, cube=None)

        made = anyio.run(over_http)
        assert {e["actor"] for e in made["trail"]} == {"carol"}
    finally:
        server.should_exit = True
        thread.join(timeout=30)
