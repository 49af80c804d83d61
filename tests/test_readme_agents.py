"""Every snippet of the README's "Use it from your agent" section runs as written (issue 14): the
MCP configurations are parsed and used to launch/connect the server, the Python snippets run in a
fresh interpreter against a live server (and the client one again with the embedded line swapped
in), and the TypeScript snippet runs under node."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from ledger.config import init_data_dir
from ledger.factory import open_ledger
from tests.live_server import LiveServer
from tests.mcp_support import call, http_client, stdio_params
from tests.test_typescript_client import PACKAGE, install, npm

ROOT = Path(__file__).resolve().parents[1]
NO_VECTORS = '[views]\nvector = "none"\n'


def snippets() -> dict[str, str]:
    """The section's code blocks by what they are; every block must be one of them."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Use it from your agent", 1)[1].split("\n## ", 1)[0]
    found: dict[str, str] = {}
    for lang, body in re.findall(r"```(\w+)\n(.*?)```", section, re.S):
        if lang == "json":
            kind = "mcp-http" if '"url"' in body else "mcp-stdio"
        elif lang == "python":
            kind = "langgraph" if "MemledgerStore" in body else "erasure" if "client.erase(" in body else "client"
        elif lang == "typescript":
            kind = "typescript"
        else:
            raise AssertionError(f"a {lang} block in the agents section that no test runs")
        assert kind not in found, f"two {kind} snippets"
        found[kind] = body
    assert set(found) == {"mcp-stdio", "mcp-http", "client", "erasure", "langgraph", "typescript"}
    return found


@pytest.fixture
def server(tmp_path):
    srv = LiveServer.start(tmp_path / "served", extra_args=["--mcp"], config=NO_VECTORS)
    try:
        srv.principal("alice")
        yield srv
    finally:
        srv.stop()


def _run_python(code: str, cwd: Path, server: LiveServer) -> str:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "MEMLEDGER_URL": server.url,
        "MEMLEDGER_TOKEN": server.tokens["alice"],
    }
    run = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout


def test_mcp_stdio_configuration_launches_the_server(tmp_path):
    entry = json.loads(snippets()["mcp-stdio"])["mcpServers"]["memledger"]
    command = shutil.which(entry["command"]) or str(Path(sys.executable).parent / entry["command"])
    assert Path(command).exists(), "the memledger console script is installed with the package"
    init_data_dir(tmp_path / "memledger-data")
    (tmp_path / "memledger-data" / "memledger.toml").write_text(NO_VECTORS)
    params = stdio_params(command, entry["args"])
    params.cwd = str(tmp_path)

    async def run() -> list[str]:
        from mcp import Client

        async with Client(params) as client:
            await call(client, "add_memory", text="Alice prefers green tea")
            return [h["text"] for h in (await call(client, "search_memories", query="tea"))["hits"]]

    assert anyio.run(run) == ["Alice prefers green tea"]
    ledger = open_ledger(tmp_path / "memledger-data")
    try:
        assert {e.actor for e in ledger.events()} == {"alice"} and ledger.cube_exists("alice")
    finally:
        ledger.log.close()


def test_mcp_http_configuration_connects_with_the_token(server):
    entry = json.loads(snippets()["mcp-http"])["mcpServers"]["memledger"]
    assert entry["type"] == "http"
    url = entry["url"].replace("http://127.0.0.1:8080", server.url)
    token = entry["headers"]["Authorization"].replace("${MEMLEDGER_TOKEN}", server.tokens["alice"])

    async def run() -> dict:
        async with http_client(url, token.removeprefix("Bearer ")) as client:
            return await call(client, "add_memory", text="Alice lives in Lisbon")

    assert anyio.run(run)["cube"] == "alice"


def test_python_client_snippet_runs_remote_and_embedded(server, tmp_path):
    code = snippets()["client"]
    out = _run_python(code, tmp_path, server)
    assert "Alice prefers green tea" in out and "('memory.added', 'alice')" in out
    remote, embedded = (line for line in code.splitlines() if line.lstrip("# ").startswith("client = "))
    swapped = code.replace(remote, "# " + remote).replace(embedded, embedded.removeprefix("# "))
    assert swapped != code
    data, _ = init_data_dir(tmp_path / "memledger-data")
    (data / "memledger.toml").write_text(NO_VECTORS)
    out = _run_python(swapped, tmp_path, server)
    assert "Alice prefers green tea" in out and "('memory.added', 'alice')" in out
    ledger = open_ledger(data)  # the embedded run wrote here, not to the server
    try:
        added = [e for e in ledger.events() if e.type == "memory.added"]
        assert [(e.stream, e.actor) for e in added] == [("alice", "alice")]
    finally:
        ledger.log.close()


def test_delete_and_erase_snippet_runs(server, tmp_path):
    out = _run_python(snippets()["erasure"], tmp_path, server).splitlines()
    assert out[0] == "Alice lives in Lisbon"
    assert out[1] == "True True None"  # erased: complete, and unreadable even as of before the erasure
    assert "was erased at offset" in out[2]
    ledger = open_ledger(server.data)
    try:
        kinds = [(e.type, e.actor) for e in ledger.events() if e.type in ("memory.deleted", "memory.erased")]
        assert kinds == [("memory.deleted", "alice"), ("memory.erased", "alice")]
    finally:
        ledger.log.close()


def test_langgraph_snippet_runs(server, tmp_path):
    out = _run_python(snippets()["langgraph"], tmp_path, server)
    assert "I drink green tea" in out


def test_typescript_snippet_runs_under_node(server, tmp_path):
    npm_path = npm()
    install(npm_path)
    subprocess.run([npm_path, "run", "build", "--silent"], cwd=PACKAGE, check=True, timeout=300)
    (tmp_path / "node_modules").mkdir()
    (tmp_path / "node_modules" / "memledger-client").symlink_to(PACKAGE)
    (tmp_path / "snippet.mjs").write_text(snippets()["typescript"])
    env = {**os.environ, "MEMLEDGER_URL": server.url, "MEMLEDGER_TOKEN": server.tokens["alice"]}
    run = subprocess.run(["node", "snippet.mjs"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Alice prefers green tea" in run.stdout
