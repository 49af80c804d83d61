"""Issue 11, erasure: forget purges KV caches and checks token-id and embedding residue (item 1),
memories derived from sealed sources are sealed under every source subject (item 2), and a re-run of
an interrupted forget finishes every step (item 10)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.cli_helpers import init_data, run

ROOT = Path(__file__).resolve().parents[1]
SECRET = "card 4111 1111 1111 1111 PIN 4321"


def _data(tmp_path, capsys, model_dir: Path, views: str = "") -> str:
    data = init_data(tmp_path, capsys)
    (Path(data) / "memledger.toml").write_text(f'[llm]\nmodel = "{model_dir}"\nmax_new_tokens = 8\n\n{views}')
    return data


def _kv_files(data: str) -> list[Path]:
    return sorted(Path(data).rglob("*.safetensors"))


def _add(capsys, data: str, *args: str) -> str:
    code, out, err = run(capsys, "--data", data, "add", "--cube", "c", "--actor", "agent", "--json", *args)
    assert code == 0, err
    return json.loads(out)["id"]


def test_item01_forget_deletes_kv_caches_built_from_the_subject(tmp_path, capsys, tiny_model_dir):
    data = _data(tmp_path, capsys, tiny_model_dir)
    mid = _add(capsys, data, "--subject", "cust-9", SECRET)
    assert run(capsys, "--data", data, "lifecycle", mid, "activated", "--actor", "agent")[0] == 0
    assert run(capsys, "--data", data, "kv", "build", "--cube", "c")[0] == 0
    files = _kv_files(data)
    assert len(files) == 1
    code, out, err = run(capsys, "--data", data, "forget", "--subject", "cust-9", "--actor", "dpo", "--json")
    report = json.loads(out)
    assert code == 0 and report["complete"] is True, report
    assert _kv_files(data) == []


def test_item01_residue_check_finds_kv_token_ids_of_an_erased_text(tmp_path, capsys, tiny_model_dir):
    data = _data(tmp_path, capsys, tiny_model_dir)
    mid = _add(capsys, data, "--subject", "cust-9", SECRET)
    run(capsys, "--data", data, "lifecycle", mid, "activated", "--actor", "agent")
    run(capsys, "--data", data, "kv", "build", "--cube", "c")
    [cache] = _kv_files(data)
    stray = Path(data) / "exports" / "copy.safetensors"  # a copy the index knows nothing about
    stray.parent.mkdir()
    shutil.copy(cache, stray)
    assert SECRET.encode() not in stray.read_bytes()  # not findable as text: only as token ids
    code, out, _ = run(capsys, "--data", data, "forget", "--subject", "cust-9", "--actor", "dpo", "--json")
    report = json.loads(out)
    assert code == 1 and report["complete"] is False
    assert any("copy.safetensors" in r and "token ids" in r for r in report["residue"]), report


def test_item01_residue_check_finds_embeddings_of_an_erased_text(tmp_path, capsys, tiny_model_dir):
    from projections.vector.embedding_cache import text_hash

    data = _data(tmp_path, capsys, tiny_model_dir, '[views.vector]\nembedder = "hashing"\n')
    _add(capsys, data, "--subject", "cust-9", SECRET)
    assert run(capsys, "--data", data, "search", "--cube", "c", "card")[0] == 0  # views and the embedding cache
    cache = Path(data) / "views" / "embedding_cache.sqlite"
    conn = sqlite3.connect(cache)
    assert conn.execute("SELECT count(*) FROM embeddings WHERE text_sha256 = ?", (text_hash(SECRET),)).fetchone()[0]
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    backup = Path(data) / "backup" / "embedding_cache.sqlite"  # a copy of the cache, vectors and all
    backup.parent.mkdir()
    shutil.copy(cache, backup)
    assert SECRET.encode() not in backup.read_bytes()  # no text in it: only vectors under text digests
    code, out, _ = run(capsys, "--data", data, "forget", "--subject", "cust-9", "--actor", "dpo", "--json")
    report = json.loads(out)
    assert code == 1 and report["complete"] is False
    assert any("backup" in r and "embedding" in r for r in report["residue"]), report
    assert not any("views/embedding_cache.sqlite" in r for r in report["residue"])  # the live cache was purged
    backup.unlink()
    code, out, _ = run(capsys, "--data", data, "forget", "--subject", "cust-9", "--actor", "dpo", "--json")
    assert json.loads(out)["complete"] is True  # the re-run checks again with the pending record's texts


def test_item02_chat_answer_derived_from_a_sealed_memory_is_sealed_under_its_subject(tmp_path, capsys, tiny_model_dir):
    data = _data(tmp_path, capsys, tiny_model_dir, '[views]\nvector = "none"\n')
    _add(capsys, data, "--subject", "cust-9", f"The customer's {SECRET}")
    code, out, err = run(
        capsys,
        "--data",
        data,
        "chat",
        "--cube",
        "c",
        "--actor",
        "agent",
        "--json",
        "-m",
        "what is the customer's card and PIN?",
    )
    assert code == 0, err
    turn = json.loads(out)
    assert turn["retrieved"], turn  # the sealed memory was in the prompt
    answer = turn["assistant_memory"]
    code, out, _ = run(capsys, "--data", data, "get", answer, "--json")
    assert json.loads(out)["subjects"] == ["cust-9"] and json.loads(out)["sealed"] is True
    code, out, _ = run(capsys, "--data", data, "forget", "--subject", "cust-9", "--actor", "dpo", "--json")
    assert json.loads(out)["complete"] is True
    code, out, _ = run(capsys, "--data", data, "get", answer, "--json")
    after = json.loads(out)
    assert after["text"] is None and after["forgotten"] is True
    code, out, _ = run(capsys, "--data", data, "search", "--cube", "c", "--json", "--all-states", "card PIN customer")
    assert answer not in out


def test_item02_a_merge_of_two_subjects_is_unreadable_after_forgetting_either(tmp_path):
    from ledger.config import init_data_dir
    from ledger.factory import open_ledger
    from ledger.governance.forget import forget

    data, _ = init_data_dir(tmp_path / "data")
    ledger = open_ledger(data)
    a = ledger.add("c", "alice's flat is at 12 rue Lilas", "agent", subject="alice").id
    b = ledger.add("c", "bob's flat is at 9 Elm Street", "agent", subject="bob").id
    plain = ledger.add("c", "the office opens at nine", "agent").id
    merged = ledger.merge([a, b, plain], "alice lives at 12 rue Lilas and bob at 9 Elm Street", "agent").id
    assert ledger.get(merged).subjects == ["alice", "bob"]
    assert forget(ledger, "bob", "dpo").complete
    state = ledger.get(merged)
    assert state.text is None and state.forgotten
    assert ledger.get(a).text == "alice's flat is at 12 rue Lilas"  # alice's own memory still reads
    ledger.log.close()


_INTERRUPT = """
import os, signal, sys
from projections import erasure
def crash(self, ledger, event):
    os.kill(os.getpid(), signal.SIGKILL)  # after the key is destroyed and the erasure recorded
erasure.SearchViews.erase = crash
from ledger.cli.app import main
sys.exit(main(["--data", sys.argv[1], "forget", "--subject", "cust-9", "--actor", "dpo"]))
"""


def test_item10_rerunning_an_interrupted_forget_finishes_every_step(tmp_path, capsys, tiny_model_dir):
    data = _data(tmp_path, capsys, tiny_model_dir, '[views]\nvector = "none"\n')
    _add(capsys, data, "--subject", "cust-9", SECRET)
    assert run(capsys, "--data", data, "search", "--cube", "c", "card")[0] == 0  # the keyword view holds the text
    keyword = Path(data) / "views" / "keyword.sqlite"
    proc = subprocess.run(
        [sys.executable, "-c", _INTERRUPT, data],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    conn = sqlite3.connect(keyword)
    held = conn.execute("SELECT count(*) FROM texts WHERE text LIKE '%4111%'").fetchone()[0]
    conn.close()
    assert held == 1  # interrupted before the views purged
    code, out, err = run(capsys, "--data", data, "forget", "--subject", "cust-9", "--actor", "dpo", "--json")
    report = json.loads(out)
    assert report["already_forgotten"] is True and report["complete"] is True, report
    assert report["checked_texts"] >= 1  # the residue grep still knew the erased text
    conn = sqlite3.connect(keyword)
    assert conn.execute("SELECT count(*) FROM texts WHERE text LIKE '%4111%'").fetchone()[0] == 0
    conn.close()
    hits = [p for p in Path(data).rglob("*") if p.is_file() and b"4111 1111" in p.read_bytes()]
    assert hits == []
    assert not any((Path(data) / "governance" / "pending").iterdir())  # the pending record is shredded
