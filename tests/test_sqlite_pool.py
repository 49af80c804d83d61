"""Opening one fresh SQLite file from several processes at once (two consumers starting on a new data
directory) must not fail: turning a new file to WAL is answered "database is locked" without waiting."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OPEN = """
import sys, time
from ledger.storage.sqlite_pool import ThreadConnections
start = float(sys.argv[2])
while time.time() < start:
    pass
conn = ThreadConnections(sys.argv[1]).get()
conn.execute("CREATE TABLE IF NOT EXISTS t(x)")
print(conn.execute("PRAGMA journal_mode").fetchone()[0])
"""


def test_processes_opening_one_fresh_file_at_once_all_get_a_wal_connection(tmp_path):
    import time

    for round_ in range(8):
        path = tmp_path / f"fresh-{round_}.sqlite"
        start = time.time() + 1.0  # every process past its imports, then all at once
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", OPEN, str(path), str(start)],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(6)
        ]
        results = [p.communicate(timeout=120) for p in procs]
        assert [(p.returncode, out.strip()) for p, (out, _) in zip(procs, results, strict=True)] == [(0, "wal")] * 6, [
            err[-300:] for _, err in results
        ]
