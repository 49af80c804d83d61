"""Listing (mem0's get_all) and scoped search over HTTP and the CLI: the filter grammar, as-of,
cursor paging (stable order, validated opaque cursors), the score cutoff, audited reads, the
OpenAPI schema of the new bodies, and the scope index of the views."""

from __future__ import annotations

import json

import pytest

from ledger.errors import InvalidRequest
from ledger.listing import BadCursor, decode_cursor, encode_cursor, filter_digest
from ledger.rules.filters import parse_filter, scope_pins
from projections.text_view import KeywordView
from tests.cli_helpers import init_data, run
from tests.ledgers import make_ledger
from tests.service_support import make_service


@pytest.fixture
def svc(tmp_path):
    s = make_service(tmp_path, config='[views]\nvector = "none"\n')
    c = s.client
    c.post("/v1/cubes", json={"cube": "a"}, headers=s.h("alice"))
    s.written = [
        c.post(
            "/v1/memories",
            json={"cube": "a", "text": f"tea note {i}", "metadata": {"user_id": f"u{i % 2}", "n": i}},
            headers=s.h("alice"),
        ).json()
        for i in range(5)
    ]
    s.ids = [w["id"] for w in s.written]
    return s


def test_post_list_filters_pages_and_is_audited(svc):
    c, h = svc.client, svc.h("alice")
    body = {"where": {"user_id": "u0"}, "limit": 2}
    first = c.post("/v1/cubes/a/list", json=body, headers=h).json()
    assert [m["id"] for m in first["memories"]] == [svc.ids[0], svc.ids[2]] and first["next_cursor"]
    rest = c.post("/v1/cubes/a/list", json={**body, "after": first["next_cursor"]}, headers=h).json()
    assert [m["id"] for m in rest["memories"]] == [svc.ids[4]] and rest["next_cursor"] is None
    read = [e for e in svc.events() if e.type == "memory.read"][-1]
    assert read.payload["operation"] == "list" and json.loads(read.payload["query"]) == {"user_id": "u0"}
    old = c.post("/v1/cubes/a/list", json={**body, "as_of": str(svc.written[1]["offset"])}, headers=h).json()
    assert [m["id"] for m in old["memories"]] == [svc.ids[0]]


def test_bad_cursors_are_one_line_409s_and_bad_filters_422s(svc):
    # a cursor is any string to the schema: only the listing can tell it names no position of its
    # own, a conflict between cursor and request (409), not a schema violation (422)
    c, h = svc.client, svc.h("alice")
    first = c.post("/v1/cubes/a/list", json={"limit": 1}, headers=h).json()
    for body, message, status, kind in [
        ({"after": "garbage"}, "bad cursor", 409, "BadCursor"),
        ({"after": first["next_cursor"], "where": {"n": 1}}, "another filter", 409, "BadCursor"),
        ({"after": first["next_cursor"][:-2] + "AA"}, "bad cursor", 409, "BadCursor"),
        ({"where": {"n": {"$near": 1}}}, "unknown operator", 422, "InvalidRequest"),
    ]:
        r = c.post("/v1/cubes/a/list", json=body, headers=h)
        error = r.json()["error"]
        assert r.status_code == status and message in error["message"] and "\n" not in error["message"], r.text
        assert error["type"] == kind
    r = c.get("/v1/cubes/a/memories", params={"after": "garbage"}, headers=h)
    assert r.status_code == 409 and "bad cursor" in r.text
    assert c.post("/v1/cubes/a/list", json={"limit": 0}, headers=h).status_code == 422
    assert c.post("/v1/cubes/a/list", json={}, headers=svc.h("bob")).status_code in (403, 404)


def test_get_memories_pages_with_the_same_cursor(svc):
    c, h = svc.client, svc.h("alice")
    first = c.get("/v1/cubes/a/memories", params={"limit": 3}, headers=h).json()
    assert [m["id"] for m in first["memories"]] == svc.ids[:3] and first["next_after"] == first["next_cursor"]
    rest = c.get("/v1/cubes/a/memories", params={"limit": 3, "after": first["next_cursor"]}, headers=h).json()
    assert [m["id"] for m in rest["memories"]] == svc.ids[3:]


def test_search_where_and_min_score_over_http(svc):
    c, h = svc.client, svc.h("alice")
    r = c.post("/v1/search", json={"query": "tea note", "cubes": ["a"], "k": 2, "where": {"n": {"$gte": 3}}}, headers=h)
    assert r.status_code == 200 and {x["id"] for x in r.json()["hits"]} == set(svc.ids[3:])
    r = c.post("/v1/search", json={"query": "tea", "cubes": ["a"], "min_score": 1e5}, headers=h)
    assert r.status_code == 200 and r.json()["hits"] == []
    assert c.get("/v1/search", params={"q": "tea", "min_score": "nan"}, headers=h).status_code == 422
    r = c.post("/v1/search", json={"query": "tea", "where": {"$or": []}}, headers=h)
    assert r.status_code == 422 and "$or" in r.json()["error"]["message"]


def test_openapi_states_the_new_bodies(svc):
    schema = svc.client.get("/openapi.json").json()
    comps = schema["components"]["schemas"]
    listed = comps["ListRequest"]["properties"]
    assert listed["where"]["anyOf"][0] == {"$ref": "#/components/schemas/Filter"}
    assert listed["limit"]["maximum"] == 1000 and listed["after"]["anyOf"][0]["maxLength"] == 1000
    search = comps["SearchRequest"]["properties"]
    assert search["where"]["anyOf"][0] == {"$ref": "#/components/schemas/Filter"} and "min_score" in search
    assert "post" in schema["paths"]["/v1/cubes/{cube}/list"]


def test_cli_list_and_search_where(tmp_path, capsys):
    d = init_data(tmp_path, capsys)
    for i in range(3):
        meta = json.dumps({"user_id": f"u{i % 2}"})
        assert run(capsys, "--data", d, "add", "--cube", "c", "--metadata", meta, f"green tea {i}")[0] == 0
    code, out, err = run(
        capsys, "--data", d, "list", "--json", "--cube", "c", "--where", '{"user_id": "u0"}', "--limit", "1"
    )
    page = json.loads(out)
    assert code == 0 and [m["text"] for m in page["memories"]] == ["green tea 0"] and page["next_cursor"]
    code, out, _ = run(
        capsys,
        "--data",
        d,
        "list",
        "--json",
        "--cube",
        "c",
        "--where",
        '{"user_id": "u0"}',
        "--after",
        page["next_cursor"],
    )
    assert code == 0 and [m["text"] for m in json.loads(out)["memories"]] == ["green tea 2"], err
    code, _, err = run(capsys, "--data", d, "list", "--cube", "c", "--after", "nope")
    assert code == 2 and err.startswith("error: bad cursor") and err.count("\n") == 1
    code, _, err = run(capsys, "--data", d, "list", "--cube", "missing")
    assert code == 3
    args = ["--data", d, "search", "--json", "--no-vector", "--cube", "c", "--k", "1", "--where", '{"user_id": "u1"}']
    code, out, _ = run(capsys, *args, "green tea")
    assert code == 0 and [h["text"] for h in json.loads(out)] == ["green tea 1"]
    code, out, _ = run(capsys, "--data", d, "search", "--json", "--no-vector", "--min-score", "100000", "green tea")
    assert code == 0 and json.loads(out) == []
    code, _, err = run(capsys, "--data", d, "search", "--no-vector", "--where", '{"x": {"$bad": 1}}', "tea")
    assert code == 2 and "unknown operator" in err


def test_cursor_roundtrip_and_tampering():
    digest = filter_digest({"user_id": "u1"})
    cursor = encode_cursor("c", digest, 7, "mem_1")
    assert decode_cursor(cursor, "c", digest) == (7, "mem_1")
    with pytest.raises(BadCursor, match="cube 'c'"):
        decode_cursor(cursor, "d", digest)
    for bad in ("", "x" * 2000, cursor.swapcase(), cursor + "A"):
        with pytest.raises(BadCursor, match="bad cursor"):
            decode_cursor(bad, "c", digest)


def test_scope_pins_are_necessary_conditions():
    assert scope_pins({"user_id": "u1", "agent_id": {"$in": ["a", "b"]}}) == {
        "user_id": frozenset({"u1"}),
        "agent_id": frozenset({"a", "b"}),
    }
    assert scope_pins({"$and": [{"user_id": "u1"}, {"metadata.user_id": {"$in": ["u1", "u2"]}}]}) == {
        "user_id": frozenset({"u1"})
    }
    assert scope_pins({"$or": [{"user_id": "u1"}, {"user_id": "u2"}]}) == {}  # a disjunction pins nothing
    assert scope_pins({"user_id": 5, "run_id": {"$ne": "r"}, "topic": "x"}) == {}


def test_the_keyword_view_answers_pinned_filters_from_its_scope_index(tmp_path):
    led = make_ledger(tmp_path / "log.sqlite")
    a = led.add("c", "x", "u", metadata={"user_id": "u1"}).id
    b = led.add("c", "y", "u", metadata={"user_id": "u2"}).id
    m = led.merge([a, b], "x and y", "u").id  # conflicting scopes: user_id ["u1", "u2"]
    view = KeywordView(tmp_path / "kw.sqlite")
    view.apply_batch(list(led.events()))
    rows = view.conn().execute("SELECT v.memory_id, s.value FROM version_scopes s JOIN versions v USING (vid)")
    assert {(mid, val) for mid, val in rows if mid == m} == {(m, "u1"), (m, "u2")}
    assert set(view.matching(parse_filter({"user_id": "u2"}))) == {b, m}
    assert set(view.matching(parse_filter({"user_id": "u2"}), states=["generated"])) == {m}  # b is merged
    assert view.matching(parse_filter({"user_id": "u2"}), as_of=1) == {}
    plan = " ".join(
        str(r[-1])
        for r in view.conn().execute(
            "EXPLAIN QUERY PLAN SELECT vid FROM version_scopes WHERE key = ? AND value IN (?)", ("user_id", "u1")
        )
    )
    assert "version_scopes_value" in plan


class _PlainVector:
    """A vector adapter without ``filters_inside``: the retriever must over-fetch it."""

    def __init__(self, inner):
        self.inner = inner
        self.asked: list[int] = []

    def vector_search(self, q, k, cubes=None, as_of=None, states=None):
        self.asked.append(k)
        return self.inner.vector_search(q, k, cubes, as_of, states)


def test_a_vector_adapter_without_prefiltering_is_over_fetched_until_k_match(tmp_path):
    from projections.retrieval import FusionWeights, Retriever
    from projections.vector.embedding import HashingEmbedder
    from projections.vector.view import VectorView

    led = make_ledger(tmp_path / "log.sqlite")
    mine = [led.add("c", f"green tea {i}", "u", metadata={"user_id": "u1"}).id for i in range(3)]
    for _ in range(40):
        led.add("c", "green tea green tea", "u", metadata={"user_id": "u2"}, allow_duplicate=True)
    keyword = KeywordView(tmp_path / "kw.sqlite")
    inner = VectorView(tmp_path / "vec.sqlite", HashingEmbedder(), ann=None)
    events = list(led.events())
    keyword.apply_batch(events)
    inner.apply_batch(events)
    plain = _PlainVector(inner)
    r = Retriever(keyword, plain, embed_query=inner.embed_query, weights=FusionWeights(candidates=4, prf_weight=0))
    hits = r.search("green tea", ["c"], k=3, where=parse_filter({"user_id": "u1"}))
    assert {h.memory_id for h in hits} == set(mine)
    assert plain.asked[0] == 6 and len(plain.asked) > 1  # n = max(candidates, 2k), then 4x until 6 match
    assert r.search("green tea", ["c"], k=3, where=parse_filter({"user_id": "nobody"})) == []
    inner.close()
    keyword.close()
    led.log.close()


def test_the_older_metadata_option_is_a_filter_and_combines_with_where(tmp_path):
    from ledger.rules.filters import all_of, conjunction, from_metadata_equality

    assert from_metadata_equality({"topic": "x"}) == {"metadata.topic": "x"}
    assert from_metadata_equality(None) is None and all_of(None, {}) is None
    assert all_of({"a": 1}, {"b": 2}) == {"a": 1, "b": 2}  # side by side: no deeper nesting
    assert all_of({"a": 1}, {"a": 2}) == {"$and": [{"a": 1}, {"a": 2}]}
    deep = {"$not": {"$not": {"$not": {"$not": {"a": 1}}}}}  # as deep as a filter may nest
    with pytest.raises(InvalidRequest, match="nest at most"):
        parse_filter({"$and": [deep, {"b": 2}]})  # so a search's where and metadata are not re-parsed as one
    both = conjunction(parse_filter(deep), parse_filter({"b": 2}))
    assert both.matches({"metadata": {"a": 1, "b": 2}}) is True and both.matches({"metadata": {"a": 1}}) is False
    assert conjunction(parse_filter(None)).source == {}
    with pytest.raises(InvalidRequest):
        from_metadata_equality(["x"])  # type: ignore[arg-type]
    led = make_ledger(tmp_path / "log.sqlite")
    page = led.list_memories  # the old id-based ``after`` of GET /cubes/{c}/memories is refused now
    led.add("c", "x", "u")
    with pytest.raises(BadCursor, match="bad cursor"):
        page("c", after="mem_0000000000000000")
    with pytest.raises(InvalidRequest, match="limit"):
        page("c", limit=0)
    led.log.close()


def test_post_list_on_a_branch_folds_the_branch_and_is_audited_there(svc):
    """The listing takes ``branch`` like search does: main's memories up to the fork plus the
    branch's own writes, filtered and paged with the same grammar; main is untouched."""
    c, h = svc.client, svc.h("alice")
    assert c.post("/v1/branches", json={"name": "what-if"}, headers=h).status_code == 201
    r = c.post(
        "/v1/branches/what-if/memories",
        json={"cube": "a", "text": "tea on the branch", "metadata": {"user_id": "u0", "n": 9}},
        headers=h,
    )
    assert r.status_code == 201, r.text
    own = r.json()["id"]
    main_head = svc.head()
    body = {"where": {"user_id": "u0"}, "branch": "what-if"}
    listed = c.post("/v1/cubes/a/list", json=body, headers=h).json()
    assert listed["branch"] == "what-if"
    assert [m["id"] for m in listed["memories"]] == [svc.ids[0], svc.ids[2], svc.ids[4], own]
    paged = c.post("/v1/cubes/a/list", json={**body, "limit": 3}, headers=h).json()
    rest = c.post("/v1/cubes/a/list", json={**body, "limit": 3, "after": paged["next_cursor"]}, headers=h).json()
    assert [m["id"] for m in rest["memories"]] == [own]
    on_main = c.post("/v1/cubes/a/list", json={"where": {"user_id": "u0"}}, headers=h).json()
    assert own not in [m["id"] for m in on_main["memories"]]
    # every read is audited on main (it must outlive the branch), naming the branch it was made on
    reads = [e.payload for e in svc.events(main_head + 1)]
    assert [p.get("branch") for p in reads] == ["what-if", "what-if", "what-if", None]
    assert reads[0]["operation"] == "list" and reads[0]["memory_ids"][-1] == own
    assert c.post("/v1/cubes/a/list", json={"branch": "nope"}, headers=h).status_code == 404
    assert c.post("/v1/cubes/a/list", json={"branch": "what-if"}, headers=svc.h("bob")).status_code in (403, 404)
    assert c.post("/v1/cubes/a/list", json={"branch": "bad name!"}, headers=h).status_code == 422
