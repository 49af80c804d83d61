"""Running the CLI in-process from tests."""

from __future__ import annotations

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
