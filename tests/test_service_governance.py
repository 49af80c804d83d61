"""Governance over HTTP: subject-sealed adds, forget (admin), checkpoints and proofs with access checks."""

from __future__ import annotations

from pathlib import Path

from tests.service_support import make_service  # noqa: E402


def _files_containing(root: Path, needle: bytes) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_forget_over_http_erases_the_subject_and_keeps_the_chain(tmp_path):
    s = make_service(tmp_path)
    c = s.client
    c.post("/v1/cubes", json={"cube": "crm"}, headers=s.h("alice"))
    secret = "Zanzibar-passport-4417"
    r = c.post(
        "/v1/memories", json={"cube": "crm", "text": f"client {secret}", "subject": "client-7"}, headers=s.h("alice")
    )
    assert r.status_code == 201, r.text
    mid = r.json()["id"]
    assert c.get(f"/v1/memories/{mid}", headers=s.h("alice")).json()["text"] == f"client {secret}"
    assert not _files_containing(s.data, secret.encode())  # sealed at rest
    assert c.post("/v1/subjects/client-7/forget", json={}, headers=s.h("alice")).status_code == 403
    r = c.post("/v1/subjects/client-7/forget", json={"reason": "GDPR art. 17"}, headers=s.h("root"))
    assert r.status_code == 200, r.text
    assert r.json()["complete"] is True
    m = c.get(f"/v1/memories/{mid}", headers=s.h("alice")).json()
    assert m["text"] is None and m["forgotten"] is True
    forgotten = [e for e in s.events() if e.type == "subject.forgotten"]
    assert forgotten and forgotten[-1].actor == "root"
    verify = c.get("/v1/verify", headers=s.h("alice")).json()
    assert verify["ok"] is True and verify["chain"]["ok"] is True


def test_checkpoints_and_proofs_respect_roles(tmp_path):
    s = make_service(tmp_path)
    c = s.client
    c.post("/v1/cubes", json={"cube": "a"}, headers=s.h("alice"))
    w = c.post("/v1/memories", json={"cube": "a", "text": "proof me"}, headers=s.h("alice")).json()
    assert c.post("/v1/checkpoints", headers=s.h("alice")).status_code == 403
    first = c.post("/v1/checkpoints", headers=s.h("root"))
    assert first.status_code == 201, first.text
    c.post("/v1/memories", json={"cube": "a", "text": "later"}, headers=s.h("alice"))
    second = c.post("/v1/checkpoints", headers=s.h("root")).json()
    assert [cp["seq"] for cp in c.get("/v1/checkpoints", headers=s.h("bob")).json()["checkpoints"]] == [
        first.json()["seq"],
        second["seq"],
    ]
    assert "PUBLIC KEY" in c.get("/v1/checkpoints/public-key", headers=s.h("bob")).text
    r = c.get("/v1/proofs/inclusion", params={"offset": w["offset"]}, headers=s.h("alice"))
    assert r.status_code == 200, r.text
    assert r.json()["event"]["offset"] == w["offset"] and r.json()["audit_path"] is not None
    assert c.get("/v1/proofs/inclusion", params={"offset": w["offset"]}, headers=s.h("bob")).status_code == 404
    assert c.get("/v1/proofs/inclusion", params={"offset": 10_000}, headers=s.h("alice")).status_code == 404
    r = c.get("/v1/proofs/consistency", params={"old": first.json()["seq"], "new": second["seq"]}, headers=s.h("bob"))
    assert r.status_code == 200 and r.json()["proof"]
    assert c.get("/v1/verify", headers=s.h("bob")).json()["checkpoints"]["ok"] is True
