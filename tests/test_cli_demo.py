"""The README's main job (``memledger demo``) runs end to end and verifies."""

from __future__ import annotations

import json

from ledger.cli.app import main


def test_demo_runs_the_tour_and_verifies(tmp_path, capsys):
    data = str(tmp_path / "data")
    assert main(["--data", data, "demo", "--no-vector", "--json", "--cube", "tour"]) == 0
    out = json.loads(capsys.readouterr().out)
    titles = [s["step"] for s in out["steps"]]
    assert out["ok"] and out["cube"] == "tour"
    assert any(t.startswith("hybrid search now") for t in titles)
    assert any(t.startswith("counterfactual branch") for t in titles)
    forgotten = next(s for s in out["steps"] if s["step"].startswith("right to be forgotten"))
    assert "forgotten=True" in forgotten["detail"] and "residue in data directory: none" in forgotten["detail"]
    time_machine = next(s for s in out["steps"] if s["step"].startswith("time machine"))
    assert time_machine["detail"] == "Caroline's favourite drink is green tea."
    # the tour leaves no branch behind and main still verifies from the CLI
    assert main(["--data", data, "verify"]) == 0
