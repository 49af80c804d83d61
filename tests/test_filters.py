"""The one filter grammar (ledger.rules.filters): operators, list and missing-field semantics, times,
refusals; and a property test: delete_where deletes exactly what a reference predicate selects."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.errors import InvalidRequest
from ledger.events import iso_to_us
from ledger.rules.filters import parse_filter
from tests.ledgers import make_ledger

REC = {
    "id": "m1",
    "state": "generated",
    "tags": ["work", "urgent"],
    "created_at": "2026-05-01T10:00:00Z",
    "metadata": {"user_id": "u1", "n": 5, "flag": True, "observed_at": "2026-04-30T00:00:00Z", "note": "likes tea"},
}


@pytest.mark.parametrize(
    ("flt", "want"),
    [
        ({}, True),
        ({"user_id": "u1"}, True),
        ({"metadata.user_id": "u2"}, False),
        ({"tags": "work"}, True),
        ({"tags": {"$ne": "work"}}, False),
        ({"tags": {"$nin": ["x", "y"]}}, True),
        ({"tags": {"$in": ["x", "urgent"]}}, True),
        ({"missing": {"$ne": 1}}, True),
        ({"missing": {"$eq": None}}, False),
        ({"missing": {"$nin": [1]}}, True),
        ({"n": {"$gt": 4, "$lte": 5}}, True),
        ({"n": {"$gt": "4"}}, False),  # a number never orders against a string
        ({"flag": 1}, False),  # true is not 1
        ({"note": {"$contains": "tea"}}, True),
        ({"tags": {"$contains": "urg"}}, False),  # list membership, not substring
        ({"created_at": {"$gte": "2026-05-01T09:00:00+00:00"}}, True),
        ({"observed_at": {"$lt": iso_to_us("2026-04-30T00:00:01Z")}}, True),
        ({"$or": [{"user_id": "u9"}, {"state": "generated"}]}, True),
        ({"$and": [{"user_id": "u1"}, {"$not": {"tags": "work"}}]}, False),
    ],
)
def test_operators(flt, want):
    assert parse_filter(flt).matches(REC) is want


@pytest.mark.parametrize(
    ("flt", "message"),
    [
        ([1], "JSON object"),
        ({"$or": []}, "list of 1 to 20"),
        ({"$xor": []}, "unknown operator"),
        ({"a": {"$regex": "x"}}, "unknown operator"),
        ({"a": {"$in": "x"}}, "list"),
        ({"a": {"$gt": [1]}}, "not an object or list"),
        ({"a": {"$gt": True}}, "compares numbers or strings"),
        ({"created_at": {"$gt": "yesterday"}}, "not a time"),
        ({"a": {"b": 1}}, "operators only"),
        ({"": 1}, "non-empty"),
        ({"$and": [{"$and": [{"$and": [{"$and": [{"$not": {"a": 1}}]}]}]}]}, "nest at most 4"),
    ],
)
def test_malformed_filters_are_refused_in_one_line(flt, message):
    with pytest.raises(InvalidRequest, match=message) as info:
        parse_filter(flt)
    assert "\n" not in str(info.value)


def _ref_eq(v: Any, o: Any) -> bool:
    vs = v if isinstance(v, list) else [v]
    return any(x == o and type(x) is type(o) for x in vs)


def reference(flt: dict[str, Any], meta: dict[str, Any]) -> bool:
    """An independent, naive evaluator of the subset the strategy generates."""
    for key, spec in flt.items():
        if key == "$or":
            if not any(reference(f, meta) for f in spec):
                return False
            continue
        if key == "$not":
            if reference(spec, meta):
                return False
            continue
        present = key in meta
        v = meta.get(key)
        op, o = next(iter(spec.items())) if isinstance(spec, dict) else ("$eq", spec)
        if op == "$eq":
            ok = present and _ref_eq(v, o)
        elif op == "$ne":
            ok = not present or not _ref_eq(v, o)
        elif op == "$in":
            ok = present and any(_ref_eq(v, x) for x in o)
        else:  # $gte on ints
            ok = present and any(isinstance(x, int) and x >= o for x in (v if isinstance(v, list) else [v]))
        if not ok:
            return False
    return True


values = st.one_of(st.sampled_from(["a", "b", "c"]), st.integers(0, 3))
metas = st.dictionaries(st.sampled_from(["user_id", "topic", "n"]), st.one_of(values, st.lists(values, max_size=2)))
leaf = st.one_of(
    st.builds(lambda k, v: {k: v}, st.sampled_from(["user_id", "topic", "n"]), values),
    st.builds(
        lambda k, op, v: {k: {op: v}}, st.sampled_from(["user_id", "topic"]), st.sampled_from(["$eq", "$ne"]), values
    ),
    st.builds(lambda k, vs: {k: {"$in": vs}}, st.sampled_from(["user_id", "n"]), st.lists(values, max_size=3)),
    st.builds(lambda v: {"n": {"$gte": v}}, st.integers(0, 3)),
)
filters = st.recursive(
    leaf,
    lambda inner: st.one_of(
        st.builds(lambda fs: {"$or": fs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda f: {"$not": f}, inner),
    ),
    max_leaves=6,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(metas, min_size=1, max_size=8), filters)
def test_delete_where_deletes_exactly_what_the_predicate_selects(tmp_path_factory, metas_list, flt):
    led = make_ledger(tmp_path_factory.mktemp("f") / "log.sqlite")
    try:
        ids = [led.add("c", f"memory {i}", "agent", metadata=m).id for i, m in enumerate(metas_list)]
        want = {i for i, m in zip(ids, metas_list, strict=True) if reference(flt, m)}
        out = led.delete_where("c", "agent", flt)
        assert set(out.memory_ids) == want
        assert set(led.cube_memories("c")) == set(ids) - want
    finally:
        led.log.close()


def _validator():
    import fastjsonschema

    from ledger.rules.filters import filter_json_schemas

    defs = filter_json_schemas("#/definitions/")
    return fastjsonschema.compile({**defs["Filter"], "definitions": defs})


keys = st.sampled_from(
    ["user_id", "x_at", "created_at", "metadata.", "metadata.k", "$and", "$or", "$not", "$x", "", "$"]
)
ops = st.sampled_from(["$eq", "$ne", "$in", "$nin", "$gt", "$lte", "$contains", "$bad", "k"])
atoms = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["a", "2026-02-28", "2026-02-30", "2024-02-29T10:00:00Z", "yesterday"]),
)
json_values = st.recursive(
    atoms,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.one_of(keys, ops), inner, max_size=3),
    ),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(keys, json_values, max_size=4))
def test_the_json_schema_accepts_exactly_what_the_parser_accepts(obj):
    import fastjsonschema

    try:
        _validator()(obj)
        schema_ok = True
    except fastjsonschema.JsonSchemaException:
        schema_ok = False
    try:
        parse_filter(obj)
        parser_ok = True
    except InvalidRequest:
        parser_ok = False
    assert schema_ok == parser_ok, obj
