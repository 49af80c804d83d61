"""A real ``memledger serve`` on loopback for tests that must cross a real HTTP connection.

``LiveServer.start(data)`` runs ``python -m ledger --data DATA serve`` as a subprocess on a free
127.0.0.1 port (this checkout first on ``PYTHONPATH``), waits for ``/healthz`` and stops it on
``stop()``. Principals are created with ``PrincipalStore`` beside the running server (it re-reads
the principals file on change), so tests may add or revoke them at any time.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from ledger.config import init_data_dir
from ledger.principals import PrincipalStore

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LiveServer:
    """A running ``memledger serve`` process and the tokens of its principals."""

    data: Path
    port: int
    proc: subprocess.Popen
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(
        cls,
        data: Path,
        extra_args: Sequence[str] = (),
        config: str | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 60.0,
    ) -> LiveServer:
        """Initialise ``data`` (if needed), start the server and wait until it answers."""
        init_data_dir(data)
        if config is not None:
            (data / "memledger.toml").write_text(config)
        port = free_port()
        cmd = [
            sys.executable,
            "-m",
            "ledger",
            "--data",
            str(data),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            *extra_args,
        ]
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", **(env or {})},
        )
        server = cls(data, port, proc)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"memledger serve exited with {proc.returncode}: {proc.stderr.read()[-3000:]}")
            try:
                if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                    return server
            except httpx.HTTPError:
                time.sleep(0.05)
        server.stop()
        raise RuntimeError(f"memledger serve did not answer on port {port} within {timeout} s")

    def principal(self, name: str, admin: bool = False) -> str:
        """Create a principal; remember and return its token."""
        self.tokens[name] = PrincipalStore(self.data).create(name, admin=admin)[1]
        return self.tokens[name]

    def h(self, who: str) -> dict[str, str]:
        """The Authorization header of ``who``."""
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def client(self, timeout: float = 30.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout)

    def stop(self) -> str:
        """Terminate the server; return what it wrote to stderr."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                _, err = self.proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                _, err = self.proc.communicate()
            return err or ""
        return self.proc.stderr.read() if self.proc.stderr else ""


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    """A server on a fresh data directory with principals alice, bob, mallory and admin root."""
    server = LiveServer.start(tmp_path / "data", config='[views]\nvector = "none"\n')
    try:
        for name in ("alice", "bob", "mallory"):
            server.principal(name)
        server.principal("root", admin=True)
        yield server
    finally:
        server.stop()
