"""Keys live with the shared log (issue 16 defect 10): two app servers (data directories) on one
PostgreSQL log with ``[keys] backend = "postgres"`` read each other's sealed memories, and a ``forget``
on one makes the subject unreadable on the other at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.factory import open_ledger
from ledger.governance.forget import forget
from tests.dist_env import endpoint, unique_name

pytestmark = pytest.mark.integration


def _server(tmp_path: Path, name: str, schema: str, keys: str = "postgres") -> Path:
    data = tmp_path / name
    data.mkdir()
    (data / "memledger.toml").write_text(
        f'[log]\nbackend = "postgres"\ndsn = "{endpoint("postgres")}"\nschema = "{schema}"\n\n'
        f'[keys]\nbackend = "{keys}"\n\n[views]\nvector = "none"\ngraph = "none"\n'
    )
    return data


def test_forget_on_one_server_makes_the_subject_unreadable_on_the_other(tmp_path):
    schema = unique_name("keys")
    a = open_ledger(_server(tmp_path, "a", schema))
    b = open_ledger(_server(tmp_path, "b", schema))
    try:
        ada = a.add("crm", "Ada's phone is 555-0100", "agent", subject="ada")
        bob = a.add("crm", "Bob likes tea", "agent", subject="bob")
        plain = b.add("crm", "office opens at nine", "agent")
        assert b.get(ada.id).text == "Ada's phone is 555-0100"  # sealed on A, opened on B
        assert a.get(plain.id).text == "office opens at nine"  # and the other way round
        forget(a, "ada", actor="dpo", reason="request")
        assert b.opener is not None and b.sealer is not None
        assert b.sealer.keystore.get("ada") is None  # the key is gone for every server
        sealed = next(e for e in b.log.read_refs(ada.id) if e.type == "memory.added").payload
        assert b.opener(sealed["sealed"]) is None  # B cannot open the ciphertext any more
        again = open_ledger(tmp_path / "b")
        try:
            assert again.get(ada.id).text is None and again.get(ada.id).forgotten
            assert again.get(bob.id).text == "Bob likes tea"
        finally:
            again.log.close()
        assert "bob" in b.sealer.keystore.subjects() and "ada" not in b.sealer.keystore.subjects()
        # erasing one memory on B destroys its own key for A too
        from ledger.governance.erase import erase

        erase(b, [bob.id], actor="dpo", reason="request")
        assert a.sealer is not None and a.sealer.vault is not None and a.opener is not None
        key_id = next(k["key_id"] for k in bob_keys(a, bob.id) if k["scope"] == "memory")
        assert not a.sealer.vault.exists(key_id)
        sealed_bob = next(e for e in a.log.read_refs(bob.id) if e.type == "memory.added").payload["sealed"]
        assert a.opener(sealed_bob) is None  # A cannot open it either
    finally:
        a.log.close()
        b.log.drop()
        b.log.close()


def bob_keys(ledger, memory_id):
    """The key references of a memory's first sealed payload."""
    added = next(e for e in ledger.log.read_refs(memory_id) if e.type == "memory.added")
    return added.payload["sealed"]["keys"]


def test_postgres_keys_need_the_postgres_log(tmp_path):
    data = tmp_path / "d"
    data.mkdir()
    (data / "memledger.toml").write_text('[keys]\nbackend = "postgres"\n')
    from ledger.errors import InvalidRequest

    with pytest.raises(InvalidRequest, match='needs \\[log\\] backend = "postgres"'):
        open_ledger(data)


def test_signed_checkpoints_are_shared_by_the_servers_of_one_log(tmp_path, capsys):
    """Issue 16 defect 10: checkpoints signed on one server are listed and verified on another, the
    numbering continues across servers, and every server signs with the same key."""
    from ledger.cli.app import main
    from ledger.governance.checkpoints import Checkpoints

    schema = unique_name("cps")
    a_dir, b_dir = _server(tmp_path, "a", schema), _server(tmp_path, "b", schema)
    a, b = open_ledger(a_dir), open_ledger(b_dir)
    try:
        a.add("notes", "first", "agent")
        first = Checkpoints.for_config(a.config, a.log).create(a.log)
        b.add("notes", "second", "agent")
        on_b = Checkpoints.for_config(b.config, b.log)
        assert [c.seq for c in on_b.list()] == [1]
        second = on_b.create(b.log)
        assert second.seq == 2 and second.key_id == first.key_id
        on_a = Checkpoints.for_config(a.config, a.log)
        assert [c.seq for c in on_a.list()] == [1, 2]
        assert on_a.verify(a.log).ok and on_b.verify(b.log).ok
        assert not (a_dir / "checkpoints.jsonl").exists() and not (b_dir / "checkpoints.jsonl").exists()
        capsys.readouterr()
        assert main(["--data", str(b_dir), "verify", "--json"]) == 0, capsys.readouterr().err
        assert main(["--data", str(a_dir), "keys", "export-public"]) == 0
        assert on_b.signer.public_key_pem(create=False) in capsys.readouterr().out
    finally:
        a.log.close()
        b.log.drop()
        b.log.close()
