"""CLI: cube create/list/show/share/export/import, lifecycle, merge, schedule, chat, kv."""

from __future__ import annotations

import json

import pytest

from tests.cli_helpers import init_data, run


@pytest.fixture
def data(tmp_path, capsys):
    d = init_data(tmp_path, capsys)
    return d


def _add(capsys, data, cube, text, actor="alice", *flags):
    code, out, _ = run(capsys, "--data", data, "add", "--cube", cube, "--actor", actor, "--json", *flags, text)
    assert code == 0
    return json.loads(out)["id"]


def test_cube_commands_and_export_import(tmp_path, data, capsys):
    code, out, _ = run(
        capsys,
        "--data",
        data,
        "cube",
        "create",
        "alice",
        "--owner",
        "alice",
        "--embedder",
        "minilm",
        "--llm",
        "smollm2",
        "--json",
    )
    assert code == 0 and json.loads(out)["embedder"] == "minilm"
    code, _, err = run(capsys, "--data", data, "cube", "create", "alice", "--owner", "bob")
    assert code == 2 and "already exists" in err
    mid = _add(capsys, data, "alice", "Alice likes jazz")
    _add(capsys, data, "bob", "Bob likes rock", "bob")
    code, out, _ = run(capsys, "--data", data, "cube", "share", "alice", "bob", "--actor", "alice", "--json")
    assert code == 0 and json.loads(out)["shared_with"] == ["bob"]
    code, _, err = run(capsys, "--data", data, "cube", "share", "alice", "eve", "--actor", "bob")
    assert code == 2 and "only the owner" in err
    code, out, _ = run(capsys, "--data", data, "cube", "list", "--readable-by", "bob", "--json")
    assert [c["cube"] for c in json.loads(out)] == ["alice", "bob"]
    code, out, _ = run(capsys, "--data", data, "cube", "show", "alice")
    assert code == 0 and "owner=alice" in out and "generated=1" in out

    export = tmp_path / "alice.jsonl"
    code, _, err = run(capsys, "--data", data, "cube", "export", "alice", "-o", str(export))
    assert code == 0 and "exported" in err
    lines = export.read_text().splitlines()
    # header, 3 events, and the memories' own keys (every memory is sealed under one)
    assert json.loads(lines[0])["format"] == "memledger-cube-export" and len(lines) == 5
    assert set(json.loads(lines[-1])) == {"memory_keys"}
    code, out, _ = run(capsys, "--data", data, "cube", "export", "alice")  # to standard output
    assert out.splitlines()[1:] == lines[1:]

    other = str(tmp_path / "other")
    run(capsys, "--data", other, "init")
    code, out, _ = run(capsys, "--data", other, "cube", "import", str(export), "--verify-only")
    assert code == 0 and out.startswith("OK: 3 events")
    code, out, _ = run(capsys, "--data", other, "cube", "import", str(export), "--actor", "ops", "--json")
    assert code == 0 and json.loads(out)["events"] == 3
    code, out, _ = run(capsys, "--data", other, "get", mid, "--json")
    assert json.loads(out)["text"] == "Alice likes jazz"
    # searchable at once through the hybrid search views of the importing ledger
    code, out, _ = run(capsys, "--data", other, "search", "jazz", "--cube", "alice", "--no-vector", "--json")
    assert code == 0 and mid in out
    code, out, _ = run(capsys, "--data", other, "verify")
    assert code == 0
    signed = tmp_path / "signed.jsonl"
    code, _, _ = run(capsys, "--data", data, "cube", "export", "alice", "--sign", "-o", str(signed))
    assert code == 0
    code, out, _ = run(capsys, "--data", data, "keys", "export-public", "--json")
    pem_file = tmp_path / "pub.pem"
    pem_file.write_text(json.loads(out)["pem"])
    code, out, _ = run(
        capsys, "--data", other, "cube", "import", str(signed), "--verify-only", "--public-key", str(pem_file)
    )
    assert code == 0 and "signed checkpoint 1" in out and "(trusted key)" in out
    code, _, err = run(
        capsys, "--data", other, "cube", "import", str(export), "--verify-only", "--public-key", str(pem_file)
    )
    assert code == 2 and "not signed" in err
    bad = tmp_path / "bad.jsonl"
    bad.write_text(export.read_text().replace(mid, "mem_0123456789abcdef"))  # an edited payload
    code, _, err = run(capsys, "--data", str(tmp_path / "other"), "cube", "import", str(bad))
    assert code == 2 and "does not match its hash" in err
    code, _, err = run(capsys, "--data", other, "cube", "import", str(tmp_path / "missing.jsonl"))
    assert code == 2 and "cannot read" in err


def test_lifecycle_and_merge_commands(data, capsys):
    a = _add(capsys, data, "c", "tea is green")
    b = _add(capsys, data, "c", "tea is very green")
    code, out, _ = run(capsys, "--data", data, "lifecycle", a, "activated", "--actor", "ops", "--reason", "hot")
    assert code == 0 and "-> activated" in out
    code, _, err = run(capsys, "--data", data, "lifecycle", a, "bogus", "--actor", "ops")
    assert code == 2 and "unknown lifecycle state" in err
    code, _, err = run(capsys, "--data", data, "lifecycle", a, "merged", "--actor", "ops")
    assert code == 2 and "only through a merge" in err
    code, out, _ = run(capsys, "--data", data, "merge", a, b, "--text", "tea is green", "--actor", "ops", "--json")
    merged = json.loads(out)
    assert code == 0 and merged["sources"] == [a, b]
    code, out, _ = run(capsys, "--data", data, "get", merged["id"], "--json")
    assert json.loads(out)["sources"] == [a, b]
    code, _, err = run(capsys, "--data", data, "lifecycle", a, "activated", "--actor", "ops")
    assert code == 2 and "illegal lifecycle move" in err and "merged -> activated" in err
    code, out, _ = run(capsys, "--data", data, "lifecycle", merged["id"], "frozen", "--actor", "ops")
    code, _, err = run(capsys, "--data", data, "update", merged["id"], "changed", "--actor", "ops")
    assert code == 2 and "frozen" in err


def test_schedule_command(data, capsys):
    a = _add(capsys, data, "c", "the user drinks green tea")
    _add(capsys, data, "c", "the user owns a red bicycle")
    # a near duplicate (add refuses one by default): what the scheduler's merge exists for
    _add(capsys, data, "c", "The user owns a red bicycle!", "alice", "--allow-duplicate")
    for _ in range(3):
        run(capsys, "--data", data, "get", a, "--actor", "reader")
    policy = json.dumps({"stable_for_s": 0, "promote_min_reads": 2, "promote_min_score": 1})
    code, out, _ = run(capsys, "--data", data, "schedule", "--policy", policy, "--dry-run", "--json")
    plan = json.loads(out)
    assert [d["decision"] for d in plan["decisions"]] == ["merge", "promote"]
    code, out, _ = run(capsys, "--data", data, "get", a, "--json")
    assert json.loads(out)["state"] == "generated"  # dry run wrote nothing
    code, out, _ = run(capsys, "--data", data, "schedule", "--policy", policy, "--no-tick", "--json")
    res = json.loads(out)
    assert res["written_events"] == 4
    code, out, _ = run(capsys, "--data", data, "get", a, "--json")
    assert json.loads(out)["state"] == "activated"
    code, out, _ = run(capsys, "--data", data, "schedule", "--verify", str(res["basis_offset"]))
    assert code == 0 and out.startswith("OK: 2 decisions")
    code, _, err = run(capsys, "--data", data, "schedule", "--verify", "999999")
    assert code == 2 and "out of range" in err
    code, _, err = run(capsys, "--data", data, "schedule", "--policy", '{"nope": 1}')
    assert code == 2 and "unknown scheduler policy" in err


def test_chat_and_kv_commands(tmp_path, data, capsys):
    from tests.memos_fixtures import tiny_model

    model_dir = tmp_path / "tiny-model"
    m = tiny_model()
    m.model.save_pretrained(str(model_dir))
    m.tokenizer.save_pretrained(str(model_dir))
    with open(f"{data}/memledger.toml", "a") as fh:
        fh.write(f'\n[llm]\nmodel = "{model_dir}"\nmax_new_tokens = 4\n')
    a = _add(capsys, data, "alice", "Alice is allergic to peanuts")
    run(capsys, "--data", data, "lifecycle", a, "activated", "--actor", "alice")
    code, out, _ = run(capsys, "--data", data, "kv", "build", "--cube", "alice", "--json")
    built = json.loads(out)
    assert code == 0 and built["memory_ids"] == [a] and built["tokens"] > 0
    code, out, err = run(
        capsys,
        "--data",
        data,
        "chat",
        "--cube",
        "alice",
        "--actor",
        "alice",
        "--json",
        "--include-shared",
        "-m",
        "I live in Oslo.",
        "-m",
        "What am I allergic to?",
    )
    turns = [json.loads(x) for x in out.splitlines()]
    assert code == 0, err
    assert len(turns) == 2 and turns[0]["kv_cache"] == built["key"] and turns[0]["cached_tokens"] == built["tokens"]
    assert [f["text"] for f in turns[0]["facts"]] == ["Alice lives in Oslo."]
    import io
    import sys

    old_stdin = sys.stdin
    sys.stdin = io.StringIO("My dog is Rex.\n\nI work at the port.\n")  # a script piped into the chat
    try:
        code, out, _ = run(capsys, "--data", data, "chat", "--cube", "alice", "--actor", "alice", "--json")
    finally:
        sys.stdin = old_stdin
    piped = [json.loads(x) for x in out.splitlines()]
    assert code == 0 and [t["facts"][0]["text"] for t in piped] == ["Alice's dog is Rex.", "Alice works at the port."]
    code, out, _ = run(capsys, "--data", data, "kv", "list", "--json")
    assert [e["key"] for e in json.loads(out)] == [built["key"]]
    code, out, _ = run(capsys, "--data", data, "kv", "clear")
    assert "deleted 1" in out
    with open(f"{data}/memledger.toml", "a") as fh:
        fh.write("\n[kv_cache]\nbudget_bytes = 1\n")
    code, _, err = run(capsys, "--data", data, "chat", "--cube", "alice", "-m", " ")
    assert code == 2 and "non-empty" in err
