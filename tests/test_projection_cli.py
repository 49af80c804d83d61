"""The search, rebuild and views commands, and the LoCoMo benchmark (vector view on the hashing embedder)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import locomo
from tests.cli_helpers import init_data, run

CONFIG_VECTOR = '\n[views.vector]\nembedder = "hashing"\nann = "none"\n'


@pytest.fixture()
def data(tmp_path: Path, capsys) -> str:
    d = init_data(tmp_path, capsys)
    cfg = Path(d) / "memledger.toml"
    cfg.write_text(cfg.read_text() + CONFIG_VECTOR)
    return d


def test_search_cli_json_as_of_and_audit(data: str, capsys) -> None:
    code, out, _ = run(capsys, "--data", data, "add", "--cube", "c", "--json", "kayak trip on the fjord")
    first = json.loads(out)
    run(capsys, "--data", data, "add", "--cube", "c", "--metadata", '{"kind": "plan"}', "kayak rental booked")
    run(capsys, "--data", data, "update", first["id"], "kayak trip cancelled, rain")
    code, out, _ = run(capsys, "--data", data, "search", "--cube", "c", "--json", "--actor", "eve", "kayak rain")
    assert code == 0
    hits = json.loads(out)
    assert hits[0]["id"] == first["id"] and hits[0]["text"] == "kayak trip cancelled, rain"
    assert hits[0]["provenance"]["offsets"][0] == first["offset"]
    code, out, _ = run(
        capsys, "--data", data, "search", "--cube", "c", "--json", "--as-of", str(first["offset"]), "kayak"
    )
    assert [h["text"] for h in json.loads(out)] == ["kayak trip on the fjord"]
    code, out, _ = run(capsys, "--data", data, "search", "--json", "--metadata", '{"kind": "plan"}', "kayak")
    assert [h["text"] for h in json.loads(out)] == ["kayak rental booked"]
    code, out, _ = run(capsys, "--data", data, "search", "--cube", "c", "kayak")
    assert "kayak" in out and "offsets=" in out
    code, out, _ = run(capsys, "--data", data, "log")
    reads = [json.loads(line) for line in out.splitlines() if '"memory.read"' in line]
    assert reads and reads[0]["actor"] == "eve" and reads[0]["payload"]["operation"] == "search"
    code, _, err = run(capsys, "--data", data, "search", "--as-of", "99999", "kayak")
    assert code == 2 and "out of range" in err
    code, _, err = run(capsys, "--data", data, "search", "--metadata", "[1]", "kayak")
    assert code == 2 and "JSON object" in err


def test_rebuild_and_views_cli(data: str, capsys) -> None:
    for i in range(5):
        run(capsys, "--data", data, "add", "--cube", "c", f"note {i} about bread")
    code, out, _ = run(capsys, "--data", data, "rebuild", "--json", "--to", "3")
    assert code == 0 and json.loads(out)["checkpoints"] == {"keyword": 3, "graph": 3, "vector": 3}
    code, out, _ = run(capsys, "--data", data, "views", "--json")
    status = json.loads(out)
    assert status["views"]["keyword"] == 3 and status["head"] == 5
    code, out, err = run(capsys, "--data", data, "rebuild", "--no-progress")
    assert code == 0 and "rebuilt to offset 5" in out
    code, out, _ = run(capsys, "--data", data, "rebuild", "--json", "--view", "graph", "--to", "2")
    assert json.loads(out)["checkpoints"] == {"graph": 2}
    code, _, err = run(capsys, "--data", data, "rebuild", "--to", "77")
    assert code == 2 and "out of range" in err


def _tiny_locomo(path: Path) -> None:
    conversation = {
        "speaker_a": "Ann",
        "speaker_b": "Ben",
        "session_1_date_time": "1:00 pm on 3 May, 2023",
        "session_1": [
            {"speaker": "Ann", "dia_id": "D1:1", "text": "I adopted a greyhound named Comet last week!"},
            {"speaker": "Ben", "dia_id": "D1:2", "text": "Congrats! I started pottery classes."},
            {"speaker": "Ann", "dia_id": "D1:3", "text": "Look at this", "blip_caption": "a photo of a dog on a sofa"},
        ],
        "session_2_date_time": "9:00 am on 20 June, 2023",
        "session_2": [
            {"speaker": "Ben", "dia_id": "D2:1", "text": "My pottery vase won a prize at the fair."},
            {"speaker": "Ann", "dia_id": "D2:2", "text": "Comet loves the beach in the morning."},
        ],
    }
    qa = [
        {"question": "What is the name of Ann's greyhound?", "answer": "Comet", "evidence": ["D1:1"], "category": 4},
        {"question": "When did Ben's vase win a prize?", "answer": "June 2023", "evidence": ["D2:1"], "category": 2},
        {"question": "Where does Comet like to go?", "answer": "beach", "evidence": ["D2:2; D1:1"], "category": 1},
        {"question": "What hobby did Ben pick up?", "answer": "pottery", "evidence": ["D:1:2", "D9:9"], "category": 3},
        {"question": "Ignored adversarial", "answer": "x", "evidence": ["D1:1"], "category": 5},
        {"question": "Broken evidence", "answer": "x", "evidence": ["D7:1"], "category": 4},
    ]
    path.write_text(json.dumps([{"sample_id": "tiny", "conversation": conversation, "qa": qa}]))


def test_locomo_benchmark_on_a_synthetic_file(tmp_path: Path, capsys) -> None:
    ds = tmp_path / "tiny.json"
    _tiny_locomo(ds)
    work = tmp_path / "work"
    work.mkdir()
    code = locomo.main(["--dataset", str(ds), "--json", "--embedder", "hashing", "--workdir", str(work / "d")])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["overall"]) == {"n", "R@1", "R@5", "R@10", "MRR"}
    assert result["overall"]["n"] == 4 and result["skipped_questions"] == 1
    assert set(result["by_category"]) == {"multi-hop", "temporal", "open-domain", "single-hop"}
    assert result["by_category"]["single-hop"]["R@1"] == 1.0  # "greyhound" only occurs in D1:1
    assert result["overall"]["R@10"] == 1.0  # five turns: everything is in the top 10
    assert locomo.main(["--dataset", str(tmp_path / "missing.json")]) == 2
    assert "does not exist" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text('{"not": "a list"}')
    assert locomo.main(["--dataset", str(bad)]) == 2
    assert "LoCoMo format" in capsys.readouterr().err


def test_locomo_helpers() -> None:
    assert locomo.normalise_evidence(["D8:6; D9:17", "D:11:26", "D30:05", "D1:2 D1:3"]) == [
        "D8:6",
        "D9:17",
        "D11:26",
        "D30:5",
        "D1:2",
        "D1:3",
    ]
    assert (
        locomo.format_turn("2 May, 2023", {"speaker": "Ann", "text": "hi", "blip_caption": "a cat"})
        == '(2 May, 2023) Ann said, "hi" and shared a cat'
    )
