"""The role fold itself: grants count only on their own cube's stream; revocation and sharing."""

from __future__ import annotations

from ledger.access import AccessIndex
from ledger.api import Ledger
from ledger.backends.sqlite_log import SqliteLog
from ledger.events import NewEvent


def test_role_fold(tmp_path):
    log = SqliteLog(tmp_path / "log.sqlite")
    ledger = Ledger(log)
    ledger.create_cube("a", owner="alice")
    ledger.create_cube("m", owner="mallory")
    idx = AccessIndex(log)
    # mallory writes a grant for cube "a" onto her own cube's stream: it must not count
    log.append([NewEvent("m", "access.granted", {"cube": "a", "principal": "mallory", "role": "owner"}, "mallory")])
    idx.refresh()
    assert idx.roles("a", "mallory") == frozenset()
    log.append([NewEvent("a", "access.granted", {"cube": "a", "principal": "bob", "role": "writer"}, "alice")])
    idx.refresh()
    assert idx.roles("a", "bob") == {"writer"}
    assert idx.cubes_of("bob") == {"a": ["writer"]}
    log.append([NewEvent("a", "access.revoked", {"cube": "a", "principal": "bob", "role": "writer"}, "alice")])
    idx.refresh()
    assert idx.roles("a", "bob") == frozenset() and idx.grants("a") == {"alice": ["owner"]}
    w = ledger.add("a", "hello", "alice")
    idx.refresh()
    assert idx.cube_of(w.id) == "a" and idx.cube_of("nope") is None
