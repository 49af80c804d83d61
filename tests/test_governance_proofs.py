"""Exported proofs and the standalone verifier: genuine proofs pass, forged ones fail, and the
verifier runs as a single copied file that imports nothing from the project."""

from __future__ import annotations

import ast
import base64
import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.canonical import canonical_bytes
from ledger.cli.app import main
from ledger.config import init_data_dir
from ledger.errors import InvalidRequest, NotFound
from ledger.factory import open_ledger
from ledger.governance import verifier
from ledger.governance.checkpoints import Checkpoints
from ledger.governance.merkle import MerkleTree, root_from_inclusion
from ledger.governance.merkle import verify_consistency as core_verify_consistency
from ledger.governance.proofs import LogDiverged, consistency_proof, inclusion_proof

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def env(tmp_path):
    d, _ = init_data_dir(tmp_path / "data")
    ledger = open_ledger(d)
    ledger.add("c", "first", actor="agent", metadata={"score": 2.5e-05, "n": 10**18, "é": [None, True, 1e-7]})
    ledger.add("c", "sealed one", actor="agent", subject="ada")
    for i in range(9):
        ledger.add("c", f'm{i}\n\t"quoted" \u2028 ✓', actor="agent")
    cps = Checkpoints.for_config(ledger.config)
    cps.create(ledger.log)  # 12 events (its record is offset 12)
    for i in range(6):
        ledger.add("c", f"later {i}", actor="agent")
    cps.create(ledger.log)  # 19 events (its record is offset 19)
    pub = cps.signer.public_key()
    yield ledger, cps, pub
    ledger.log.close()


def _ok(doc, pub) -> bool:
    try:
        verifier.verify_document(copy.deepcopy(doc), pub)
    except verifier.VerificationFailed:
        return False
    return True


def test_genuine_inclusion_proofs_verify_for_every_event(env):
    ledger, cps, pub = env
    for offset in range(18):
        doc = json.loads(json.dumps(inclusion_proof(ledger.log, cps, offset)))  # through plain JSON
        assert _ok(doc, pub), offset
        assert doc["checkpoint"]["seq"] == 2  # the newest checkpoint covering the offset
    sealed = inclusion_proof(ledger.log, cps, 2)
    assert "sealed" in sealed["event"]["payload"] and "text" not in sealed["event"]["payload"]


def test_forged_inclusion_proofs_are_rejected(env):
    ledger, cps, pub = env
    doc = inclusion_proof(ledger.log, cps, 5, seq=2)
    assert _ok(doc, pub)
    # wrong leaf: content changed (with or without updating the claimed hash)
    bad = copy.deepcopy(doc)
    bad["event"]["payload"]["text"] = "forged"
    assert not _ok(bad, pub)
    bad["event"]["hash"] = verifier.event_hash(bad["event"])
    assert not _ok(bad, pub)
    bad = copy.deepcopy(doc)
    bad["event"]["actor"] = "mallory"
    assert not _ok(bad, pub)
    # another genuine event presented at this index
    other = inclusion_proof(ledger.log, cps, 6, seq=2)
    assert not _ok(dict(doc, event=other["event"]), pub)
    assert not _ok(dict(other, leaf_index=5), pub)
    # wrong path
    for i in range(len(doc["audit_path"])):
        bad = copy.deepcopy(doc)
        bad["audit_path"][i] = ("0" if bad["audit_path"][i][0] != "0" else "1") + bad["audit_path"][i][1:]
        assert not _ok(bad, pub)
    assert not _ok(dict(doc, audit_path=doc["audit_path"][:-1]), pub)
    assert not _ok(dict(doc, audit_path=doc["audit_path"] + [doc["checkpoint"]["root"]]), pub)
    assert not _ok(dict(doc, audit_path="nope"), pub)
    # wrong signature / checkpoint content
    bad = copy.deepcopy(doc)
    sig = bytearray(base64.b64decode(bad["checkpoint"]["signature"]))
    sig[0] ^= 1
    bad["checkpoint"]["signature"] = base64.b64encode(bytes(sig)).decode()
    assert not _ok(bad, pub)
    bad = copy.deepcopy(doc)
    bad["checkpoint"]["root"] = MerkleTree([b"x"]).root().hex()
    assert not _ok(bad, pub)
    assert not _ok(dict(doc, tree_size=17), pub)
    # wrong key: a checkpoint re-signed by another key, verified with either key
    other_key = Ed25519PrivateKey.generate()
    assert not _ok(doc, other_key.public_key())
    # malformed
    assert not _ok(dict(doc, format="something-else"), pub)
    assert not _ok({k: v for k, v in doc.items() if k != "checkpoint"}, pub)


def test_consistency_proofs(env):
    ledger, cps, pub = env
    doc = json.loads(json.dumps(consistency_proof(ledger.log, cps, 1, 2)))
    assert _ok(doc, pub)
    assert _ok(consistency_proof(ledger.log, cps, 2, 2), pub)
    assert not _ok(dict(doc, old=doc["new"], new=doc["old"]), pub)
    bad = copy.deepcopy(doc)
    bad["proof"][0] = "00" * 32
    assert not _ok(bad, pub)
    assert not _ok(dict(doc, proof=doc["proof"][1:]), pub)
    assert not _ok(doc, Ed25519PrivateKey.generate().public_key())
    with pytest.raises(InvalidRequest):
        consistency_proof(ledger.log, cps, 2, 1)
    with pytest.raises(NotFound):
        consistency_proof(ledger.log, cps, 1, 9)


def test_no_proof_for_a_rewritten_log(env, tmp_path):
    ledger, cps, pub = env
    import sqlite3

    conn = sqlite3.connect(ledger.log.path)
    with conn:
        conn.execute("UPDATE events SET hash = ? WHERE offset = 3", ("ab" * 32,))
    conn.close()
    with pytest.raises(LogDiverged):
        inclusion_proof(ledger.log, cps, 5, seq=1)
    with pytest.raises(LogDiverged):
        consistency_proof(ledger.log, cps, 1, 2)


def test_bad_offsets_and_checkpoints(env):
    ledger, cps, pub = env
    with pytest.raises(NotFound):
        inclusion_proof(ledger.log, cps, ledger.head() + 1)
    with pytest.raises(NotFound):
        inclusion_proof(ledger.log, cps, -1)
    with pytest.raises(InvalidRequest):
        inclusion_proof(ledger.log, cps, 15, seq=1)
    written = ledger.add("c", "after all checkpoints", actor="agent")
    doc = inclusion_proof(ledger.log, cps, written.offset)  # makes checkpoint #3
    assert doc["checkpoint"]["seq"] == 3 and _ok(doc, pub)


def test_verifier_imports_only_stdlib_and_cryptography():
    tree = ast.parse((ROOT / "ledger" / "governance" / "verifier.py").read_text())
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            roots.add((node.module or "").split(".")[0])
    assert "ledger" not in roots and "orjson" not in roots
    assert roots - set(sys.stdlib_module_names) == {"cryptography"}


def test_copied_verifier_runs_alone(env, tmp_path):
    ledger, cps, pub = env
    elsewhere = tmp_path / "auditor"
    elsewhere.mkdir()
    shutil.copy(ROOT / "ledger" / "governance" / "verifier.py", elsewhere / "verify_memledger.py")
    key = elsewhere / "key.pem"
    key.write_text(cps.signer.public_key_pem())
    proof = elsewhere / "proof.json"
    proof.write_text(json.dumps(inclusion_proof(ledger.log, cps, 2)))
    raw_hex = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-I", "verify_memledger.py", *args],
            cwd=elsewhere,
            capture_output=True,
            text=True,
            timeout=60,
        )

    r = run("proof.json", "--public-key", "key.pem")
    assert r.returncode == 0 and r.stdout.startswith("VERIFIED"), r.stderr
    assert run("proof.json", "--public-key", raw_hex).returncode == 0
    other = (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        .hex()
    )
    r = run("proof.json", "--public-key", other)
    assert r.returncode == 1 and "NOT VERIFIED" in r.stdout
    doc = json.loads(proof.read_text())
    doc["event"]["ts_us"] += 1
    proof.write_text(json.dumps(doc))
    assert run("proof.json", "--public-key", "key.pem").returncode == 1
    proof.write_text("{not json")
    assert run("proof.json", "--public-key", "key.pem").returncode == 2
    assert run("proof.json", "--public-key", "zz").returncode == 2


def test_cli_proof_round_trip(env, tmp_path, capsys):
    ledger, cps, pub = env
    d = str(ledger.config.data_dir)
    assert main(["--data", d, "proof", "inclusion", "4", "--checkpoint", "1"]) == 0
    proof = tmp_path / "p.json"
    proof.write_text(capsys.readouterr().out)
    assert main(["--data", d, "verify-proof", str(proof)]) == 0
    assert "VERIFIED" in capsys.readouterr().out
    assert main(["--data", d, "proof", "consistency", "1", "2"]) == 0
    proof.write_text(capsys.readouterr().out)
    assert main(["--data", d, "verify-proof", str(proof), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    assert main(["--data", d, "keys", "export-public", "--format", "hex"]) == 0
    hexkey = capsys.readouterr().out.strip()
    assert main(["--data", d, "verify-proof", str(proof), "--public-key", hexkey]) == 0
    capsys.readouterr()
    assert main(["--data", d, "proof", "inclusion", "99"]) == 3
    assert main(["--data", d, "proof", "consistency", "2", "1"]) == 2
    r = subprocess.run(
        [sys.executable, "-m", "ledger.governance.verifier", str(proof), "--public-key", hexkey],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | st.text(),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(), c, max_size=4),
    max_leaves=15,
)


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_verifier_canonical_encoding_equals_the_ledgers(value):
    assert verifier.canonical(value).encode() == canonical_bytes(value)


@settings(max_examples=100, deadline=None)
@given(n=st.integers(1, 200), data=st.data())
def test_verifier_merkle_code_agrees_with_the_core(n, data):
    tree = MerkleTree([f"x{i}".encode() for i in range(n)])
    i = data.draw(st.integers(0, n - 1))
    old = data.draw(st.integers(0, n))
    path = tree.inclusion_proof(i)
    assert verifier.root_from_inclusion(i, n, tree.leaf(i), path) == root_from_inclusion(i, n, tree.leaf(i), path)
    proof = tree.consistency_proof(old)
    assert verifier.verify_consistency(old, n, tree.root(old), tree.root(), proof) is True
    assert core_verify_consistency(old, n, tree.root(old), tree.root(), proof) is True
    if proof:
        assert not verifier.verify_consistency(old, n, tree.root(old), tree.root(), proof[:-1])


def test_pinned_checkpoint(env, tmp_path):
    ledger, cps, pub = env
    first, second = (c.to_dict() for c in cps.list())
    assert verifier.verify_document(consistency_proof(ledger.log, cps, 1, 2), pub, pinned=first)["ok"]
    with pytest.raises(verifier.VerificationFailed, match="pinned"):
        verifier.verify_document(consistency_proof(ledger.log, cps, 2, 2), pub, pinned=first)
    doc = inclusion_proof(ledger.log, cps, 3, seq=1)
    assert verifier.verify_document(doc, pub, pinned=first)["ok"]
    with pytest.raises(verifier.VerificationFailed, match="pinned"):
        verifier.verify_document(doc, pub, pinned=second)
    forged = dict(first, root="00" * 32)
    with pytest.raises(verifier.VerificationFailed, match="pinned checkpoint signature"):
        verifier.verify_document(doc, pub, pinned=forged)
    saved = tmp_path / "saved.json"
    saved.write_text(json.dumps(first))
    proof = tmp_path / "p.json"
    proof.write_text(json.dumps(consistency_proof(ledger.log, cps, 1, 2)))
    key = tmp_path / "k.pem"
    key.write_text(cps.signer.public_key_pem())
    assert verifier.main([str(proof), "--public-key", str(key), "--checkpoint", str(saved)]) == 0
    saved.write_text(json.dumps(second))
    assert verifier.main([str(proof), "--public-key", str(key), "--checkpoint", str(saved)]) == 1


def test_proof_of_a_forgotten_subjects_event_still_verifies(env):
    from ledger.governance.forget import forget

    ledger, cps, pub = env
    before = inclusion_proof(ledger.log, cps, 2, seq=1)
    forget(ledger, "ada", actor="dpo")
    after = inclusion_proof(ledger.log, cps, 2, seq=1)
    assert after == before and _ok(after, pub)
    cp = cps.create(ledger.log)
    assert _ok(consistency_proof(ledger.log, cps, 1, cp.seq), pub)
