"""The core CLI: init, add, update, get, history, log, head, verify, with and without --json."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_helpers import init_data, run

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def data(tmp_path, capsys):
    d = init_data(tmp_path, capsys)
    return d


def test_commands_before_init_fail_clearly(tmp_path, capsys):
    code, _, err = run(capsys, "--data", str(tmp_path / "nowhere"), "add", "--cube", "c", "--actor", "a", "x")
    assert code == 2 and "not a memledger data directory" in err and "init" in err
    assert not (tmp_path / "nowhere").exists()


def test_round_trip(data, capsys):
    code, out, _ = run(capsys, "--data", data, "add", "--cube", "c1", "--actor", "alice", "--json", "tea is green")
    added = json.loads(out)
    assert code == 0 and added["id"].startswith("mem_") and added["offset"] == 1
    code, out, _ = run(capsys, "--data", data, "update", added["id"], "--actor", "bob", "tea is black")
    assert code == 0 and added["id"] in out
    code, out, _ = run(capsys, "--data", data, "get", added["id"], "--json", "--actor", "carol")
    got = json.loads(out)
    assert got["text"] == "tea is black" and got["version"] == 2 and got["updated_by"] == "bob"
    code, out, _ = run(capsys, "--data", data, "get", added["id"], "--as-of", "1", "--json")
    assert json.loads(out)["text"] == "tea is green"
    code, out, _ = run(capsys, "--data", data, "history", added["id"], "--json")
    hist = json.loads(out)
    assert [(h["text"], h["updated_by"], h["updated_offset"]) for h in hist] == [
        ("tea is green", "alice", 1),
        ("tea is black", "bob", 2),
    ]
    assert all(h["updated_at"].endswith("Z") for h in hist)
    code, out, _ = run(capsys, "--data", data, "log", "--from", "1", "--to", "2")
    lines = [json.loads(x) for x in out.splitlines()]
    assert [x["offset"] for x in lines] == [1, 2] and lines[1]["type"] == "memory.updated"
    code, out, _ = run(capsys, "--data", data, "head", "--json")
    assert json.loads(out)["offset"] == 5  # get, get --as-of and history each recorded a read
    code, out, _ = run(capsys, "--data", data, "verify")
    assert code == 0 and out.startswith("OK")


def test_errors_are_clear_and_write_nothing(data, capsys):
    run(capsys, "--data", data, "add", "--cube", "c", "--actor", "a", "x")
    head = json.loads(run(capsys, "--data", data, "head", "--json")[1])["offset"]
    code, _, err = run(capsys, "--data", data, "get", "mem_nope")
    assert code == 3 and "not found" in err
    code, _, err = run(capsys, "--data", data, "add", "--cube", "c", "--actor", "a", "--metadata", "{bad", "x")
    assert code == 2 and "--metadata is not valid JSON" in err
    code, _, err = run(capsys, "--data", data, "log", "--from", "5", "--to", "2")
    assert code == 2 and "bad offset range" in err
    code, _, err = run(capsys, "--data", data, "get", "mem_nope", "--as-of", "77")
    assert code == 2 and "out of range" in err
    assert json.loads(run(capsys, "--data", data, "head", "--json")[1])["offset"] == head


def test_data_dir_from_environment(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MEMLEDGER_DATA", str(tmp_path / "envdata"))
    assert run(capsys, "init")[0] == 0
    assert (tmp_path / "envdata" / "memledger.toml").exists()


def test_console_script_runs_as_a_process(tmp_path):
    exe = shutil.which("memledger")
    cmd = [exe] if exe else [sys.executable, "-m", "ledger"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    d = str(tmp_path / "d")
    subprocess.run([*cmd, "--data", d, "init"], check=True, env=env, capture_output=True)
    out = subprocess.run(
        [*cmd, "--data", d, "add", "--cube", "c", "--actor", "a", "--json", "hi"],
        check=True,
        env=env,
        capture_output=True,
        text=True,
    ).stdout
    assert json.loads(out)["offset"] == 1
    head = subprocess.run([*cmd, "--data", d, "head", "--json"], check=True, env=env, capture_output=True, text=True)
    assert json.loads(head.stdout)["offset"] == 1
