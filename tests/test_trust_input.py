"""Issue 11 (trust holes): bad input (item 12), the offline verifier (item 15), file modes (item 17)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_helpers import init_data, run
from tests.live_server import live_server  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]


# -- item 12: bad offsets and times are exit 2 with one line, everywhere ------------------------------
BAD_POINTS = ["²", "٣", "99999999999999999999999", "-99999999999999999999999", "2026-13-45T00:00:00Z", "1e3"]

# every command that takes an offset or a time; {v} is the bad value, {m} a memory id, {c} its cube
POINT_COMMANDS = [
    "get {m} --as-of {v}",
    "history {m} --as-of {v}",
    "log --as-of {v}",
    "log --from {v}",
    "log --to {v}",
    "log --since {v}",
    "log --until {v}",
    "search --no-vector --as-of {v} tea",
    "search --no-vector --branch b1 --as-of {v} tea",
    "rebuild --no-progress --to {v}",
    "restore {m} --to {v} --actor a",
    "restore --cube {c} --to {v} --actor a",
    "audit --since {v}",
    "audit --until {v}",
    "audit --as-of {v}",
    "audit --memory {m} --as-of {v}",
    "provenance {m} --as-of {v}",
    "branch create x --at {v}",
    "branch create x --from b1 --at {v}",
    "get {m} --branch b1 --as-of {v}",
    "cube list --as-of {v}",
    "cube show {c} --as-of {v}",
    "cube export {c} --as-of {v}",
    "proof inclusion {v}",
    "schedule --dry-run --verify {v}",
]


def _head(data: str, capsys) -> int:
    return json.loads(run(capsys, "--data", data, "head", "--json")[1])["offset"]


@pytest.fixture
def ledger_dir(tmp_path, capsys):
    data = init_data(tmp_path, capsys)
    (Path(data) / "memledger.toml").write_text('[views]\nvector = "none"\n')
    code, out, _ = run(capsys, "--data", data, "add", "--cube", "tea", "--actor", "a", "--json", "green tea")
    assert code == 0
    mid = json.loads(out)["id"]
    assert run(capsys, "--data", data, "branch", "create", "b1", "--actor", "a")[0] == 0
    return data, mid


def test_item12_bad_offsets_exit_2_with_one_line(ledger_dir, capsys):
    data, mid = ledger_dir
    failures = []
    for template in POINT_COMMANDS:
        for bad in BAD_POINTS:
            head = _head(data, capsys)
            argv = ["--data", data, *template.format(v=bad, m=mid, c="tea").split()]
            try:
                code, out, err = run(capsys, *argv)
            except BaseException as exc:  # noqa: BLE001 - a traceback is the failure being tested
                capsys.readouterr()
                failures.append(f"{template!r} {bad!r}: raised {type(exc).__name__}: {exc}")
                continue
            lines = err.splitlines()
            if code != 2 or len(lines) != 1 or not lines[0].startswith("error: "):
                failures.append(f"{template!r} {bad!r}: exit {code}, stderr {err[-300:]!r}")
            elif _head(data, capsys) != head:
                failures.append(f"{template!r} {bad!r}: wrote to the log")
    assert not failures, "\n".join(failures)


def test_item12_bad_actor_bytes_and_unknown_memory(ledger_dir, capsys):
    data, mid = ledger_dir
    surrogate = os.fsdecode(b"\xff\xfe")  # what Python makes of undecodable bytes in argv
    head = _head(data, capsys)
    for argv in (
        ["add", "--cube", "tea", "--actor", surrogate, "x"],
        ["update", mid, "--actor", surrogate, "y"],
        ["get", mid, "--actor", surrogate],
        ["add", "--cube", surrogate, "--actor", "a", "x"],
        ["branch", "create", "x", "--actor", surrogate],
    ):
        code, _, err = run(capsys, "--data", data, *argv)
        assert code == 2 and len(err.splitlines()) == 1 and err.startswith("error: "), (argv, code, err)
    assert _head(data, capsys) == head
    # the same bytes in a real process (argv decoded by the interpreter)
    proc = subprocess.run(
        [sys.executable, "-m", "ledger", "--data", data, "add", "--cube", "tea", "--actor", b"\xff\xfe", "x"],
        capture_output=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1 and proc.stderr.startswith(b"error: "), proc
    assert _head(data, capsys) == head
    code, _, err = run(capsys, "--data", data, "audit", "--memory", "nope")
    assert code == 3 and err.startswith("error: ") and len(err.splitlines()) == 1, (code, err)
    code, _, err = run(capsys, "--data", data, "audit", "--memory", "nope", "--as-of", "0")
    assert code == 3 and len(err.splitlines()) == 1, (code, err)
    assert run(capsys, "--data", data, "audit", "--memory", mid)[0] == 0


def test_item12_argument_errors_are_one_line(ledger_dir, capsys):
    data, _ = ledger_dir
    for argv in (
        ["log", "--from", "abc"],
        ["search", "--k", "x", "q"],
        ["audit", "--limit", "many"],
        ["restore", "mem_x"],
        ["nonsense-command"],
    ):
        code, _, err = run(capsys, "--data", data, *argv)
        assert code == 2 and len(err.splitlines()) == 1 and err.startswith("error: "), (argv, code, err)


def test_item12_unexpected_errors_get_their_own_exit_code(ledger_dir, capsys, monkeypatch):
    data, _ = ledger_dir
    import ledger.cli.core_commands as core

    def boom(args):
        raise RuntimeError("something nobody expected")

    monkeypatch.setattr(core, "cmd_head", boom)
    monkeypatch.delenv("MEMLEDGER_DEBUG", raising=False)
    code, _, err = run(capsys, "--data", data, "head")
    assert code not in (0, 1, 2, 3, 4) and err.startswith("error: ") and len(err.splitlines()) == 1, (code, err)
    assert "RuntimeError" in err and "something nobody expected" in err and "MEMLEDGER_DEBUG" in err
    monkeypatch.setenv("MEMLEDGER_DEBUG", "1")
    code2, _, err = run(capsys, "--data", data, "head")
    assert code2 == code and "Traceback" in err and "something nobody expected" in err


def test_item12_service_bad_points_are_4xx(live_server):  # noqa: F811
    s = live_server
    with s.client() as c:
        assert c.post("/v1/cubes", json={"cube": "a"}, headers=s.h("alice")).status_code == 201
        r = c.post("/v1/memories", json={"cube": "a", "text": "green tea"}, headers=s.h("alice"))
        assert r.status_code == 201, r.text
        mid = r.json()["id"]
        for bad in BAD_POINTS:
            for method, url, kw in (
                ("POST", "/v1/branches", {"json": {"name": "x", "at": bad}}),
                ("GET", f"/v1/memories/{mid}", {"params": {"as_of": bad}}),
                ("GET", f"/v1/memories/{mid}/history", {"params": {"as_of": bad}}),
                ("GET", "/v1/cubes/a/memories", {"params": {"as_of": bad}}),
                ("POST", "/v1/search", {"json": {"query": "tea", "as_of": bad}}),
                ("GET", "/v1/audit", {"params": {"cube": "a", "since": bad}}),
                ("GET", "/v1/audit", {"params": {"cube": "a", "until": bad}}),
                ("GET", "/v1/log", {"params": {"as_of": bad}}),
            ):
                r = c.request(method, url, headers=s.h("alice") if "log" not in url else s.h("root"), **kw)
                assert 400 <= r.status_code < 500, (method, url, bad, r.status_code, r.text)
                assert r.json()["error"]["message"], r.text
        assert c.get("/v1/branches", headers=s.h("alice")).json()["branches"] == []


# -- item 17: the data directory is private ---------------------------------------------------------
def _exposed(root: Path) -> list[str]:
    """Files readable or directories accessible by group or others, under (and including) ``root``."""
    out = []
    for path in [root, *sorted(root.rglob("*"))]:
        try:
            mode = path.lstat().st_mode
        except FileNotFoundError:
            continue  # a side file that went away while walking
        if mode & 0o077:
            out.append(f"{path.relative_to(root.parent)} {oct(mode & 0o777)}")
    return out


def test_item17_data_files_are_private(tmp_path, capsys):
    from tests.live_server import LiveServer

    old = os.umask(0o022)  # the usual default: without care every file would be 0644
    try:
        data = init_data(tmp_path, capsys)
        root = Path(data)
        (root / "memledger.toml").write_text('[views.vector]\nembedder = "hashing"\n')
        for argv in (
            ["add", "--cube", "tea", "--actor", "a", "green tea in the morning"],
            ["add", "--cube", "tea", "--actor", "a", "--subject", "s1", "Ada drinks oolong"],
            ["search", "--actor", "a", "tea"],
            ["checkpoint"],
            ["principal", "create", "alice"],
            ["branch", "create", "b1", "--actor", "a"],
            ["add", "--cube", "tea", "--branch", "b1", "--actor", "a", "black tea"],
            ["rebuild", "--no-progress"],
            ["views"],
        ):
            code, _, err = run(capsys, "--data", data, *argv)
            assert code == 0, (argv, err)
        assert {"log.sqlite", "checkpoints.jsonl", "principals.json", "branches.sqlite", "views", "keys"} <= {
            p.name for p in root.iterdir()
        }
        assert {"keyword.sqlite", "graph.sqlite", "vector.sqlite", "embedding_cache.sqlite"} <= {
            p.name for p in (root / "views").iterdir()
        }
        assert _exposed(root) == []
        server = LiveServer.start(root)  # the service, in a process of its own with umask 022
        try:
            server.principal("bob")
            with server.client() as c:
                assert c.post("/v1/cubes", json={"cube": "b"}, headers=server.h("bob")).status_code == 201
                assert (
                    c.post(
                        "/v1/memories", json={"cube": "b", "text": "bob likes mint tea"}, headers=server.h("bob")
                    ).status_code
                    == 201
                )
                assert c.get("/v1/search", params={"q": "mint"}, headers=server.h("bob")).status_code == 200
            side = [p.name for p in root.rglob("*-wal")]
            assert side, "expected open SQLite WAL files while the server runs"
            assert _exposed(root) == []
        finally:
            server.stop()
        assert _exposed(root) == []
        # an existing, wider data directory is tightened on open, with a warning
        root.chmod(0o755)
        code, _, err = run(capsys, "--data", data, "head")
        assert code == 0 and "warning:" in err and "0o755" in err, err
        assert root.stat().st_mode & 0o777 == 0o700
    finally:
        os.umask(old)


def test_item17_python_api_creates_private_files(tmp_path):
    """Without the CLI's umask: the files the library itself creates are 0600 in 0700 directories."""
    from ledger.config import init_data_dir
    from ledger.factory import open_ledger
    from projections.view_set import ViewSet

    old = os.umask(0o022)
    try:
        data, _ = init_data_dir(tmp_path / "data")
        (data / "memledger.toml").write_text('[views.vector]\nembedder = "hashing"\n')
        ledger = open_ledger(data)
        ledger.add("tea", "green tea", "a")
        with ViewSet.open(ledger) as views:
            assert views.search("tea")
            assert _exposed(data) == []  # -wal and -shm files are open here
        ledger.log.close()
        assert _exposed(data) == []
    finally:
        os.umask(old)


# -- item 15: the verifiers report only what the hash and the signature cover -----------------------
@pytest.fixture
def proofs(tmp_path):
    from ledger.config import init_data_dir
    from ledger.factory import open_ledger
    from ledger.governance.checkpoints import Checkpoints
    from ledger.governance.proofs import consistency_proof, inclusion_proof

    d, _ = init_data_dir(tmp_path / "src")
    ledger = open_ledger(d)
    for i in range(5):
        ledger.add("c", f"fact {i}", actor="agent")
    cps = Checkpoints.for_config(ledger.config)
    cps.create(ledger.log)
    ledger.add("c", "later fact", actor="agent")
    cps.create(ledger.log)
    inc = inclusion_proof(ledger.log, cps, 3, seq=1)
    con = consistency_proof(ledger.log, cps, 1, 2)
    pub = cps.signer.public_key()
    yield ledger, cps, inc, con, pub
    ledger.log.close()


def _verify(doc, pub, pinned=None):
    from ledger.governance import verifier

    return verifier.verify_document(json.loads(json.dumps(doc)), pub, pinned)


def test_item15_verifier_rejects_forged_time_and_unhashed_fields(proofs, tmp_path):
    from ledger.governance import verifier

    _, cps, inc, con, pub = proofs
    summary = _verify(inc, pub)
    assert summary["ok"] is True and summary["checkpoint"]["time"] == inc["checkpoint"]["time"]
    _verify(con, pub)

    def forged(doc, path, value):
        doc = json.loads(json.dumps(doc))
        target = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        return doc

    cases = [
        (inc, ("checkpoint", "time"), "1999-01-01T00:00:00Z", "time"),
        (inc, ("checkpoint", "time"), 12, "time"),
        (inc, ("checkpoint", "note"), "signed by the CEO", "note"),
        (inc, ("event", "note"), "approved", "note"),
        (inc, ("event", "time"), "1999-01-01T00:00:00Z", "time"),
        (inc, ("comment",), "trust me", "comment"),
        (con, ("old", "time"), "1999-01-01T00:00:00Z", "time"),
        (con, ("new", "extra"), 1, "extra"),
    ]
    for doc, path, value, word in cases:
        bad = forged(doc, path, value)
        with pytest.raises(verifier.VerificationFailed, match=word):
            _verify(bad, pub)
    # the same derived time, written the way the ledger writes it, is fine on an event too
    from ledger.events import us_to_iso

    _verify(forged(inc, ("event", "time"), us_to_iso(inc["event"]["ts_us"])), pub)
    # a pinned checkpoint is held to the same rules
    pinned = forged(inc["checkpoint"], ("time",), "1999-01-01T00:00:00Z")
    with pytest.raises(verifier.VerificationFailed, match="time"):
        _verify(inc, pub, pinned)
    # and on the command line: exit 1 with the reason
    pem = tmp_path / "key.pem"
    pem.write_text(cps.signer.public_key_pem())
    proof = tmp_path / "proof.json"
    proof.write_text(json.dumps(forged(inc, ("checkpoint", "time"), "1999-01-01T00:00:00Z")))
    proc = subprocess.run(
        [
            sys.executable,
            "-I",
            str(ROOT / "ledger" / "governance" / "verifier.py"),
            str(proof),
            "--public-key",
            str(pem),
            "--json",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1 and json.loads(proc.stdout)["ok"] is False and "time" in proc.stdout, proc


def test_item15_cube_import_rejects_unhashed_fields(tmp_path, capsys):
    import orjson

    from ledger.config import init_data_dir
    from ledger.factory import open_ledger
    from ledger.memos.cube_export import ExportVerificationError, export_cube, import_cube

    src = open_ledger(init_data_dir(tmp_path / "a")[0])
    for i in range(3):
        src.add("alice", f"Alice fact {i}", "alice")
        src.add("bob", f"Bob fact {i}", "bob")
    records = list(export_cube(src, "alice", sign=True))
    dst = open_ledger(init_data_dir(tmp_path / "b")[0])

    def forged(change):
        recs = orjson.loads(orjson.dumps(records))
        change(recs)
        return recs

    cases = [
        (lambda r: r[1]["event"].update(note="approved by the CEO"), "note"),
        (lambda r: r[2]["event"].update(time="1999-01-01T00:00:00Z"), "time"),
        (lambda r: r[2].update(comment="x"), "comment"),
        (lambda r: r[0]["anchor"]["checkpoint"].update(time="1999-01-01T00:00:00Z"), "time"),
        (lambda r: r[0]["anchor"]["checkpoint"].update(note="x"), "note"),
        (lambda r: r[0]["anchor"].update(note="x"), "note"),
        (lambda r: r[0].update(approved_by="x"), "approved_by"),
    ]
    head = dst.head()
    for change, word in cases:
        with pytest.raises(ExportVerificationError, match=word):
            import_cube(dst, forged(change), "importer")
    assert dst.head() == head
    # the CLI refuses the file with one line (exit 2) and imports nothing
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in forged(cases[0][0])))
    code, _, err = run(capsys, "--data", str(tmp_path / "b"), "cube", "import", str(bad), "--actor", "i")
    assert code == 2 and "note" in err and len(err.splitlines()) == 1, err
    assert dst.head() == head
    assert import_cube(dst, records, "importer").events == records[0]["events"]
