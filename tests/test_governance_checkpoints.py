"""Signed checkpoints: verify catches an edited row, a rewritten (re-hashed) history, a truncated
log, forged or re-signed checkpoints; via the API and the CLI."""

from __future__ import annotations

import sqlite3

import orjson
import pytest

from ledger.canonical import GENESIS_HASH, canonical_bytes, chain_hash
from ledger.cli.app import main
from ledger.config import init_data_dir, load_config
from ledger.factory import open_ledger
from ledger.governance.checkpoints import Checkpoints
from ledger.governance.integrity import verify_integrity
from ledger.log import refs_of


@pytest.fixture
def data(tmp_path):
    d, _ = init_data_dir(tmp_path / "data")
    ledger = open_ledger(d)
    for i in range(12):
        ledger.add("c", f"memory {i}", actor="agent")
    cps = Checkpoints.for_config(load_config(d))
    cps.create(ledger.log)  # 13 events (its record in the log is offset 13)
    for i in range(5):
        ledger.add("c", f"later {i}", actor="agent")
    cps.create(ledger.log)  # 19 events (its record is offset 19)
    ledger.log.close()
    return d


def _check(d):
    ledger = open_ledger(d)
    try:
        return verify_integrity(ledger)
    finally:
        ledger.log.close()


def _rewrite(d, offset: int, new_text: str) -> None:
    """Change one payload and recompute every hash after it: the chain alone still verifies."""
    conn = sqlite3.connect(d / "log.sqlite")
    rows = conn.execute(
        "SELECT offset, stream, version, event_id, type, schema_version, ts_us, actor, "
        "causation_id, correlation_id, payload FROM events ORDER BY offset"
    ).fetchall()
    prev = GENESIS_HASH
    with conn:
        for r in rows:
            payload = orjson.loads(r[10])
            if r[0] == offset:
                payload["text"] = new_text
            pb = canonical_bytes(payload)
            h = chain_hash(prev, *r[:10], pb)
            conn.execute("UPDATE events SET payload=?, prev_hash=?, hash=? WHERE offset=?", (pb, prev, h, r[0]))
            prev = h
    conn.close()


def _remove_checkpoint_records(d) -> None:
    """Drop every checkpoint.signed event and renumber and re-hash the rest (a thorough attacker)."""
    conn = sqlite3.connect(d / "log.sqlite")
    rows = conn.execute(
        "SELECT offset, stream, version, event_id, type, schema_version, ts_us, actor, "
        "causation_id, correlation_id, payload FROM events ORDER BY offset"
    ).fetchall()
    kept = [r for r in rows if r[4] != "checkpoint.signed"]
    prev, versions = GENESIS_HASH, {}
    with conn:
        conn.execute("DELETE FROM events")
        conn.execute("DELETE FROM refs")
        for offset, r in enumerate(kept):
            versions[r[1]] = versions.get(r[1], 0) + 1
            row = (offset, r[1], versions[r[1]], *r[3:10])
            h = chain_hash(prev, *row, r[10])
            conn.execute(
                "INSERT INTO events(offset, stream, version, event_id, type, schema_version, ts_us, actor, "
                "causation_id, correlation_id, payload, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (*row, r[10], prev, h),
            )
            conn.executemany(
                "INSERT OR IGNORE INTO refs(ref, offset) VALUES (?,?)",
                [(ref, offset) for ref in refs_of(orjson.loads(r[10]))],
            )
            prev = h
    conn.close()


def test_intact_log_and_checkpoints_verify(data, capsys):
    r = _check(data)
    assert r.ok and r.checkpoints.checked == 2 and r.chain["checked"] == 20
    assert main(["--data", str(data), "verify"]) == 0
    assert "2 signed checkpoints match" in capsys.readouterr().out


def test_rewritten_history_passes_the_chain_but_fails_the_checkpoints(data, capsys):
    _rewrite(data, 4, "a rewritten memory")
    r = _check(data)
    assert r.chain["ok"] and not r.ok
    assert "checkpoint #1" in r.problem and "rewritten" in r.problem
    assert main(["--data", str(data), "verify"]) == 1
    assert "FAILED" in capsys.readouterr().out


def test_rewrite_after_first_checkpoint_is_caught_by_the_second(data):
    _rewrite(data, 15, "rewritten later")
    r = _check(data)
    assert not r.ok and r.checkpoints.seq == 2


def test_edited_row_fails_the_chain(data, capsys):
    conn = sqlite3.connect(data / "log.sqlite")
    with conn:
        conn.execute("UPDATE events SET payload = replace(payload, 'mem_', 'mex_') WHERE offset = 4")
    conn.close()
    r = _check(data)
    assert not r.ok and r.problem.startswith("offset 4")
    assert main(["--data", str(data), "verify"]) == 1


def test_truncated_log_fails(data, capsys):
    conn = sqlite3.connect(data / "log.sqlite")
    with conn:
        conn.execute("DELETE FROM events WHERE offset >= 15")
    conn.close()
    r = _check(data)
    assert not r.chain["ok"] and "refs index" in r.problem  # the ref index still names the removed events
    conn = sqlite3.connect(data / "log.sqlite")
    with conn:
        conn.execute("DELETE FROM refs WHERE offset >= 15")
    conn.close()
    r = _check(data)
    assert r.chain["ok"] and not r.ok and "truncated" in r.problem and r.checkpoints.seq == 2
    assert main(["--data", str(data), "verify", "--json"]) == 1
    out = orjson.loads(capsys.readouterr().out)
    assert out["ok"] is False and "truncated" in out["problem"]


def test_forged_and_removed_checkpoints_fail(data):
    path = data / "checkpoints.jsonl"
    lines = path.read_bytes().splitlines()
    cp = orjson.loads(lines[0])
    forged = dict(cp, log_size=cp["log_size"] - 1)
    path.write_bytes(orjson.dumps(forged) + b"\n" + lines[1] + b"\n")
    r = _check(data)
    assert not r.ok and "signature" in r.problem
    path.write_bytes(lines[1] + b"\n")
    r = _check(data)
    assert not r.ok and "removed or reordered" in r.problem


def test_resigned_with_a_new_key_fails_against_the_trusted_key(data, tmp_path, capsys):
    assert main(["--data", str(data), "keys", "export-public"]) == 0
    trusted = tmp_path / "trusted.pem"
    trusted.write_text(capsys.readouterr().out)
    # The attacker rewrites history, replaces the signing key and re-signs fresh checkpoints.
    _rewrite(data, 4, "rewritten")
    (data / "keys" / "checkpoint-signing.key").unlink()
    (data / "checkpoints.jsonl").unlink()
    ledger = open_ledger(data)
    Checkpoints.for_config(ledger.config).create(ledger.log)
    ledger.log.close()
    assert main(["--data", str(data), "verify"]) == 1  # the log's own checkpoint records give it away...
    assert "the store was replaced" in capsys.readouterr().out
    # ...so the attacker also removes those records (and re-hashes everything after them)
    _remove_checkpoint_records(data)
    (data / "checkpoints.jsonl").unlink()
    ledger = open_ledger(data)
    Checkpoints.for_config(ledger.config).create(ledger.log)
    ledger.log.close()
    assert main(["--data", str(data), "verify"]) == 0  # self-consistent with the attacker's key...
    capsys.readouterr()
    assert main(["--data", str(data), "verify", "--public-key", str(trusted)]) == 1  # ...not with the trusted one
    assert "signature" in capsys.readouterr().out


def test_checkpoint_cli_and_empty_log(tmp_path, capsys):
    d = str(tmp_path / "d")
    assert main(["--data", d, "init"]) == 0
    assert main(["--data", d, "checkpoint", "--json"]) == 0
    capsys.readouterr()
    assert main(["--data", d, "add", "--cube", "c", "hello"]) == 0
    assert main(["--data", d, "checkpoint", "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()[-1]
    cp = orjson.loads(out)
    assert cp["seq"] == 2 and cp["log_size"] == 3  # the record of #1, then the cube and the memory
    assert main(["--data", d, "checkpoints", "--json"]) == 0
    assert [c["log_size"] for c in orjson.loads(capsys.readouterr().out)] == [0, 3]
    assert main(["--data", d, "verify"]) == 0
    key = tmp_path / "d" / "keys" / "checkpoint-signing.key"
    assert oct(key.stat().st_mode & 0o777) == "0o600"


def test_damaged_store_or_missing_key_fail_verify(data, capsys):
    key = data / "keys" / "checkpoint-signing.key"
    saved = key.read_bytes()
    key.unlink()
    r = _check(data)
    assert not r.ok and "signing key" in r.problem
    key.write_bytes(saved)
    with open(data / "checkpoints.jsonl", "ab") as f:
        f.write(b"{torn line\n")
    r = _check(data)
    assert not r.ok and "damaged" in r.problem
    assert main(["--data", str(data), "verify"]) == 1
