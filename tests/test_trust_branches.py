"""Issue 11 (trust holes), item 9: writing to, forking from, merging and dropping a branch needs its
creator's consent (a role granted on the branch) or an admin, so nobody can block another's branch."""

from __future__ import annotations

import json

import pytest

from ledger.errors import AccessDenied, StateError
from tests.cli_helpers import init_data, run
from tests.live_server import live_server  # noqa: F401


@pytest.fixture
def ledger(data_dir_ledger):
    data_dir_ledger.add("alices", "alice plans a trip", "alice")
    data_dir_ledger.add("bobs", "bob has a cat", "bob")
    return data_dir_ledger


def _denials(led, start: int = 0) -> list[dict]:
    return [e.payload for e in led.events(start) if e.type == "access.denied"]


def test_item9_branch_writes_need_consent_in_the_python_api(ledger):
    from ledger.timemachine.branch_merge import merge
    from ledger.timemachine.branches import Branches

    b = Branches(ledger)
    b.create("plan", None, "alice")
    mark = ledger.head() + 1
    # the block of issue 11: bob writes his own cube on alice's branch, then forks a child from it
    with pytest.raises(AccessDenied, match="plan"):
        b.ledger("plan").add("bobs", "bob was here", "bob")
    with pytest.raises(AccessDenied, match="plan"):
        b.create("kid", None, "bob", from_branch="plan")
    for attempt in (
        lambda: b.drop("plan", "bob"),
        lambda: merge(b, "plan", "bob"),
        lambda: b.grant("plan", "bob", "writer", "bob"),
    ):
        with pytest.raises(AccessDenied):
            attempt()
    assert b.store.event_count("plan") == 0 and [x["name"] for x in b.list()] == ["plan"]
    denied = _denials(ledger, mark)
    assert len(denied) == 5 and all(d["principal"] == "bob" and "plan" in d["reason"] for d in denied)
    # alice can work on, merge and drop her branch as before
    b.ledger("plan").add("alices", "alice books a train", "alice")
    assert merge(b, "plan", "alice").events
    # with alice's consent (a writer role on the branch) bob may write and fork ...
    b.create("plan2", None, "alice")
    granted = b.grant("plan2", "bob", "writer", "alice")
    assert granted is not None and granted.type == "branch.granted" and granted.stream == "_system"
    assert b.grant("plan2", "bob", "writer", "alice") is None  # already held
    b.ledger("plan2").add("bobs", "bob was here", "bob")
    b.create("kid", None, "bob", from_branch="plan2")
    b.ledger("kid").add("bobs", "bob on the child", "bob")
    # ... but not merge, drop or grant on it (owner only), and alice cannot write his child branch
    for attempt in (
        lambda: b.drop("plan2", "bob"),
        lambda: merge(b, "plan2", "bob"),
        lambda: b.grant("plan2", "carol", "writer", "bob"),
        lambda: b.ledger("kid").add("alices", "x", "alice"),
    ):
        with pytest.raises(AccessDenied):
            attempt()
    # a child no longer makes its parent un-droppable: refused by default, naming it, and dropped
    # together with its parent when the owner of the parent says so
    with pytest.raises(StateError, match="kid"):
        b.drop("plan2", "alice")
    dropped = b.drop("plan2", "alice", cascade=True)
    assert dropped.name == "plan2" and [x["name"] for x in b.list()] == ["plan"]  # plan: merged
    drops = [e for e in ledger.events(mark) if e.type == "branch.dropped"]
    assert [e.payload["name"] for e in drops] == ["kid", "plan2"] and {e.actor for e in drops} == {"alice"}
    # a revoked role stops writes at once; a merge into a parent needs the right to write it
    b.create("plan3", None, "alice")
    b.grant("plan3", "bob", "writer", "alice")
    b.create("kid3", None, "bob", from_branch="plan3")
    b.ledger("kid3").add("bobs", "bob on kid3", "bob")
    b.revoke("plan3", "bob", "writer", "alice")
    with pytest.raises(AccessDenied):
        b.ledger("plan3").add("bobs", "again", "bob")
    with pytest.raises(AccessDenied):
        merge(b, "kid3", "bob")
    b.grant("plan3", "bob", "writer", "alice")
    assert merge(b, "kid3", "bob").into == "plan3"
    # an admin may do anything
    admin = Branches(ledger, is_admin=lambda name: name == "root")
    admin.ledger("plan3").add("alices", "root fixes a typo", "root")
    admin.drop("plan3", "root", cascade=True)
    assert [x["name"] for x in admin.list()] == ["plan"]


def test_item9_branch_consent_over_http(live_server):  # noqa: F811
    s = live_server
    with s.client() as c:
        for who, cube in (("alice", "alices"), ("bob", "bobs")):
            assert c.post("/v1/cubes", json={"cube": cube}, headers=s.h(who)).status_code == 201
        bob_mem = c.post("/v1/memories", json={"cube": "bobs", "text": "bob has a cat"}, headers=s.h("bob")).json()
        assert c.post("/v1/branches", json={"name": "plan"}, headers=s.h("alice")).status_code == 201
        # bob may write his cube on main, but not on alice's branch, nor fork from it
        r = c.post("/v1/branches/plan/memories", json={"cube": "bobs", "text": "bob was here"}, headers=s.h("bob"))
        assert r.status_code == 403, r.text
        r = c.put(f"/v1/branches/plan/memories/{bob_mem['id']}", json={"text": "x"}, headers=s.h("bob"))
        assert r.status_code == 403, r.text
        r = c.post("/v1/branches", json={"name": "kid", "from_branch": "plan"}, headers=s.h("bob"))
        assert r.status_code == 403, r.text
        assert c.delete("/v1/branches/plan", headers=s.h("bob")).status_code == 403
        assert (
            c.post(
                "/v1/branches/plan/grants", json={"principal": "bob", "role": "writer"}, headers=s.h("bob")
            ).status_code
            == 403
        )
        # so alice can merge and drop her branches
        r = c.post("/v1/branches/plan/memories", json={"cube": "alices", "text": "a trip"}, headers=s.h("alice"))
        assert r.status_code == 201, r.text
        r = c.post("/v1/branches/plan/merge", json={}, headers=s.h("alice"))
        assert r.status_code == 200, r.text
        # consent: alice grants bob writer on plan2; he writes and forks; she still drops it (cascade)
        assert c.post("/v1/branches", json={"name": "plan2"}, headers=s.h("alice")).status_code == 201
        r = c.post("/v1/branches/plan2/grants", json={"principal": "bob", "role": "writer"}, headers=s.h("alice"))
        assert r.status_code == 201 and r.json()["changed"] is True, r.text
        assert (
            c.post(
                "/v1/branches/plan2/grants", json={"principal": "nobody", "role": "writer"}, headers=s.h("alice")
            ).status_code
            == 404
        )
        assert (
            c.post(
                "/v1/branches/plan2/grants", json={"principal": "bob", "role": "boss"}, headers=s.h("alice")
            ).status_code
            == 422
        )
        r = c.post("/v1/branches/plan2/memories", json={"cube": "bobs", "text": "bob was here"}, headers=s.h("bob"))
        assert r.status_code == 201, r.text
        r = c.post("/v1/branches", json={"name": "kid", "from_branch": "plan2"}, headers=s.h("bob"))
        assert r.status_code == 201, r.text
        listed = {x["name"]: x for x in c.get("/v1/branches", headers=s.h("alice")).json()["branches"]}
        assert listed["plan2"]["grants"] == {"bob": ["writer"]} and listed["kid"]["created_by"] == "bob"
        r = c.delete("/v1/branches/plan2", headers=s.h("alice"))
        assert r.status_code == 409 and "kid" in r.json()["error"]["message"], r.text
        r = c.delete("/v1/branches/plan2", params={"cascade": "true"}, headers=s.h("alice"))
        assert r.status_code == 200, r.text
        assert [x["name"] for x in c.get("/v1/branches", headers=s.h("alice")).json()["branches"]] == ["plan"]
        # revoking takes effect at once; an admin may always act
        assert c.post("/v1/branches", json={"name": "plan3"}, headers=s.h("alice")).status_code == 201
        c.post("/v1/branches/plan3/grants", json={"principal": "bob", "role": "writer"}, headers=s.h("alice"))
        assert c.delete("/v1/branches/plan3/grants/bob/writer", headers=s.h("alice")).status_code == 200
        assert (
            c.post("/v1/branches/plan3/memories", json={"cube": "bobs", "text": "x"}, headers=s.h("bob")).status_code
            == 403
        )
        assert c.delete("/v1/branches/plan3", headers=s.h("root")).status_code == 200
        # every refusal and every grant is in the log
        log = c.get("/v1/log", params={"stream": "_system", "limit": 1000}, headers=s.h("root")).json()["events"]
        types = [e["type"] for e in log]
        assert types.count("branch.granted") == 2 and types.count("branch.revoked") == 1
        assert sum(1 for e in log if e["type"] == "access.denied" and e["payload"]["principal"] == "bob") >= 5


def test_item9_cli_branch_grants_and_cascading_drop(tmp_path, capsys):
    data = init_data(tmp_path, capsys)
    assert run(capsys, "--data", data, "add", "--cube", "bobs", "--actor", "bob", "bob has a cat")[0] == 0
    assert run(capsys, "--data", data, "branch", "create", "plan", "--actor", "alice")[0] == 0
    code, _, err = run(capsys, "--data", data, "add", "--cube", "bobs", "--branch", "plan", "--actor", "bob", "x")
    assert code == 2 and "plan" in err and len(err.splitlines()) == 1, err
    code, _, err = run(capsys, "--data", data, "branch", "create", "kid", "--from", "plan", "--actor", "bob")
    assert code == 2 and len(err.splitlines()) == 1, err
    code, out, _ = run(
        capsys,
        "--data",
        data,
        "branch",
        "grant",
        "plan",
        "--principal",
        "bob",
        "--role",
        "writer",
        "--actor",
        "alice",
        "--json",
    )
    assert code == 0 and json.loads(out)["changed"] is True
    assert run(capsys, "--data", data, "add", "--cube", "bobs", "--branch", "plan", "--actor", "bob", "x")[0] == 0
    assert run(capsys, "--data", data, "branch", "create", "kid", "--from", "plan", "--actor", "bob")[0] == 0
    code, _, err = run(capsys, "--data", data, "branch", "drop", "plan", "--actor", "bob")
    assert code == 2 and len(err.splitlines()) == 1, err
    code, _, err = run(capsys, "--data", data, "branch", "drop", "plan", "--actor", "alice")
    assert code == 2 and "kid" in err and "--cascade" in err, err
    code, out, _ = run(capsys, "--data", data, "branch", "drop", "plan", "--cascade", "--actor", "alice", "--json")
    assert code == 0 and json.loads(out) == {"dropped": "plan", "nested": ["kid"]}, out
    code, out, _ = run(capsys, "--data", data, "branch", "list", "--json")
    assert json.loads(out) == []
    code, out, _ = run(capsys, "--data", data, "audit", "--type", "branch.*", "--json")
    kinds = [json.loads(line)["type"] for line in out.splitlines()]
    assert kinds == ["branch.created", "branch.granted", "branch.created", "branch.dropped", "branch.dropped"]
