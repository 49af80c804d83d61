"""Issue 11, tamper evidence: verify checks the indexes reads trust (item 6) and pins checkpoints held
elsewhere, saying loudly when a log that had checkpoints has none now (item 7)."""

from __future__ import annotations

import json
import sqlite3

from tests.cli_helpers import init_data, run


def _refs_offsets(data: str, ref: str) -> list[int]:
    conn = sqlite3.connect(f"{data}/log.sqlite")
    try:
        return [r[0] for r in conn.execute("SELECT offset FROM refs WHERE ref = ? ORDER BY offset", (ref,))]
    finally:
        conn.close()


def _sql(data: str, *statements: str) -> None:
    conn = sqlite3.connect(f"{data}/log.sqlite")
    with conn:
        for s in statements:
            conn.execute(s)
    conn.close()


def test_item06_verify_catches_removed_ref_index_rows(tmp_path, capsys):
    data = init_data(tmp_path, capsys)
    mid = json.loads(run(capsys, "--data", data, "add", "--cube", "c", "--actor", "a", "--json", "first")[1])["id"]
    upd = json.loads(run(capsys, "--data", data, "update", mid, "--actor", "a", "--json", "second")[1])["offset"]
    assert run(capsys, "--data", data, "get", mid, "--actor", "reader")[0] == 0
    assert run(capsys, "--data", data, "verify")[0] == 0
    offsets = _refs_offsets(data, mid)
    assert upd in offsets and len(offsets) == 3  # add, update, read
    _sql(data, f"DELETE FROM refs WHERE ref = '{mid}' AND offset >= {upd}")
    code, out, err = run(capsys, "--data", data, "get", mid, "--actor", "x", "--json")
    assert json.loads(out)["text"] == "first"  # what the damaged index makes reads answer...
    code, out, err = run(capsys, "--data", data, "verify")
    assert code == 1, out  # ...is what verify now reports
    assert f"offset {upd}" in out and "refs index" in out and mid in out


def test_item06_verify_catches_added_ref_index_rows(tmp_path, capsys):
    data = init_data(tmp_path, capsys)
    run(capsys, "--data", data, "add", "--cube", "c", "--actor", "a", "one")
    other = json.loads(run(capsys, "--data", data, "add", "--cube", "c", "--actor", "a", "--json", "two")[1])["id"]
    _sql(data, f"INSERT INTO refs(ref, offset) VALUES ('{other}', 1)")
    code, out, _ = run(capsys, "--data", data, "verify", "--json")
    assert code == 1 and "unexpected" in json.loads(out)["problem"]


def test_item06_verify_catches_damaged_sqlite_indexes(tmp_path, capsys):
    data = init_data(tmp_path, capsys)
    for i in range(200):
        run(capsys, "--data", data, "add", "--cube", "c", "--actor", "a", f"memory number {i}")
    # edit bytes of an index the table does not hash (the event-id or stream-version index)
    conn = sqlite3.connect(f"{data}/log.sqlite")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    root = conn.execute(
        "SELECT rootpage FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' "
        "AND sql IS NULL ORDER BY name LIMIT 1"
    ).fetchone()[0]
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    path = f"{data}/log.sqlite"
    with open(path, "r+b") as f:  # flip bytes inside the index's root page content (an event id in it)
        f.seek((root - 1) * page_size + page_size - 40)
        chunk = bytearray(f.read(8))
        f.seek((root - 1) * page_size + page_size - 40)
        f.write(bytes(b ^ 0x01 for b in chunk))
    code, out, err = run(capsys, "--data", data, "verify")
    assert code == 1, out + err
    assert "damaged" in out or "index" in out


def _checkpointed(tmp_path, capsys) -> tuple[str, str]:
    data = init_data(tmp_path, capsys)
    for i in range(10):
        run(capsys, "--data", data, "add", "--cube", "c", "--actor", "a", f"memory {i}")
    code, out, _ = run(capsys, "--data", data, "checkpoint", "--json")
    assert code == 0
    pinned = tmp_path / "pinned-elsewhere.json"
    pinned.write_text(out)
    key = tmp_path / "key.pem"
    key.write_text(run(capsys, "--data", data, "keys", "export-public")[1])
    return data, str(pinned)


def test_item07_deleting_the_checkpoint_store_is_reported(tmp_path, capsys):
    data, _ = _checkpointed(tmp_path, capsys)
    (tmp_path / "data" / "checkpoints.jsonl").unlink()
    code, out, _ = run(capsys, "--data", data, "verify", "--public-key", str(tmp_path / "key.pem"))
    assert code == 1 and "holds none" in out


def test_item07_truncation_with_the_store_deleted_fails_against_a_pinned_checkpoint(tmp_path, capsys):
    data, pinned = _checkpointed(tmp_path, capsys)
    size = json.loads(open(pinned).read())["log_size"]
    # the attacker removes the tail (the checkpoint's own record included), its index rows and the store
    _sql(data, f"DELETE FROM events WHERE offset >= {size - 3}", f"DELETE FROM refs WHERE offset >= {size - 3}")
    (tmp_path / "data" / "checkpoints.jsonl").unlink()
    code, out, err = run(capsys, "--data", data, "verify", "--public-key", str(tmp_path / "key.pem"))
    assert code == 0 and "--trusted" in err  # all a local check can say: loudly, that nothing pins the log
    code, out, _ = run(
        capsys, "--data", data, "verify", "--trusted", pinned, "--public-key", str(tmp_path / "key.pem"), "--json"
    )
    assert code == 1 and "truncated" in json.loads(out)["problem"]
    code, out, _ = run(capsys, "--data", data, "verify", "--trusted", pinned)
    assert code == 1 and "trusted checkpoint #1" in out


def test_item07_a_pinned_checkpoint_of_an_intact_log_verifies(tmp_path, capsys):
    data, pinned = _checkpointed(tmp_path, capsys)
    run(capsys, "--data", data, "add", "--cube", "c", "--actor", "a", "a later memory")
    code, out, _ = run(capsys, "--data", data, "verify", "--trusted", pinned)
    assert code == 0 and "1 trusted checkpoints match" in out
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    code, _, err = run(capsys, "--data", data, "verify", "--trusted", str(bad))
    assert code == 2 and err.startswith("error:") and len(err.strip().splitlines()) == 1
