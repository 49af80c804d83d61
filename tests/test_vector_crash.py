"""Kill the vector view's catch-up mid-way (SIGKILL), restart it: the view equals a clean rebuild."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from projections.base import catch_up
from projections.vector.embedding import HashingEmbedder
from projections.vector.view import VectorView
from tests.ledgers import make_ledger

ROOT = Path(__file__).resolve().parents[1]

CATCH_UP = """
import sys
from ledger.api import Ledger
from ledger.backends.sqlite_log import SqliteLog
from projections.base import catch_up
from projections.vector.embedding import HashingEmbedder
from projections.vector.view import VectorView
ledger = Ledger(SqliteLog(sys.argv[1]))
view = VectorView(sys.argv[2], HashingEmbedder(dim=32))
catch_up(ledger.events, view, batch_size=int(sys.argv[3]))
"""


def _dump(path: Path):
    conn = sqlite3.connect(path)
    versions = conn.execute(
        "SELECT id, memory_id, cube, valid_from, valid_to, state, subject, present, slot, "
        "metadata, tags FROM versions ORDER BY id"
    ).fetchall()
    vectors = conn.execute("SELECT slot, text_sha256, vec FROM vectors ORDER BY slot").fetchall()
    cp = conn.execute("SELECT value FROM meta WHERE key = 'checkpoint'").fetchone()
    conn.close()
    return versions, vectors, cp


def _checkpoint(path: Path) -> int:
    try:
        conn = sqlite3.connect(path, timeout=5)
        row = conn.execute("SELECT value FROM meta WHERE key = 'checkpoint'").fetchone()
        conn.close()
        return int(row[0]) if row else -1
    except sqlite3.Error:
        return -1


def _populate(log_path: Path) -> int:
    ledger = make_ledger(log_path, record_reads=False)
    ids = []
    words = ["coffee", "paris", "dog", "meeting", "jazz", "blue", "tea", "berlin"]
    for i in range(1500):
        cube = f"cube{i % 3}"
        ids.append(ledger.add(cube, f"{words[i % 8]} {words[(i * 7) % 8]} note {i}", "u").id)
        if i % 5 == 4:
            ledger.update(ids[i - 2], f"revised {words[i % 8]} {i}", "u")
        if i % 11 == 10:
            ledger.change_state(ids[i - 3], "activated", "u")
        if i % 37 == 36:
            ledger.merge([ids[i - 21], ids[i - 24]], f"merged {i}", "u")
    head = ledger.head()
    ledger.log.close()
    return head


def test_kill_during_catch_up_then_restart_equals_clean_rebuild(tmp_path):
    log_path = tmp_path / "log.sqlite"
    head = _populate(log_path)
    view_path = tmp_path / "views" / "vector.sqlite"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    kills = 0
    for _ in range(3):  # kill it up to three times at different points
        proc = subprocess.Popen([sys.executable, "-c", CATCH_UP, str(log_path), str(view_path), "7"], env=env)
        start_cp = _checkpoint(view_path)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if _checkpoint(view_path) > start_cp + 200:
                break
            time.sleep(0.01)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills >= 1, "catch-up finished before it could be killed"
    assert _checkpoint(view_path) < head

    ledger = make_ledger(log_path)
    emb = HashingEmbedder(dim=32)
    resumed = VectorView(view_path, emb)
    catch_up(ledger.events, resumed, batch_size=500)
    clean = VectorView(tmp_path / "clean" / "vector.sqlite", emb)
    catch_up(ledger.events, clean, batch_size=1000)
    assert resumed.checkpoint() == clean.checkpoint() == head
    assert _dump(view_path) == _dump(tmp_path / "clean" / "vector.sqlite")
    q = emb.embed(["coffee paris note"])[0]
    for as_of in (head // 3, head // 2, head):
        assert resumed.vector_search(q, 20, as_of=as_of) == clean.vector_search(q, 20, as_of=as_of)
    resumed.close()
    clean.close()
    ledger.log.close()
