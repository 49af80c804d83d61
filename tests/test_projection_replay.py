"""Replay equivalence: a view queried as of offset N equals a view folded from events 0..N."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ledger.api import Ledger
from ledger.errors import LedgerError
from ledger.memory_state import fold
from projections.base import catch_up, rebuild
from projections.graph_view import GraphView
from projections.text_view import KeywordView
from tests.ledgers import make_ledger

WORDS = [
    "Alice",
    "Bob",
    "Paris",
    "garden",
    "coffee",
    "piano",
    "river",
    "dog",
    "cats",
    "painting",
    "hiking",
    "Lisbon",
    "book",
    "sunrise",
    "music",
    "running",
    "yesterday",
]
# the last two exercise the focus step: a named speaker, and a "when" question
QUERIES = [
    "garden coffee",
    "Alice piano",
    "cats dog river",
    "Paris painting",
    "music",
    "hiking book sunrise",
    "What did Bob say about coffee",
    "When did Alice go hiking",
]

text_st = st.lists(st.sampled_from(WORDS), min_size=1, max_size=6).map(" ".join)
add_st = st.tuples(st.just("add"), st.sampled_from(["c1", "c2"]), text_st, st.sampled_from(["Alice", "Bob", ""]))
op_st = st.one_of(
    add_st,
    add_st,
    add_st,
    add_st,
    add_st,
    st.tuples(st.just("update"), st.integers(0, 30), text_st),
    st.tuples(st.just("state"), st.integers(0, 30), st.sampled_from(["activated", "archived", "generated", "frozen"])),
    st.tuples(st.just("merge"), st.integers(0, 30), st.integers(0, 30), text_st),
    st.tuples(st.just("link"), st.integers(0, 30), st.integers(0, 30)),
    st.tuples(st.just("tag"), st.integers(0, 30), st.sampled_from(["x", "y"])),
    st.tuples(st.just("forget"), st.sampled_from(["s1", "s2"])),
    st.tuples(st.just("add_subject"), st.sampled_from(["s1", "s2"]), text_st),
)


def _run(ledger: Ledger, ops: list[tuple]) -> None:
    from ledger import events as ev
    from ledger.events import NewEvent

    ids: list[str] = []
    for op in ops:
        try:
            if op[0] == "add":
                speaker = op[3] if len(op) > 3 else ""
                ids.append(ledger.add(op[1], op[2], "u", metadata={"speaker": speaker} if speaker else None).id)
            elif op[0] == "add_subject":
                w = ledger.log.append(
                    [
                        NewEvent(
                            "c1",
                            ev.MEMORY_ADDED,
                            {"memory_id": f"m_{op[1]}_{len(ids)}", "text": op[2], "subject": op[1]},
                            "u",
                        )
                    ]
                )
                ids.append(w[0].payload["memory_id"])
            elif op[0] == "forget":
                ledger.log.append([NewEvent("_system", ev.SUBJECT_FORGOTTEN, {"subject": op[1]}, "u")])
            elif not ids:
                continue
            elif op[0] == "update":
                ledger.update(ids[op[1] % len(ids)], op[2], "u")
            elif op[0] == "state":
                ledger.change_state(ids[op[1] % len(ids)], op[2], "u")
            elif op[0] == "merge":
                a, b = ids[op[1] % len(ids)], ids[op[2] % len(ids)]
                ids.append(ledger.merge([a, b], op[3], "u"))  # type: ignore[arg-type]
                ids[-1] = ids[-1].id  # type: ignore[attr-defined]
            elif op[0] == "link":
                ledger.link(ids[op[1] % len(ids)], ids[op[2] % len(ids)], "related", "u")
            elif op[0] == "tag":
                from ledger.events import NewEvent as NE

                s = ledger.get(ids[op[1] % len(ids)], record_read=False)
                ledger.log.append([NE(s.cube, ev.MEMORY_TAGGED, {"memory_id": s.memory_id, "add": [op[2]]}, "u")])
        except LedgerError:
            pass  # illegal moves are part of a realistic sequence; they write nothing


def _fold_with_erasure(ledger: Ledger, end: int, after: int | None = None) -> tuple[dict, set[str]]:
    """The canonical fold, where ``subject.forgotten`` removes the subject's memories (as views purge);
    also the ids that forget events after offset ``after`` remove."""
    from ledger.memory_state import apply_event

    states: dict = {}
    removed: set[str] = set()
    for e in ledger.events(0, end):
        if e.type == "subject.forgotten":
            gone = {m for m, s in states.items() if s.subject == e.payload["subject"]}
            if after is not None and e.offset > after:
                removed |= gone
            states = {m: s for m, s in states.items() if m not in gone}
        else:
            apply_event(states, e)
    return states, removed


def _comparable(states: dict, with_text: bool) -> dict:
    out = {}
    for mid, s in states.items():
        d = s.to_dict()
        if not with_text:
            d.pop("text")
        out[mid] = d
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(op_st, min_size=15, max_size=50), cut=st.floats(0, 1))
def test_as_of_equals_fresh_fold(ops: list[tuple], cut: float) -> None:
    with tempfile.TemporaryDirectory() as d:
        ledger = make_ledger(Path(d) / "log.sqlite")
        _run(ledger, ops)
        head = ledger.head()
        n = int(round(cut * head)) if head >= 0 else -1
        full_kw, full_g = KeywordView(Path(d) / "kw.sqlite"), GraphView(Path(d) / "g.sqlite", max_entity_df=4)
        part_kw, part_g = KeywordView(Path(d) / "kw2.sqlite"), GraphView(Path(d) / "g2.sqlite", max_entity_df=4)
        for v in (full_kw, full_g):
            catch_up(ledger.events, v, batch_size=7)
        for v in (part_kw, part_g):
            rebuild(ledger.events, v, to=n)
        assert part_kw.checkpoint() == n

        # the record rows equal the canonical fold (minus memories of subjects forgotten by N)
        truth, _ = _fold_with_erasure(ledger, n)
        _, erased_later = _fold_with_erasure(ledger, head, after=n)
        plain = fold(ledger.events(0, n))
        assert {m: s for m, s in plain.items() if m in truth} == truth
        assert _comparable(part_kw.memories_at(n), True) == _comparable(truth, True)
        # erasure reaches back in time: the full view no longer holds rows of subjects forgotten after N
        full_truth = {m: s for m, s in truth.items() if m not in erased_later}
        assert _comparable(full_kw.memories_at(n), True) == _comparable(full_truth, True)
        assert _comparable(full_g.memories_at(n), False) == _comparable(full_truth, False)
        if erased_later:
            return  # rankings legitimately differ: the erased memories no longer count in the statistics

        for q in QUERIES:
            for cubes in (None, ["c1"]):
                for states in (None, ["generated", "activated"]):
                    a = full_kw.keyword_search(q, 5, cubes, n, states)
                    event(f"keyword hits: {min(len(a), 2)}")
                    b = part_kw.keyword_search(q, 5, cubes, None, states)
                    assert [(m, round(s, 9)) for m, s in a] == [(m, round(s, 9)) for m, s in b], q
        event(f"head events: {min(head // 10, 3) * 10}+, memories at N: {min(len(truth) // 5, 2) * 5}+")
        for mid in truth:
            event(f"graph neighbours: {min(len(full_g.neighbours([mid], None, n)), 2)}")
            assert full_g.neighbours([mid], None, n, hops=2) == part_g.neighbours([mid], None, None, hops=2)
            assert full_g.entities_of(mid, n) == part_g.entities_of(mid, None)
        for v in (full_kw, full_g, part_kw, part_g):
            v.close()
        ledger.log.close()


def _ranked(hits: list) -> tuple[list, float | None]:
    """Hits with scores rounded to 1e-6 (vector dot products over matrices of different sizes may
    differ in the last float bits), re-sorted by (score, id); near-ties at the cut are not compared."""
    rows = sorted(((round(h.score, 6), h.memory_id, h.memory.to_dict()) for h in hits), key=lambda r: (-r[0], r[1]))
    cut = rows[-1][0] if rows else None
    return [r for r in rows if r[0] != cut], cut


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ops=st.lists(
        op_st.map(lambda op: ("add", "c2", "Bob garden") if op[0] == "forget" else op), min_size=15, max_size=40
    ),
    cut=st.floats(0, 1),
)
def test_hybrid_search_as_of_equals_fresh_fold(ops: list[tuple], cut: float) -> None:
    """All three views together: hybrid search as of N equals hybrid search on views folded to N."""
    from projections.retrieval import Retriever
    from projections.vector.embedding import HashingEmbedder
    from projections.vector.view import VectorView

    with tempfile.TemporaryDirectory() as d:
        ledger = make_ledger(Path(d) / "log.sqlite")
        _run(ledger, ops)
        head = ledger.head()
        n = int(round(cut * head)) if head >= 0 else -1
        emb = HashingEmbedder(dim=64)
        sets = []
        for tag, to in (("full", None), ("part", n)):
            kw = KeywordView(Path(d) / f"kw_{tag}.sqlite")
            g = GraphView(Path(d) / f"g_{tag}.sqlite", max_entity_df=4)
            vec = VectorView(Path(d) / f"vec_{tag}.sqlite", emb, ann=None)
            for v in (kw, g, vec):
                rebuild(ledger.events, v, to=to)
            sets.append((Retriever(kw, vec, g, embed_query=lambda q: emb.embed([q])[0]), (kw, g, vec)))
        (full, full_views), (part, part_views) = sets
        for q in QUERIES:
            for all_states in (False, True):
                a = full.search(q, None, 5, n, all_states=all_states)
                b = part.search(q, None, 5, None, all_states=all_states)
                event(f"hybrid hits: {min(len(a), 3)}")
                event(f"focus boost used: {any('speaker_boost' in h.signals or 'time_boost' in h.signals for h in a)}")
                assert _ranked(a) == _ranked(b), q
        for v in (*full_views, *part_views):
            v.close()
        ledger.log.close()
