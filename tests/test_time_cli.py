def test_lifecycle_and_merge_on_a_branch_leave_main_untouched(tmp_path, capsys):
    import json as _json

    from ledger.cli.app import main as cli

    d = str(tmp_path / "d")
    assert cli(["--data", d, "init"]) == 0
    capsys.readouterr()
    ids = []
    for text in ("Bob likes tea", "Bob likes green tea"):
        assert cli(["--data", d, "add", "--cube", "c", "--actor", "a", "--json", text]) == 0
        ids.append(_json.loads(capsys.readouterr().out)["id"])
    assert cli(["--data", d, "branch", "create", "b", "--at", "2", "--actor", "a"]) == 0
    assert cli(["--data", d, "lifecycle", ids[0], "activated", "--actor", "a", "--branch", "b"]) == 0
    assert cli(["--data", d, "merge", *ids, "--text", "Bob likes green tea", "--actor", "a", "--branch", "b"]) == 0
    capsys.readouterr()
    assert cli(["--data", d, "get", ids[0], "--json", "--branch", "b"]) == 0
    assert _json.loads(capsys.readouterr().out)["state"] == "merged"
    assert cli(["--data", d, "get", ids[0], "--json"]) == 0
    assert _json.loads(capsys.readouterr().out)["state"] == "generated"
