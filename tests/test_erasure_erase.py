"""Issue 12, erase: any memory (no subject needed) is erased by destroying its keys; no trace of its
text is left in any file of the data directory, what was derived from it (a chat answer, a merge)
becomes unreadable, the chain still verifies, and an interrupted erasure finishes on a re-run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ledger import events as ev
from ledger.errors import InvalidRequest, NotFound, StateError
from ledger.events import NewEvent
from ledger.governance.erase import erase, erase_where
from ledger.timemachine.branches import Branches
from ledger.timemachine.restore import restore_memory
from tests.cli_helpers import init_data, run
from tests.service_support import make_service

ROOT = Path(__file__).resolve().parents[1]
SECRET = "the vault code is 7731-0094-5528"


def _files_with(root: Path, needle: str) -> list[str]:
    """Every file under ``root`` holding ``needle`` verbatim or JSON-escaped (WAL and SHM included)."""
    forms = {needle.encode(), json.dumps(needle)[1:-1].encode()}
    return sorted(str(p) for p in root.rglob("*") if p.is_file() and any(f in p.read_bytes() for f in forms))


def _data(tmp_path, capsys, model_dir: Path, extra: str = "") -> str:
    data = init_data(tmp_path, capsys)
    (Path(data) / "memledger.toml").write_text(f'[llm]\nmodel = "{model_dir}"\nmax_new_tokens = 8\n\n{extra}')
    return data


def _json(capsys, *args: str) -> dict:
    code, out, err = run(capsys, *args, "--json")
    assert code == 0, err
    return json.loads(out)


def test_erase_leaves_no_trace_in_any_file_and_derived_memories_are_unreadable(tmp_path, capsys, tiny_model_dir):
    data = _data(tmp_path, capsys, tiny_model_dir, '[views.vector]\nembedder = "hashing"\n')
    d = ["--data", data]
    mid = _json(capsys, *d, "add", "--cube", "c", "--actor", "agent", SECRET)["id"]
    other = _json(capsys, *d, "add", "--cube", "c", "--actor", "agent", "the vault is in the basement")["id"]
    assert run(capsys, *d, "lifecycle", mid, "activated", "--actor", "agent")[0] == 0
    assert run(capsys, *d, "kv", "build", "--cube", "c")[0] == 0  # a KV cache whose token ids hold the secret
    assert list(Path(data).rglob("*.safetensors"))
    turn = _json(capsys, *d, "chat", "--cube", "c", "--actor", "agent", "-m", "what is the vault code?")
    merged = _json(capsys, *d, "merge", mid, other, "--text", f"{SECRET}; in the basement", "--actor", "agent")["id"]
    assert run(capsys, *d, "search", "--cube", "c", "vault code")[0] == 0  # views and embedding cache hold it
    assert _files_with(Path(data), SECRET)  # the plaintext is in the views before the erasure
    answer = turn["assistant_memory"]
    assert mid in _json(capsys, *d, "get", answer)["derived_from"]

    report = _json(capsys, *d, "erase", mid, "--actor", "dpo", "--reason", "customer request 17")
    assert report["complete"] is True, report
    assert set(report["derived"]) >= {answer, merged}
    assert _files_with(Path(data), SECRET) == []
    assert list(Path(data).rglob("*.safetensors")) == []  # the KV cache built from it is gone
    code, _, err = run(capsys, *d, "get", mid)
    assert code == 3 and "erased" in err
    for derived in (answer, merged):
        state = _json(capsys, *d, "get", derived)
        assert state["text"] is None and state["forgotten"] is True
    hits = _json(capsys, *d, "search", "--cube", "c", "--all-states", "vault code")
    assert not {h["id"] for h in hits} & {mid, merged, answer}
    assert run(capsys, *d, "verify")[0] == 0  # hashes cover ciphertext, which is untouched
    erased = [e for e in map(json.loads, run(capsys, *d, "log")[1].splitlines()) if e["type"] == "memory.erased"]
    assert len(erased) == 1 and erased[0]["actor"] == "dpo" and erased[0]["payload"]["reason"] == "customer request 17"
    assert SECRET not in json.dumps(erased[0])


def test_erase_reaches_branches_and_refuses_restore(data_dir_ledger):
    led = data_dir_ledger
    m = led.add("c", SECRET, "agent")
    branches = Branches(led)
    branches.create("what-if", led.head(), "agent")
    on_branch = branches.ledger("what-if")
    assert on_branch.get(m.id).text == SECRET
    erase(led, [m.id], "dpo", "request")
    assert branches.ledger("what-if").get(m.id).text is None  # the branch shares the key, now destroyed
    with pytest.raises(StateError, match="erased"):
        restore_memory(led, m.id, m.offset, "agent")
    with pytest.raises(NotFound, match="erased"):
        led.get(m.id)


def test_bad_erasures_are_refused_before_anything_is_destroyed(data_dir_ledger, ledger):
    led = data_dir_ledger
    m = led.add("c", "keep me readable", "agent")
    head = led.head()
    with pytest.raises(InvalidRequest, match="reason"):
        erase(led, [m.id], "dpo", "  ")
    with pytest.raises(NotFound):
        erase(led, ["mem_missing"], "dpo", "r")
    with pytest.raises(InvalidRequest, match="no key store"):
        erase(ledger, ["mem_x"], "dpo", "r")  # a bare ledger built in code seals nothing
    # a memory written before every memory was sealed: plaintext in the log, so it cannot be erased
    legacy = led.append(
        [NewEvent("c", ev.MEMORY_ADDED, {"memory_id": "mem_legacy", "text": "old plain text"}, "agent")]
    )
    with pytest.raises(StateError, match="plaintext"):
        erase(led, ["mem_legacy"], "dpo", "r")
    assert led.head() == legacy[0].offset == head + 1 and led.get(m.id).text == "keep me readable"
    with pytest.raises(NotFound):
        erase_where(led, "c", "dpo", "r", {"user_id": "nobody"})


def test_erase_where_takes_deleted_memories_too(data_dir_ledger):
    led = data_dir_ledger
    a = led.add("c", "u1 first secret", "agent", metadata={"user_id": "u1"})
    b = led.add("c", "u1 second secret", "agent", metadata={"user_id": "u1"})
    keep = led.add("c", "u2 keeps this", "agent", metadata={"user_id": "u2"})
    led.delete(b.id, "agent")
    report = erase_where(led, "c", "dpo", "account closed", {"user_id": "u1"})
    assert sorted(report.memory_ids) == sorted([a.id, b.id]) and report.complete
    assert led.get(keep.id).text == "u2 keeps this"
    assert all(v.text is None for v in led.history(b.id))


_INTERRUPT = """
import sys
from ledger.backends import sqlite_log
real = sqlite_log.SqliteLog.append
def crash(self, events, expected=None):
    if any(e.type == "memory.erased" for e in events):
        import os, signal
        os.kill(os.getpid(), signal.SIGKILL)  # the keys are destroyed; the erasure is not recorded yet
    return real(self, events, expected)
sqlite_log.SqliteLog.append = crash
from ledger.cli.app import main
sys.exit(main(["--data", sys.argv[1], "erase", sys.argv[2], "--actor", "dpo", "--reason", "r"]))
"""


def test_an_erasure_killed_between_destroying_keys_and_recording_finishes_on_a_rerun(tmp_path, capsys):
    data = init_data(tmp_path, capsys)
    d = ["--data", data]
    mid = _json(capsys, *d, "add", "--cube", "c", "--actor", "agent", SECRET)["id"]
    assert run(capsys, *d, "search", "--cube", "c", "vault")[0] == 0  # the views hold the plaintext
    proc = subprocess.run(
        [sys.executable, "-c", _INTERRUPT, data, mid],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert _files_with(Path(data), SECRET)  # the views were not purged yet
    report = _json(capsys, *d, "erase", mid, "--actor", "dpo", "--reason", "r")
    assert report["complete"] is True and report["checked_texts"] >= 1, report  # texts from the pending record
    assert _files_with(Path(data), SECRET) == []
    again = _json(capsys, *d, "erase", mid, "--actor", "dpo", "--reason", "r")
    assert again["already_erased"] is True and again["complete"] is True
    log = [json.loads(x) for x in run(capsys, *d, "log")[1].splitlines()]
    assert [e["type"] for e in log].count("memory.erased") == 1
    assert not any((Path(data) / "governance" / "pending").iterdir())


def test_http_erase_needs_the_owner_and_a_reason(tmp_path):
    s = make_service(tmp_path)
    c = s.client
    c.post("/v1/cubes", json={"cube": "w"}, headers=s.h("alice"))
    c.post("/v1/cubes/w/grants", json={"principal": "bob", "role": "writer"}, headers=s.h("alice"))
    m = c.post("/v1/memories", json={"cube": "w", "text": SECRET}, headers=s.h("bob")).json()
    assert c.post(f"/v1/memories/{m['id']}/erase", json={"reason": "r"}, headers=s.h("bob")).status_code == 403
    assert c.post(f"/v1/memories/{m['id']}/erase", json={}, headers=s.h("alice")).status_code == 422
    r = c.post(f"/v1/memories/{m['id']}/erase", json={"reason": "customer request"}, headers=s.h("alice"))
    assert r.status_code == 200 and r.json()["complete"] is True, r.text
    assert c.get(f"/v1/memories/{m['id']}?as_of={m['offset']}", headers=s.h("alice")).json()["text"] is None
    assert _files_with(s.data, SECRET) == []
    r = c.post("/v1/cubes/w/erase", json={"reason": "closing"}, headers=s.h("alice"))
    assert r.status_code == 404  # nothing left to erase
