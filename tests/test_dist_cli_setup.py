"""Setting up a distributed data directory as the docs say (issue 16 defect 11)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli_helpers import run
from tests.dist_env import endpoint, unique_name

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parent.parent


def _template(tmp_path: Path) -> Path:
    """infra/memledger.distributed.toml, pointed at the test servers (as app-env.sh would do)."""
    text = (ROOT / "infra" / "memledger.distributed.toml").read_text()
    text = text.replace("postgresql://memledger@db.internal:5432/memledger", endpoint("postgres"))
    text = text.replace('schema = "memledger"', f'schema = "{unique_name("setup")}"')
    text += '\n[consumers.views.counter]\nfactory = "tests.dist_counting:build"\n'
    path = tmp_path / "distributed.toml"
    path.write_text(text)
    return path


def test_init_from_the_distributed_template_creates_no_sqlite_log(tmp_path, capsys):
    template = _template(tmp_path)
    data = str(tmp_path / "memledger-data")
    code, out, err = run(capsys, "--data", data, "init", "--config", str(template))
    assert code == 0, err
    assert (Path(data) / "memledger.toml").read_text() == template.read_text()
    assert not (Path(data) / "log.sqlite").exists()
    assert run(capsys, "--data", data, "init", "--config", str(template))[0] == 0  # idempotent
    other = tmp_path / "other.toml"
    other.write_text('[log]\nbackend = "sqlite"\n')
    code, _, err = run(capsys, "--data", data, "init", "--config", str(other))
    assert code == 2 and "already exists" in err
    bad = tmp_path / "bad.toml"
    bad.write_text("[log\n")
    code, _, err = run(capsys, "--data", str(tmp_path / "d2"), "init", "--config", str(bad))
    assert code == 2 and "not valid TOML" in err and not (tmp_path / "d2").exists()
    code, _, err = run(capsys, "--data", str(tmp_path / "d3"), "init", "--config", str(tmp_path / "nope.toml"))
    assert code == 2 and "cannot read --config" in err


def test_consume_once_prints_its_last_report_once_and_lag_names_its_view(tmp_path, capsys):
    data = str(tmp_path / "memledger-data")
    assert run(capsys, "--data", data, "init", "--config", str(_template(tmp_path)))[0] == 0
    assert run(capsys, "--data", data, "add", "--cube", "notes", "--actor", "alice", "hello")[0] == 0
    code, out, err = run(capsys, "--data", data, "consume", "--view", "counter", "--once", "--report-every", "0")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == len(set(lines)), out  # no line twice
    assert json.loads(lines[-1])["lag_events"] == 0
    code, out, err = run(capsys, "--data", data, "lag", "--view", "counter", "--json")
    assert code == 0 and json.loads(out)["lag_events"] == 0
    code, _, err = run(capsys, "--data", data, "lag")
    assert code == 2 and "--view" in err


def test_the_default_config_offers_only_adapters_that_exist():
    from ledger.config import DEFAULT_CONFIG
    from projections.view_set import VIEW_ADAPTERS

    for line in DEFAULT_CONFIG.splitlines():
        if (
            line.startswith("# ")
            and "=" in line
            and "|" in line
            and line.split("=")[0][2:].strip()
            in (
                "vector",
                "keyword",
                "graph",
            )
        ):
            kind = line.split("=")[0][2:].strip()
            offered = [a.strip() for a in line.split("#")[2].split("|")]
            for adapter in offered:
                assert (kind, adapter) in VIEW_ADAPTERS, f"{kind} = {adapter!r} is offered but refused"
