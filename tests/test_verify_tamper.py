"""verify finds the first edited, deleted or reordered row, via the API and the CLI."""

from __future__ import annotations

import sqlite3

import pytest

from ledger.backends.sqlite_log import SqliteLog
from ledger.cli.app import main
from ledger.config import init_data_dir
from tests.log_contract import added


@pytest.fixture
def data_dir(tmp_path):
    d, _ = init_data_dir(tmp_path / "data")
    log = SqliteLog(d / "log.sqlite")
    log.append([added("c", f"m{i}", f"text {i}") for i in range(10)])
    log.close()
    return d


def _sql(data_dir, statement, *args):
    conn = sqlite3.connect(data_dir / "log.sqlite")
    with conn:
        conn.execute(statement, args)
    conn.close()


def _verify(data_dir):
    log = SqliteLog(data_dir / "log.sqlite")
    try:
        return log.verify()
    finally:
        log.close()


def test_intact_chain_verifies(data_dir, capsys):
    r = _verify(data_dir)
    assert r.ok and r.checked == 10 and r.head == 9
    assert main(["--data", str(data_dir), "verify"]) == 0
    assert "OK" in capsys.readouterr().out


def test_edited_payload_is_found(data_dir, capsys):
    _sql(
        data_dir,
        "UPDATE events SET payload = ? WHERE offset = 4",
        b'{"memory_id":"m4","metadata":{},"tags":[],"text":"forged"}',
    )
    r = _verify(data_dir)
    assert not r.ok and r.first_bad_offset == 4 and "modified" in r.problem
    assert main(["--data", str(data_dir), "verify", "--json"]) == 1
    assert '"first_bad_offset":4' in capsys.readouterr().out


def test_edited_actor_is_found(data_dir):
    _sql(data_dir, "UPDATE events SET actor = 'mallory' WHERE offset = 7")
    assert _verify(data_dir).first_bad_offset == 7


def test_non_canonical_payload_is_found(data_dir):
    _sql(
        data_dir,
        "UPDATE events SET payload = ? WHERE offset = 2",
        b'{"text":"text 2","memory_id":"m2","metadata":{},"tags":[]}',
    )
    r = _verify(data_dir)
    assert r.first_bad_offset == 2


def test_deleted_row_is_found(data_dir):
    _sql(data_dir, "DELETE FROM events WHERE offset = 5")
    r = _verify(data_dir)
    assert not r.ok and r.first_bad_offset == 5 and "removed" in r.problem


def test_swapped_rows_are_found(data_dir):
    conn = sqlite3.connect(data_dir / "log.sqlite")
    with conn:
        conn.execute("UPDATE events SET offset = -1 WHERE offset = 3")
        conn.execute("UPDATE events SET offset = 3 WHERE offset = 6")
        conn.execute("UPDATE events SET offset = 6 WHERE offset = -1")
    conn.close()
    r = _verify(data_dir)
    assert not r.ok and r.first_bad_offset == 3


def test_rehashed_edit_still_breaks_the_link(data_dir):
    """An attacker who recomputes the edited row's own hash still breaks the next link."""
    from ledger.canonical import chain_hash

    conn = sqlite3.connect(data_dir / "log.sqlite")
    row = conn.execute(
        "SELECT offset, stream, version, event_id, type, schema_version, ts_us, actor, "
        "causation_id, correlation_id, payload, prev_hash FROM events WHERE offset = 4"
    ).fetchone()
    forged = b'{"memory_id":"m4","metadata":{},"tags":[],"text":"forged"}'
    h = chain_hash(row[11], *row[:10], forged)
    with conn:
        conn.execute("UPDATE events SET payload = ?, hash = ? WHERE offset = 4", (forged, h))
    conn.close()
    r = _verify(data_dir)
    assert not r.ok and r.first_bad_offset == 5
