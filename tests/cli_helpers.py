"""Running the CLI from tests: in this process, or as a child process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ledger.cli.app import main


def run(capsys, *args: str) -> tuple[int, str, str]:
    """Run ``memledger ARGS`` in this process; return (exit code, stdout, stderr)."""
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def init_data(tmp_path: Path, capsys) -> str:
    """A freshly initialised data directory under ``tmp_path``."""
    d = str(tmp_path / "data")
    assert run(capsys, "--data", d, "init")[0] == 0
    return d


ROOT = Path(__file__).resolve().parent.parent


def cli_env() -> dict[str, str]:
    """The environment of a CLI child process: the repository on its path, and the data directory's
    own ``[log] dsn`` in force (``$MEMLEDGER_PG_DSN`` would override it)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("MEMLEDGER_PG_DSN", None)
    return env


def cli_process(data: Path, *args: str) -> subprocess.Popen:
    """``python -m ledger --data DATA ARGS`` as a child process (pipes for its output, text mode,
    ``cli_env``)."""
    return subprocess.Popen(
        [sys.executable, "-m", "ledger", "--data", str(data), *args],
        cwd=ROOT,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
