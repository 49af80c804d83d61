"""Right to be forgotten: after ``forget`` the subject's text is in no file of the data directory,
the chain verifies, other subjects still read, and the memory says it was forgotten."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ledger.cli.app import main
from ledger.config import init_data_dir
from ledger.errors import InvalidRequest, NotFound, StateError
from ledger.factory import open_ledger
from ledger.governance.forget import forget, register_forget_hook, unregister_forget_hook

MARKER = "zq-marker-7f3a9c-do-not-keep"
OTHER = "other-subject-text-4b1e"


class PlaintextView:
    """A stand-in projection: keeps memory texts in SQLite (WAL, FTS5) and purges a subject with
    a plain DELETE, which leaves the bytes in free pages and the WAL (what scrubbing must fix)."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA secure_delete=OFF")
        self.conn.execute("CREATE TABLE IF NOT EXISTS mem(id TEXT PRIMARY KEY, subject TEXT, text TEXT)")
        self.conn.execute("CREATE VIRTUAL TABLE IF NOT EXISTS mem_fts USING fts5(id, text)")

    def catch_up(self, ledger) -> None:
        self.conn.execute("DELETE FROM mem")
        self.conn.execute("DELETE FROM mem_fts")
        for mid, m in ledger.cube_memories("crm").items():
            if m.text is not None:
                self.conn.execute("INSERT INTO mem VALUES (?,?,?)", (mid, m.subject, m.text))
                self.conn.execute("INSERT INTO mem_fts VALUES (?,?)", (mid, m.text))

    def on_forgotten(self, ledger, event) -> None:
        subject = event.payload["subject"]
        ids = [r[0] for r in self.conn.execute("SELECT id FROM mem WHERE subject = ?", (subject,))]
        self.conn.execute("DELETE FROM mem WHERE subject = ?", (subject,))
        for i in ids:
            self.conn.execute("DELETE FROM mem_fts WHERE id = ?", (i,))


def _files_containing(root: Path, needle: str) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and needle.encode() in p.read_bytes()]


@pytest.fixture
def setup(tmp_path):
    data, _ = init_data_dir(tmp_path / "data")
    ledger = open_ledger(data)
    ids = [
        ledger.add(
            "crm", f"{MARKER} note {i}", actor="agent", subject="ada", metadata={"email": f"ada-{MARKER}@example.com"}
        ).id
        for i in range(20)
    ]
    ledger.update(ids[0], f"{MARKER} updated", actor="agent")
    other = ledger.add("crm", OTHER, actor="agent", subject="bob").id
    plain = ledger.add("crm", "a plain memory", actor="agent").id
    view = PlaintextView(data / "views" / "plain.sqlite")
    view.catch_up(ledger)
    register_forget_hook(view.on_forgotten)
    yield data, ledger, ids, other, plain, view
    unregister_forget_hook(view.on_forgotten)
    view.conn.close()
    ledger.log.close()


def test_forget_leaves_no_trace_in_any_file(setup):
    data, ledger, ids, other, plain, view = setup
    assert _files_containing(data, MARKER)  # the view holds plaintext before
    report = forget(ledger, "ada", actor="dpo", reason="GDPR art. 17 request #42")
    assert report.complete, report.to_dict()
    assert report.sealed_payloads == 21 and report.key_id
    # grep every file, -wal and -shm included
    assert sorted(p.name for p in data.rglob("*") if p.is_file()) and _files_containing(data, MARKER) == []
    assert list(data.rglob("*-wal")) == [] or all(p.stat().st_size == 0 for p in data.rglob("*-wal"))
    assert ledger.log.verify().ok
    m = ledger.get(ids[3])
    assert m.forgotten and m.text is None and m.sealed
    assert ledger.get(other).text == OTHER and not ledger.get(other).forgotten
    assert ledger.get(plain).text == "a plain memory"
    assert [r[0] for r in view.conn.execute("SELECT text FROM mem ORDER BY text")] == sorted([OTHER, "a plain memory"])
    last = list(ledger.events())[-1]
    assert (last.type, last.stream, last.actor) == ("subject.forgotten", "_system", "dpo")
    assert last.payload == {
        "subject": "ada",
        "key_id": report.key_id,
        "reason": "GDPR art. 17 request #42",
        "memory_ids": ids,
    }
    with pytest.raises(StateError):
        ledger.update(ids[3], "new text", actor="agent")


def test_without_scrub_the_deleted_rows_stay_on_disk(setup):
    """Control: the plain DELETE of the stand-in view really leaves bytes (so the test above can fail)."""
    data, ledger, *_ = setup
    report = forget(ledger, "ada", actor="dpo", scrub=False)
    assert report.key_id
    assert _files_containing(data, MARKER)


def test_residue_is_reported(setup):
    data, ledger, *_ = setup
    (data / "exports").mkdir()
    (data / "exports" / "dump.txt").write_text(f"copied out: {MARKER} note 5")
    report = forget(ledger, "ada", actor="dpo")
    assert not report.complete
    assert report.residue == [str(data / "exports" / "dump.txt")]


def test_forget_twice_and_unknown_subject(setup):
    data, ledger, *_ = setup
    first = forget(ledger, "ada", actor="dpo")
    head = ledger.head()
    again = forget(ledger, "ada", actor="dpo")
    assert again.already_forgotten and again.offset == first.offset and ledger.head() == head
    with pytest.raises(NotFound):
        forget(ledger, "nobody", actor="dpo")
    with pytest.raises(InvalidRequest):
        forget(ledger, "", actor="dpo")
    with pytest.raises(InvalidRequest):
        forget(ledger, "bob", actor="")


def test_interrupted_erasure_is_completed(setup):
    data, ledger, *_ = setup
    ledger.sealer.keystore.destroy("ada")  # crashed after destroying the key, before recording it
    report = forget(ledger, "ada", actor="dpo")
    assert not report.already_forgotten and report.key_id is None
    assert list(ledger.events())[-1].type == "subject.forgotten"


def test_subject_can_come_back_with_a_new_key(setup):
    data, ledger, ids, *_ = setup
    forget(ledger, "ada", actor="dpo")
    new = ledger.add("crm", "ada signed up again", actor="agent", subject="ada").id
    assert ledger.get(new).text == "ada signed up again"
    assert ledger.get(ids[1]).forgotten


def test_cli_forget_and_get(tmp_path, capsys):
    d = str(tmp_path / "data")
    assert main(["--data", d, "init"]) == 0
    assert main(["--data", d, "add", "--cube", "c", "--subject", "ada", "--id", "m1", MARKER + " cli"]) == 0
    assert main(["--data", d, "add", "--cube", "c", "--subject", "bob", "--id", "m2", OTHER]) == 0
    capsys.readouterr()
    assert main(["--data", d, "forget", "--subject", "ada", "--actor", "dpo", "--reason", "request"]) == 0
    out = capsys.readouterr().out
    assert "forgot ada" in out
    assert _files_containing(Path(d), MARKER) == []
    assert main(["--data", d, "get", "m1"]) == 0
    assert "[forgotten]" in capsys.readouterr().out
    assert main(["--data", d, "get", "m2"]) == 0
    assert OTHER in capsys.readouterr().out
    assert main(["--data", d, "verify"]) == 0
    assert main(["--data", d, "forget", "--subject", "nobody", "--actor", "dpo"]) == 3


def test_views_of_the_data_directory_are_caught_up(setup, monkeypatch):
    """With a view set installed (projections.view_set), forget catches every view up so they purge."""
    import sys
    import types

    data, ledger, ids, other, plain, view = setup
    calls: list[str] = []

    class FakeViewSet:
        @classmethod
        def open(cls, lg, root, kinds=None):
            calls.append(f"open {root} {kinds}")
            return cls()

        def catch_up(self):
            calls.append("catch_up")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            calls.append("close")

    module = types.ModuleType("projections.view_set")
    module.ViewSet = FakeViewSet  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "projections.view_set", module)
    report = forget(ledger, "ada", actor="dpo")
    assert calls == [f"open {data} None", "catch_up", "close"]
    assert report.complete


def test_merged_memory_and_history_of_a_forgotten_subject(setup):
    data, ledger, ids, *_ = setup
    merged = ledger.merge(ids[1:3], f"{MARKER} merged", actor="agent").id
    assert ledger.get(merged).text == f"{MARKER} merged" and ledger.get(merged).subject == "ada"
    report = forget(ledger, "ada", actor="dpo")
    assert report.complete and report.sealed_payloads == 22
    assert ledger.get(merged).forgotten and all(v.forgotten and v.text is None for v in ledger.history(ids[0]))
    assert _files_containing(data, MARKER) == []
