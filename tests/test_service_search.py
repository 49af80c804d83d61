"""Search over HTTP: only readable cubes are searched, as of an offset; refusals are audited."""

from __future__ import annotations

import pytest

from tests.service_support import make_service  # noqa: E402


@pytest.fixture
def svc(tmp_path):
    s = make_service(tmp_path, config='[views]\nvector = "none"\n')
    c = s.client
    c.post("/v1/cubes", json={"cube": "a"}, headers=s.h("alice"))
    c.post("/v1/cubes", json={"cube": "b"}, headers=s.h("bob"))
    s.tea = c.post(
        "/v1/memories", json={"cube": "a", "text": "alice drinks green tea every morning"}, headers=s.h("alice")
    ).json()
    c.post("/v1/memories", json={"cube": "b", "text": "bob drinks black tea at night"}, headers=s.h("bob"))
    return s


def test_search_sees_only_readable_cubes_and_is_audited(svc):
    c = svc.client
    r = c.get("/v1/search", params={"q": "tea"}, headers=svc.h("alice"))
    assert r.status_code == 200, r.text
    hits = r.json()["hits"]
    assert [h["cube"] for h in hits] == ["a"] and hits[0]["id"] == svc.tea["id"]
    reads = [e for e in svc.events() if e.type == "memory.read" and e.payload["operation"] == "search"]
    assert reads and reads[-1].actor == "alice" and reads[-1].payload["query"] == "tea"
    head = svc.head()
    r = c.get("/v1/search", params={"q": "tea", "cube": "a"}, headers=svc.h("bob"))
    assert r.status_code == 404
    assert [e.type for e in svc.events(head + 1)] == ["access.denied"]


def test_search_as_of_and_post_form(svc):
    c, h = svc.client, svc.h("alice")
    c.put(f"/v1/memories/{svc.tea['id']}", json={"text": "alice switched to coffee"}, headers=h)
    assert c.get("/v1/search", params={"q": "tea", "cube": "a"}, headers=h).json()["hits"] == []
    then = c.get("/v1/search", params={"q": "tea", "cube": "a", "as_of": svc.tea["offset"]}, headers=h).json()
    assert [x["id"] for x in then["hits"]] == [svc.tea["id"]]
    r = c.post("/v1/search", json={"query": "coffee", "cubes": ["a"], "k": 5}, headers=h)
    assert r.status_code == 200 and r.json()["hits"][0]["text"] == "alice switched to coffee"
    assert c.post("/v1/search", json={"query": "x", "actor": "bob"}, headers=h).status_code == 422


def test_search_on_a_branch_sees_the_branch_and_main_does_not(svc):
    c, h = svc.client, svc.h("alice")
    assert c.post("/v1/branches", json={"name": "exp"}, headers=h).status_code == 201
    r = c.put(f"/v1/branches/exp/memories/{svc.tea['id']}", json={"text": "alice drinks mate now"}, headers=h)
    assert r.status_code == 200, r.text
    on_branch = c.get("/v1/search", params={"q": "mate", "cube": "a", "branch": "exp"}, headers=h).json()
    assert [x["id"] for x in on_branch["hits"]] == [svc.tea["id"]]
    assert c.get("/v1/search", params={"q": "mate", "cube": "a"}, headers=h).json()["hits"] == []
    assert c.get("/v1/search", params={"q": "mate", "branch": "nope"}, headers=h).status_code == 404


def test_an_auditor_cannot_search_texts(svc):
    c = svc.client
    c.post("/v1/cubes/a/grants", json={"principal": "dave", "role": "auditor"}, headers=svc.h("alice"))
    assert c.get("/v1/search", params={"q": "tea", "cube": "a"}, headers=svc.h("dave")).status_code == 403
    assert c.get("/v1/search", params={"q": "tea"}, headers=svc.h("dave")).json()["hits"] == []
    assert svc.denials()[-1].payload["principal"] == "dave"
