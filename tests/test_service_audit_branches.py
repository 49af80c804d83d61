"""Audit and branch routes: owners and auditors query trails; branches respect main's roles."""

from __future__ import annotations

import pytest

from tests.service_support import make_service


@pytest.fixture
def svc(tmp_path):
    s = make_service(tmp_path)
    c = s.client
    c.post("/v1/cubes", json={"cube": "a"}, headers=s.h("alice"))
    s.m = c.post(
        "/v1/memories", json={"cube": "a", "text": "secret plan", "metadata": {"p": "x"}}, headers=s.h("alice")
    ).json()
    c.post("/v1/cubes/a/grants", json={"principal": "dave", "role": "auditor"}, headers=s.h("alice"))
    c.get(f"/v1/memories/{s.m['id']}", headers=s.h("alice"))
    return s


def test_audit_trail_for_owner_and_auditor_but_not_others(svc):
    c = svc.client
    r = c.get("/v1/audit", params={"cube": "a"}, headers=svc.h("dave"))
    assert r.status_code == 200, r.text
    entries = r.json()["entries"]
    assert {"memory.added", "access.granted", "memory.read"} <= {e["type"] for e in entries}
    assert "secret plan" not in r.text and '"p"' not in r.text
    r = c.get("/v1/audit", params={"memory": svc.m["id"]}, headers=svc.h("dave"))
    assert r.status_code == 200 and all(svc.m["id"] in e["memory_ids"] for e in r.json()["entries"])
    k = c.get(f"/v1/audit/knowledge/{svc.m['id']}", headers=svc.h("dave")).json()
    assert k["existed"] is True and k["state"]["text"] is None and k["readers"][0]["actor"] == "alice"
    assert c.get("/v1/audit", params={"cube": "a"}, headers=svc.h("bob")).status_code == 404
    assert c.get("/v1/audit", headers=svc.h("dave")).status_code == 422
    assert c.get("/v1/audit", headers=svc.h("root")).status_code == 200


def test_branch_writes_need_main_roles_and_stay_on_the_branch(svc):
    c = svc.client
    r = c.post("/v1/branches", json={"name": "what-if"}, headers=svc.h("alice"))
    assert r.status_code == 201, r.text
    assert r.json()["created_by"] == "alice"
    up = c.put(f"/v1/branches/what-if/memories/{svc.m['id']}", json={"text": "other plan"}, headers=svc.h("alice"))
    assert up.status_code == 200, up.text
    assert c.get(f"/v1/branches/what-if/memories/{svc.m['id']}", headers=svc.h("alice")).json()["text"] == "other plan"
    assert c.get(f"/v1/memories/{svc.m['id']}", headers=svc.h("alice")).json()["text"] == "secret plan"
    # bob has no role on cube a: the branch copy is as invisible to him as main's
    assert c.get(f"/v1/branches/what-if/memories/{svc.m['id']}", headers=svc.h("bob")).status_code == 404
    assert (
        c.put(f"/v1/branches/what-if/memories/{svc.m['id']}", json={"text": "x"}, headers=svc.h("bob")).status_code
        == 404
    )
    assert c.get("/v1/branches/what-if/diff", headers=svc.h("bob")).json() == {
        "branch": "what-if",
        "changes": [],
        "hidden": 1,
    }
    diff = c.get("/v1/branches/what-if/diff", headers=svc.h("alice")).json()["changes"]
    assert diff[0]["id"] == svc.m["id"] and diff[0]["change"] == "changed"
    assert c.post("/v1/branches/what-if/merge", json={}, headers=svc.h("bob")).status_code == 403
    r = c.post("/v1/branches/what-if/merge", json={}, headers=svc.h("alice"))
    assert r.status_code == 200, r.text
    assert c.get(f"/v1/memories/{svc.m['id']}", headers=svc.h("alice")).json()["text"] == "other plan"
    assert c.get("/v1/branches/nope/diff", headers=svc.h("alice")).status_code == 404
