"""Property: every filter lists and searches exactly what a naive predicate selects over the fold of
the log, at the head, as of an earlier offset and on a branch.

A random history (adds with user/agent/run scopes, updates, tags, lifecycle moves, merges whose
conflicting scopes become lists, deletions) is written to main and to a branch forked part way.
The reference is ``fold`` of the events (the one definition of memory state) and ``reference``
below, an evaluator written independently of ``ledger.rules.filters``. Then:

* ``Ledger.list_memories`` (a fold) and ``ViewSet.list_memories`` (the record view and its scope
  index), paged three at a time, return the matching memories, each once, in creation order;
* a filtered search returns exactly the memories that match the filter *and* the query's
  candidate set (the memories whose text shares a term with the query, in a searchable state),
  and a small ``k`` still returns ``k`` hits whenever ``k`` such memories exist: a search that
  dropped non-matching hits after taking the top k would fail this.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.errors import LedgerError
from ledger.lifecycle import SEARCHABLE_BY_DEFAULT
from ledger.memory_state import MemoryState, fold
from ledger.timemachine.branch_search import search_branch
from ledger.timemachine.branches import Branches
from projections.text_analysis import terms
from projections.vector.embedding import HashingEmbedder
from projections.vector.view import VectorView
from projections.view_set import ViewSet
from tests.ledgers import make_ledger

WORDS = ["apple", "river", "stone", "cloud"]
BUILTIN = {"id", "cube", "state", "tags", "created_offset", "updated_offset"}
MISSING = object()

# -- an independent evaluator ----------------------------------------------------------------


def _value(m: MemoryState, field: str) -> Any:
    if field.startswith("metadata."):
        return m.metadata.get(field[len("metadata.") :], MISSING)
    if field in BUILTIN:
        return {
            "id": m.memory_id,
            "cube": m.cube,
            "state": m.state,
            "tags": m.tags,
            "created_offset": m.created_offset,
            "updated_offset": m.updated_offset,
        }[field]
    return m.metadata.get(field, MISSING)


def _eq(a: Any, b: Any) -> bool:
    return a == b and isinstance(a, bool) == isinstance(b, bool)


def _ordered(a: Any, b: Any, op: str) -> bool:
    nums = isinstance(a, int) and isinstance(b, int) and not isinstance(a, bool) and not isinstance(b, bool)
    if not (nums or (isinstance(a, str) and isinstance(b, str))):
        return False
    return {"$gt": a > b, "$gte": a >= b, "$lt": a < b, "$lte": a <= b}[op]


def _test(v: Any, op: str, o: Any) -> bool:
    if v is MISSING:
        return op in ("$ne", "$nin")
    vs = v if isinstance(v, list) else [v]
    if op == "$eq":
        return any(_eq(x, o) for x in vs)
    if op == "$ne":
        return not any(_eq(x, o) for x in vs)
    if op == "$in":
        return any(_eq(x, y) for x in vs for y in o)
    if op == "$nin":
        return not any(_eq(x, y) for x in vs for y in o)
    if op == "$contains":
        if isinstance(v, list):
            return any(_eq(x, o) for x in v)
        return isinstance(v, str) and isinstance(o, str) and o in v
    return any(_ordered(x, o, op) for x in vs)


def reference(flt: dict[str, Any], m: MemoryState) -> bool:
    for key, spec in flt.items():
        if key == "$and":
            ok = all(reference(f, m) for f in spec)
        elif key == "$or":
            ok = any(reference(f, m) for f in spec)
        elif key == "$not":
            ok = not reference(spec, m)
        elif isinstance(spec, dict):
            ok = all(_test(_value(m, key), op, o) for op, o in spec.items())
        else:
            ok = _test(_value(m, key), "$eq", spec)
        if not ok:
            return False
    return True


# -- strategies -------------------------------------------------------------------------------

scope_values = {
    "user_id": st.sampled_from(["u1", "u2", "u3", 1]),  # 1: a scope id that is not a string
    "agent_id": st.sampled_from(["a1", "a2"]),
    "run_id": st.sampled_from(["r1", "r2"]),
    "topic": st.sampled_from(["x", "y"]),
    "n": st.integers(0, 3),
}
metas = st.fixed_dictionaries({}, optional=scope_values)
texts = st.lists(st.sampled_from(WORDS), min_size=1, max_size=3).map(" ".join)
adds = st.tuples(st.just("add"), texts, metas, st.lists(st.sampled_from(["t1", "t2"]), max_size=2))
ops = st.one_of(
    adds,
    st.tuples(st.just("update"), st.integers(0, 30), texts, metas),
    st.tuples(st.just("tag"), st.integers(0, 30), st.sampled_from(["t1", "t2"])),
    st.tuples(st.just("state"), st.integers(0, 30), st.sampled_from(["activated", "archived", "frozen"])),
    st.tuples(st.just("merge"), st.integers(0, 30), st.integers(0, 30), texts),
    st.tuples(st.just("delete"), st.integers(0, 30)),
)

scalar = st.one_of(
    st.sampled_from(["u1", "u2", "a1", "r1", "x", "y", "t1", "generated", "archived"]), st.integers(0, 3)
)
fields = st.sampled_from(
    ["user_id", "metadata.user_id", "agent_id", "run_id", "topic", "n", "tags", "state", "created_offset"]
)
leaf = st.one_of(
    st.builds(lambda f, v: {f: v}, fields, scalar),
    st.builds(lambda f, op, v: {f: {op: v}}, fields, st.sampled_from(["$eq", "$ne", "$contains"]), scalar),
    st.builds(lambda f, op, vs: {f: {op: vs}}, fields, st.sampled_from(["$in", "$nin"]), st.lists(scalar, max_size=3)),
    st.builds(lambda f, op, v: {f: {op: v}}, fields, st.sampled_from(["$gt", "$gte", "$lt", "$lte"]), scalar),
)
filters = st.recursive(
    leaf,
    lambda inner: st.one_of(
        st.builds(lambda fs: {"$and": fs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda fs: {"$or": fs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda f: {"$not": f}, inner),
        st.builds(lambda a, b: {**a, **b}, inner, inner),
    ),
    max_leaves=5,
)


def _run(led: Any, program: list[tuple], ids: list[str]) -> None:
    """Apply a program's operations; the ones the ledger refuses (an illegal move) are skipped."""
    for op in program:
        try:
            if op[0] == "add":
                ids.append(led.add("c", op[1], "agent", metadata=op[2], tags=op[3]).id)
            elif not ids:
                continue
            elif op[0] == "update":
                led.update(ids[op[1] % len(ids)], op[2], "agent", metadata=op[3])
            elif op[0] == "tag":
                from ledger import events as ev
                from ledger.events import NewEvent

                mid = ids[op[1] % len(ids)]
                led.append([NewEvent("c", ev.MEMORY_TAGGED, {"memory_id": mid, "add": [op[2]]}, "agent")])
            elif op[0] == "state":
                led.change_state(ids[op[1] % len(ids)], op[2], "agent")
            elif op[0] == "merge":
                a, b = ids[op[1] % len(ids)], ids[op[2] % len(ids)]
                ids.append(led.merge([a, b], op[3], "agent").id)
            elif op[0] == "delete":
                led.delete(ids[op[1] % len(ids)], "agent")
        except LedgerError:
            continue


def _expected_list(states: dict[str, MemoryState], flt: dict[str, Any]) -> list[str]:
    chosen = [s for s in states.values() if s.exists and s.cube == "c" and reference(flt, s)]
    return [s.memory_id for s in sorted(chosen, key=lambda s: (s.created_offset, s.memory_id))]


def _listed(led: Any, flt: dict[str, Any], as_of: int | None) -> list[str]:
    out: list[str] = []
    after = None
    while True:
        page = led.list_memories("c", where=flt, as_of=as_of, limit=3, after=after)
        out += [m.memory_id for m in page.items]
        if page.next_cursor is None:
            return out
        after = page.next_cursor


def _keyword_candidates(states: dict[str, MemoryState], query: str) -> set[str]:
    """The keyword retriever's candidates: searchable memories sharing a term with the query."""
    q = set(terms(query))
    return {
        s.memory_id
        for s in states.values()
        if s.exists and s.cube == "c" and s.state in SEARCHABLE_BY_DEFAULT and s.text and q & set(terms(s.text))
    }


def _check_search(search: Any, states: dict[str, MemoryState], flt: dict[str, Any], vector: bool) -> None:
    for query in WORDS[:2]:
        # the query's candidate set: what the unfiltered search finds (with the keyword and graph
        # views alone: every memory sharing a term with the query, plus the graph's co-mention
        # neighbours of the top seeds, which need not share one)
        candidates = {h.memory_id for h in search(query, where=None, k=1000)}
        if not vector:
            assert _keyword_candidates(states, query) <= candidates
        want = {m for m in candidates if reference(flt, states[m])}
        got = {h.memory_id for h in search(query, where=flt, k=1000)}
        if vector:  # keyword + vector: the filtered search is exactly the unfiltered one, filtered
            assert got == want, (query, flt)
        else:
            # the graph's co-mention step expands from the top seeds of the (filtered) candidates, so a
            # filtered search may also reach a neighbour the unfiltered one did not seed from; every hit
            # still matches the filter, and nothing the unfiltered search found and the filter admits is lost
            assert want <= got and all(reference(flt, states[m]) for m in got), (query, flt)
        for k in (1, 2):
            small = search(query, where=flt, k=k)
            assert len(small) == min(k, len(got)) and {h.memory_id for h in small} <= got, (query, flt, k)


def _scenario(tmp: Path, main_program: list[tuple], branch_program: list[tuple], fork_at: float, vector: bool):
    led = make_ledger(tmp / "log.sqlite")
    ids: list[str] = []
    _run(led, [("add", "apple river", {"user_id": "u1"}, [])], ids)
    first = led.head()  # the branch forks after the cube exists
    _run(led, main_program, ids)
    fork = first + int(fork_at * (led.head() - first))
    branches = Branches(led)
    branches.create("b", fork, "agent")
    b = branches.ledger("b")
    _run(b, branch_program, list(ids))
    overrides = {"vector": VectorView(tmp / "views" / "vector.sqlite", HashingEmbedder(), ann=None)} if vector else {}
    views = ViewSet.open(led, data_dir=tmp, kinds=["keyword"] if vector else ["keyword", "graph"], **overrides)
    return led, branches, b, views, fork


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    st.tuples(st.lists(adds, min_size=4, max_size=10), st.lists(ops, max_size=12)).map(lambda p: p[0] + p[1]),
    st.lists(ops, max_size=6),
    st.floats(0.0, 1.0),
    st.lists(filters, min_size=1, max_size=3),
    st.booleans(),
)
def test_list_and_search_match_the_predicate_over_the_fold(
    tmp_path_factory, main_program, branch_program, fork_at, flts, vector
):
    tmp = tmp_path_factory.mktemp("p")
    led, branches, b, views, fork = _scenario(tmp, main_program, branch_program, fork_at, vector)
    try:
        head = led.head()
        points = {"head": None, "as_of": max(-1, head // 2)}
        for flt in flts:
            for _, as_of in points.items():
                states = fold(led.events(0, head if as_of is None else as_of))
                assert _listed(led, flt, as_of) == _expected_list(states, flt), (flt, as_of)
                assert _listed(views, flt, as_of) == _expected_list(states, flt), (flt, as_of)  # the view's answer
                _check_search(
                    lambda q, as_of=as_of, **kw: views.search(q, cube="c", as_of=as_of, **kw), states, flt, vector
                )
            on_branch = fold(b.events())
            assert _listed(b, flt, None) == _expected_list(on_branch, flt), flt
            _check_search(
                lambda q, **kw: search_branch(views, branches, "b", q, cube="c", **kw), on_branch, flt, vector
            )
    finally:
        views.close()
        branches.close()
        led.log.close()
