"""CLI: principal create/list/revoke, grant/revoke (audited, owner-only), serve's argument parsing."""

from __future__ import annotations

import json

import pytest

from ledger.cli.app import build_parser
from ledger.principals import PrincipalStore
from tests.cli_helpers import init_data, run


@pytest.fixture
def data(tmp_path, capsys):
    d = init_data(tmp_path, capsys)
    return d


def test_principal_create_prints_the_token_once_and_stores_a_digest(data, capsys):
    code, out, _ = run(capsys, "--data", data, "principal", "create", "alice", "--admin", "--json")
    assert code == 0
    created = json.loads(out)
    assert created["admin"] is True and created["token"].startswith("mlk_")
    assert PrincipalStore(data).authenticate(created["token"]).name == "alice"
    code, out, _ = run(capsys, "--data", data, "principal", "list", "--json")
    assert created["token"] not in out and json.loads(out)[0]["name"] == "alice"
    code, _, err = run(capsys, "--data", data, "principal", "create", "alice")
    assert code == 2 and "already exists" in err
    assert run(capsys, "--data", data, "principal", "revoke", "alice")[0] == 0
    assert PrincipalStore(data).authenticate(created["token"]) is None
    assert run(capsys, "--data", data, "principal", "revoke", "nobody")[0] == 3


def test_grant_and_revoke_need_an_owner_and_are_events(data, capsys):
    for name in ("alice", "bob"):
        run(capsys, "--data", data, "principal", "create", name)
    run(capsys, "--data", data, "add", "--cube", "c", "--actor", "alice", "hello")
    code, out, _ = run(
        capsys,
        "--data",
        data,
        "grant",
        "--cube",
        "c",
        "--principal",
        "bob",
        "--role",
        "reader",
        "--actor",
        "alice",
        "--json",
    )
    assert code == 0 and json.loads(out)["changed"] is True
    code, _, err = run(
        capsys, "--data", data, "grant", "--cube", "c", "--principal", "bob", "--role", "owner", "--actor", "bob"
    )
    assert code == 2 and "does not allow" in err
    code, _, err = run(
        capsys, "--data", data, "grant", "--cube", "c", "--principal", "ghost", "--role", "reader", "--actor", "alice"
    )
    assert code == 3 and "ghost" in err
    assert (
        run(
            capsys,
            "--data",
            data,
            "revoke",
            "--cube",
            "c",
            "--principal",
            "bob",
            "--role",
            "reader",
            "--actor",
            "alice",
        )[0]
        == 0
    )
    run(capsys, "--data", data, "log")
    code, out, _ = run(capsys, "--data", data, "log")
    types = [json.loads(line)["type"] for line in out.splitlines()]
    assert types.count("access.granted") == 1 and types.count("access.revoked") == 1
    assert types.count("access.denied") == 1


def test_serve_defaults_to_loopback_and_no_anonymous():
    args = build_parser().parse_args(["serve"])
    assert args.host == "127.0.0.1" and args.port == 8080 and args.allow_anonymous is False


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("anonymous", [False, True])
def test_serve_starts_on_loopback_and_warns_about_anonymous_access(data, anonymous):
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    import httpx

    port = _free_port()
    cmd = [sys.executable, "-m", "ledger", "--data", data, "serve", "--port", str(port), "--log-level", "warning"]
    if anonymous:
        cmd.append("--allow-anonymous")
    root = str(Path(__file__).resolve().parents[1])
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, cwd=root, env={**os.environ, "PYTHONPATH": root})
    try:
        for _ in range(200):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        r = httpx.get(f"http://127.0.0.1:{port}/v1/head", timeout=5)
        assert r.status_code == (200 if anonymous else 401)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert ("anonymous access is ON" in err) is anonymous
