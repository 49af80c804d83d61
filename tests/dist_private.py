"""Private server instances for fault tests: their own port and data directory, started, restarted and
stopped by the test through the ``infra/`` scripts, so the shared servers others use are never touched.

A private server that cannot start skips the test, or fails it under ``MEMLEDGER_REQUIRE_SERVERS=1``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.dist_env import endpoint, skip_or_fail

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PrivateServer:
    """One private server: its endpoint and ``ctl("start"|"stop"|"restart")``."""

    endpoint: str
    ctl: Callable[[str], None]


def _infra_env(run_dir: Path, **extra: str) -> dict[str, str]:
    venvs = os.environ.get("MEMLEDGER_INFRA_VENVS") or str(ROOT / "infra" / "run" / "venvs")
    return {**os.environ, "MEMLEDGER_INFRA_RUN": str(run_dir), "MEMLEDGER_INFRA_VENVS": venvs, **extra}


def _controller(script: str, env: dict[str, str]) -> Callable[[str], None]:
    def ctl(action: str) -> None:
        r = subprocess.run(
            ["bash", str(ROOT / "infra" / script), action], env=env, capture_output=True, text=True, timeout=600
        )
        if r.returncode != 0:
            if action == "start":
                skip_or_fail(f"private server ({script}) did not start: {r.stderr[-500:]}")
            raise AssertionError(f"{script} {action} failed: {r.stderr[-1000:]}")

    return ctl


def _need_bash() -> None:
    if shutil.which("bash") is None:
        skip_or_fail("bash is needed to run the infra/ scripts")


def _server_dir(prefix: str) -> Path:
    """A run directory outside pytest's own temporary tree: pytest resets that tree to mode 0700
    whenever any session starts, and PostgreSQL runs as its own user, which must reach the cluster."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o711)
    return path


@pytest.fixture
def private_postgres() -> Iterator[PrivateServer]:
    """A PostgreSQL server of the test's own (infra/postgres.sh on a free port, its own cluster)."""
    endpoint("postgres")  # the shared server being up means infra/ works here
    _need_bash()
    port = free_port()
    run_dir = _server_dir("memledger-pg-")
    ctl = _controller("postgres.sh", _infra_env(run_dir, MEMLEDGER_PG_PORT=str(port)))
    try:
        ctl("start")
        yield PrivateServer(f"postgresql://postgres@127.0.0.1:{port}/memledger", ctl)
    finally:
        ctl("stop")
        shutil.rmtree(run_dir, ignore_errors=True)
