"""Issue 12: redaction masks a span and erases every earlier version's text; lineage shows sources and
descendants; a subject access export verifies offline and a tampered line fails."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ledger.errors import InvalidRequest, StateError
from ledger.governance.checkpoints import Checkpoints
from ledger.governance.redact import MASK, masked, redact
from ledger.governance.subject_export import export_subject
from ledger.governance.subject_verifier import verify_subject_export
from ledger.governance.verifier import VerificationFailed, load_public_key
from ledger.timemachine.lineage import lineage
from projections.view_set import ViewSet
from tests.service_support import make_service

ROOT = Path(__file__).resolve().parents[1]
PIN = "PIN 90817263"


def _files_with(root: Path, needle: str) -> list[str]:
    return sorted(str(p) for p in root.rglob("*") if p.is_file() and needle.encode() in p.read_bytes())


def test_redaction_masks_the_span_and_erases_the_earlier_versions(data_dir_ledger):
    led = data_dir_ledger
    root = led.config.data_dir
    m = led.add("c", f"my {PIN} and I like jazz", "agent", metadata={"user_id": "u1"})
    led.update(m.id, f"my {PIN} and I like jazz and blues", "agent", metadata={"user_id": "u1"})
    derived = led.merge([m.id, led.add("c", "jazz is on fridays", "agent").id], f"{PIN}; jazz on fridays", "agent")
    with ViewSet.open(led, kinds=["keyword", "graph"]) as views:
        views.catch_up()
    assert _files_with(root, PIN)
    start = f"my {PIN}".index("PIN")
    report = redact(led, m.id, [(start, start + len(PIN))], "dpo", "customer asked")
    assert report.complete, report.to_dict()
    now = led.get(m.id)
    assert now.text == f"my {MASK} and I like jazz and blues" and now.metadata == {"user_id": "u1"}
    assert {v.text for v in led.history(m.id)[:-1]} == {None}  # every earlier version: unreadable
    assert led.get(derived.id).text is None  # derived from the unmasked text: unreadable too
    assert _files_with(root, PIN) == []
    assert led.log.verify().ok
    with ViewSet.open(led, kinds=["keyword", "graph"]) as views:
        assert [h.memory_id for h in views.search("blues", cube="c", all_states=True)] == [
            m.id
        ]  # merged: hidden by default


def test_spans_are_checked():
    assert masked("abcdef", [(1, 3), (2, 4)]) == (f"a{MASK}ef", [(1, 4)])
    for bad in ([], [(3, 3)], [(-1, 2)]):
        with pytest.raises(InvalidRequest):
            masked("abcdef", bad)
    with pytest.raises(StateError, match="6 characters"):
        masked("abcdef", [(0, 99)])


def test_lineage_shows_sources_descendants_and_artifacts(data_dir_ledger):
    led = data_dir_ledger
    a = led.add("c", "alpha source memory", "agent").id
    b = led.add("c", "beta source memory", "agent").id
    ab = led.merge([a, b], "alpha and beta", "agent").id
    c = led.add("c", "gamma memory", "agent").id
    top = led.merge([ab, c], "alpha beta gamma", "agent").id
    out = lineage(led, ab)
    assert {(e.parent, e.child) for e in out.sources} == {(a, ab), (b, ab)}
    assert [(e.parent, e.child) for e in out.descendants] == [(ab, top)]
    deep = lineage(led, top, depth=2)
    assert {e.parent for e in deep.sources} == {ab, c, a, b}
    assert {(e.parent, e.child) for e in lineage(led, top, depth=1).sources} == {(ab, top), (c, top)}
    with ViewSet.open(led) as views:
        views.catch_up()
    kinds = {x["kind"] for x in lineage(led, a).artifacts}
    assert kinds == {"embedding"}  # the vector view's embedding of the memory's text
    assert lineage(led, ab, as_of=led.get(top).created_offset - 1).descendants == []  # as of before the top merge


def test_subject_export_verifies_offline_and_a_tampered_line_fails(data_dir_ledger, tmp_path):
    led = data_dir_ledger
    a = led.add("crm", "alice lives at 12 rue Lilas", "agent", subject="alice").id
    b = led.add("crm", "alice prefers phone calls", "agent", subject="alice").id
    c = led.add("crm", "alice works at the harbour office", "agent", subject="alice").id
    bob = led.add("crm", "bob lives in Oslo", "agent", subject="bob").id
    led.get(a, actor="support")  # an audited read: part of what the ledger holds about alice
    merged = led.merge([a, b], "alice: 12 rue Lilas, prefers phone calls", "agent").id
    both = led.merge([c, bob], "alice and bob share the harbour office", "agent")  # also about bob
    lines = [json.dumps(r) for r in export_subject(led, "alice", sign=True, actor="dpo")]
    export = tmp_path / "alice.jsonl"
    export.write_text("\n".join(lines) + "\n")
    key = tmp_path / "key.pem"
    key.write_text(Checkpoints.for_config(led.config).signer.public_key_pem(create=False))
    proc = subprocess.run(
        [sys.executable, "-m", "ledger.governance.subject_verifier", str(export), "--public-key", str(key), "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    assert result["verified_contents"] == 4 and result["withheld"] == 1  # the memory shared with bob is withheld
    records = [json.loads(x) for x in lines]
    types = [r["event"]["type"] for r in records[1:]]
    assert "memory.read" in types and types.count("memory.merged") == 2
    ids = {r["event"]["payload"].get("memory_id") for r in records[1:]}
    assert {a, b, c, merged, both.id} <= ids and bob not in ids and "Oslo" not in "\n".join(lines)
    reads = [e for e in led.events() if e.type == "memory.read" and e.payload["operation"] == "subject-export"]
    assert reads and reads[-1].actor == "dpo"
    public = load_public_key(str(key))
    for tamper in ("content", "event", "proof"):
        bad = json.loads(json.dumps(records))
        rec = next(r for r in bad[1:] if "content" in r)
        if tamper == "content":
            rec["content"]["text"] = "alice lives somewhere else"
        elif tamper == "event":
            rec["event"]["actor"] = "someone-else"
        else:
            rec["proof"][0] = "00" * 32
        with pytest.raises(VerificationFailed):
            verify_subject_export(bad, public)


def test_http_lineage_and_subject_export(tmp_path):
    s = make_service(tmp_path)
    c = s.client
    c.post("/v1/cubes", json={"cube": "w"}, headers=s.h("alice"))
    x = c.post("/v1/memories", json={"cube": "w", "text": "first fact", "subject": "zoe"}, headers=s.h("alice")).json()
    y = c.post("/v1/memories", json={"cube": "w", "text": "second fact"}, headers=s.h("alice")).json()
    m = c.post("/v1/memories/merge", json={"sources": [x["id"], y["id"]], "text": "both facts"}, headers=s.h("alice"))
    r = c.get(f"/v1/memories/{x['id']}/lineage", headers=s.h("alice"))
    assert r.status_code == 200 and [e["child"] for e in r.json()["descendants"]] == [m.json()["id"]]
    assert c.get(f"/v1/memories/{x['id']}/lineage", headers=s.h("bob")).status_code == 404
    assert c.get("/v1/subjects/zoe/export", headers=s.h("alice")).status_code == 403
    r = c.get("/v1/subjects/zoe/export?sign=true", headers=s.h("root"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    records = [json.loads(x) for x in r.text.splitlines()]
    key = load_public_key(c.get("/v1/checkpoints/public-key", headers=s.h("root")).text)
    assert verify_subject_export(records, key)["records"] == len(records) - 1
