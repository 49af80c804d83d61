"""The TypeScript client's own tests (``clients/typescript``, node's test runner) against a real
``memledger serve`` on loopback (issue 14). ``.ci/run`` installs node and npm when missing
(``infra/node.sh``); elsewhere the test skips without them, unless MEMLEDGER_REQUIRE_SERVERS=1."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "clients" / "typescript"


def npm() -> str:
    path = shutil.which("npm")
    if path is None or shutil.which("node") is None:
        if os.environ.get("MEMLEDGER_REQUIRE_SERVERS") == "1":
            pytest.fail("node/npm are missing (infra/node.sh installs them)")
        pytest.skip("node/npm are not installed (infra/node.sh installs them)")
    return path


def install(npm_path: str) -> None:
    """``npm ci`` from the lock file, once (node_modules is kept between runs)."""
    if (PACKAGE / "node_modules" / "typescript").is_dir():
        return
    subprocess.run(
        [npm_path, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=PACKAGE, check=True, timeout=600
    )


def test_typescript_client_suite_passes_against_a_live_server(live_server):
    npm_path = npm()
    install(npm_path)
    env = {
        **os.environ,
        "MEMLEDGER_URL": live_server.url,
        "MEMLEDGER_TOKEN": live_server.tokens["alice"],
        "MEMLEDGER_OTHER_TOKEN": live_server.tokens["bob"],
        "MEMLEDGER_ADMIN_TOKEN": live_server.tokens["root"],
    }
    run = subprocess.run([npm_path, "test"], cwd=PACKAGE, env=env, capture_output=True, text=True, timeout=600)
    report = run.stdout[-4000:] + run.stderr[-2000:]
    assert run.returncode == 0, report
    assert "# fail 0" in run.stdout and "# pass 7" in run.stdout, report
