"""The strict parser of LLM extraction output (and of the optional decide step): every valid object
is accepted as given, every malformed variant is rejected whole with a reason, never half-applied."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.memos.extraction.base import Candidate, ExistingMemory, Message
from ledger.memos.extraction.llm_decide import (
    DECIDE_PROMPT_SHA256,
    Decider,
    build_decide_prompt,
    parse_decision,
)
from ledger.memos.extraction.llm_prompt import (
    MAX_FACTS,
    MAX_OUTPUT_CHARS,
    MAX_TEXT_CHARS,
    PROMPT_SHA256,
    PROMPT_VERSION,
    build_prompt,
    parse_extraction,
    prompt_hash,
    render_window,
)
from tests.llm_fixtures import CAND, NEIGHBOURS, WINDOW

texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=80).filter(
    lambda t: t.split()
)
keys = st.none() | st.from_regex(r"[a-z]{1,10}\|[a-z_]{1,12}", fullmatch=True)
stamps = st.none() | st.sampled_from(["2023-05-08", "2023-05-08T13:56:00", "2024-01-31T23:59:59+02:00"])
sources = st.lists(st.integers(0, len(WINDOW) - 1), min_size=1, max_size=3, unique=True)
facts = st.fixed_dictionaries(
    {"text": texts, "source": sources},
    optional={"retracts": st.booleans(), "key": keys, "observed_at": stamps},
)


def _expected(fact: dict) -> Candidate:
    observed = fact.get("observed_at")
    if observed is None:
        given_ = [WINDOW[i].timestamp for i in fact["source"] if WINDOW[i].timestamp]
        observed = max(given_) if given_ else None
    return Candidate(
        text=" ".join(fact["text"].split()),
        source_offsets=tuple(sorted(WINDOW[i].offset for i in fact["source"])),
        retracts=fact.get("retracts", False),
        key=fact["key"].lower() if fact.get("key") else None,
        observed_at=observed,
        rule=PROMPT_VERSION,
    )


@given(st.lists(facts, max_size=6), st.sampled_from(["plain", "indented", "fenced", "fenced-prose"]))
@settings(max_examples=150, deadline=None)
def test_every_valid_object_is_accepted_as_given(items, layout):
    doc = json.dumps({"facts": items}, indent=2 if layout != "plain" else None, ensure_ascii=layout == "plain")
    if layout.startswith("fenced"):
        doc = f"```json\n{doc}\n```"
    if layout == "fenced-prose":
        doc = f"Here are the facts:\n{doc}\nDone."
    got = parse_extraction(doc, WINDOW, "m", "h")
    assert got.error is None, got.error
    assert got.candidates == tuple(_expected(f) for f in items)
    assert got.raw_output == doc and got.model == "m" and got.prompt_hash == "h"


GOOD = {"text": "Alice lives in Porto.", "retracts": False, "key": "alice|lives_in", "source": [2]}


def _with(**change) -> str:
    fact = {**GOOD, **change}
    return json.dumps({"facts": [GOOD, {k: v for k, v in fact.items() if v is not _DROP}]})


_DROP = object()

MALFORMED = {
    "empty": ("", "empty output"),
    "blank": (" \n\t", "empty output"),
    "prose": ("Alice lives in Porto.", "not JSON"),
    "trailing text": ('{"facts": []} and more', "not JSON"),
    "two objects": ('{"facts": []}\n{"facts": []}', "not JSON"),
    "two fences": ('```json\n{"facts": []}\n```\n```json\n{"facts": []}\n```', "2 fenced blocks"),
    "bad fence": ('```json\n{"facts": [}\n```', "not JSON"),
    "unclosed fence": ('```json\n{"facts": []}', "not JSON"),
    "array": ("[]", "not an object"),
    "string": ('"facts"', "not an object"),
    "null": ("null", "not an object"),
    "no facts": ('{"fact": []}', "unknown top-level"),
    "empty object": ("{}", "missing 'facts'"),
    "extra top-level": ('{"facts": [], "notes": "x"}', "unknown top-level"),
    "facts not list": ('{"facts": {"text": "x"}}', "must be a list"),
    "duplicate top key": ('{"facts": [], "facts": []}', "duplicate key 'facts'"),
    "duplicate fact key": (
        '{"facts": [{"text": "a", "text": "b", "source": [0]}]}',
        "duplicate key 'text'",
    ),
    "NaN": ('{"facts": [{"text": "a", "source": [NaN]}]}', "NaN is not JSON"),
    "fact not object": ('{"facts": ["Alice lives in Porto."]}', "facts[0] is str"),
    "unknown fact field": (_with(confidence=0.9), "facts[1] has unknown field(s) 'confidence'"),
    "text missing": (_with(text=_DROP), "facts[1].text must be a string"),
    "text number": (_with(text=3), "facts[1].text must be a string"),
    "text blank": (_with(text="  \n "), "facts[1].text is empty"),
    "text too long": (_with(text="a" * (MAX_TEXT_CHARS + 1)), "facts[1].text is 501 characters"),
    "retracts string": (_with(retracts="yes"), "facts[1].retracts must be true or false"),
    "retracts int": (_with(retracts=1), "facts[1].retracts must be true or false"),
    "key number": (_with(key=7), "facts[1].key must be a string or null"),
    "key blank": (_with(key=" "), "facts[1].key must be 1..120"),
    "key too long": (_with(key="k" * 121), "facts[1].key must be 1..120"),
    "source missing": (_with(source=_DROP), "facts[1].source must be a non-empty list"),
    "source empty": (_with(source=[]), "facts[1].source must be a non-empty list"),
    "source int": (_with(source=2), "facts[1].source must be a non-empty list"),
    "source out of window": (_with(source=[3]), "facts[1].source: 3 is not a message number (0..2)"),
    "source negative": (_with(source=[-1]), "facts[1].source: -1 is not a message number"),
    "source bool": (_with(source=[True]), "facts[1].source: True is not a message number"),
    "source float": (_with(source=[1.0]), "facts[1].source: 1.0 is not a message number"),
    "source string": (_with(source=["0"]), "facts[1].source: '0' is not a message number"),
    "source repeated": (_with(source=[1, 1]), "facts[1].source repeats"),
    "observed_at number": (_with(observed_at=2023), "facts[1].observed_at must be an ISO-8601 string"),
    "observed_at prose": (_with(observed_at="last week"), "facts[1].observed_at 'last week' is not ISO-8601"),
    "too many facts": (json.dumps({"facts": [GOOD] * (MAX_FACTS + 1)}), "51 facts (at most 50)"),
    "too long": ('{"facts": []}' + " " * MAX_OUTPUT_CHARS, "characters (at most"),
    "nested too deep": ("[" * 30_000 + "]" * 30_000, "nested too deeply"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_every_malformed_variant_is_rejected_whole_with_a_reason(name):
    raw, reason = MALFORMED[name]
    got = parse_extraction(raw, WINDOW, "m", "h")
    assert got.candidates == () and got.raw_output == raw and got.model == "m"
    assert got.error is not None and reason in got.error, got.error


@given(st.lists(facts, min_size=1, max_size=4), st.data())
@settings(max_examples=150, deadline=None)
def test_any_truncation_of_a_valid_answer_is_rejected(items, data):
    doc = json.dumps({"facts": items})
    cut = data.draw(st.integers(1, len(doc) - 1))
    got = parse_extraction(doc[:cut], WINDOW, None, None)
    assert got.candidates == () and got.error


@given(st.lists(facts, min_size=1, max_size=4), st.data())
@settings(max_examples=100, deadline=None)
def test_one_bad_fact_rejects_the_good_ones_too(items, data):
    bad = data.draw(
        st.sampled_from(
            [{"source": [len(WINDOW)]}, {"text": ""}, {"retracts": "no"}, {"observed_at": "soon"}, {"extra": 1}]
        )
    )
    at = data.draw(st.integers(0, len(items)))
    broken = [*items[:at], {**GOOD, **bad}, *items[at:]]
    got = parse_extraction(json.dumps({"facts": broken}), WINDOW, None, None)
    assert got.candidates == () and got.error and got.error.startswith(f"facts[{at}]")


def test_the_prompt_numbers_the_window_and_its_hash_is_of_the_exact_messages():
    chat = build_prompt(WINDOW, [ExistingMemory("mem_1", "Alice lives in Oslo.", 0.9)])
    assert [m["role"] for m in chat] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert render_window(WINDOW) in chat[-1]["content"] and "- Alice lives in Oslo." in chat[-1]["content"]
    for demo_user, demo_answer in zip(chat[1:-1:2], chat[2:-1:2], strict=True):  # the worked examples parse
        n = demo_user["content"].count("\n[") + 1
        window = [Message(i, f"m{i}", "user", "x") for i in range(n)]
        assert parse_extraction(demo_answer["content"], window, None, None).error is None
    assert render_window(WINDOW).splitlines() == [
        "[0] user Alice (2023-05-01T10:00:00): I live in Oslo.",
        "[1] assistant: Oslo is lovely.",
        "[2] user alice (2023-09-02T09:30:00): I moved to Porto.",
    ]
    assert prompt_hash(chat) == prompt_hash(build_prompt(WINDOW, [ExistingMemory("mem_1", "Alice lives in Oslo.", 0)]))
    assert prompt_hash(chat) != prompt_hash(build_prompt(WINDOW[:2]))
    assert "(none)" in build_prompt(WINDOW)[-1]["content"]
    assert len(PROMPT_SHA256) == 64 and PROMPT_SHA256 != DECIDE_PROMPT_SHA256


# -- the decide step ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "action", "target", "text"),
    [
        ('{"action": "ADD", "target": null, "text": null}', "ADD", None, None),
        ('{"action": "ADD"}', "ADD", None, None),
        ('{"action": "UPDATE", "target": 0, "text": "Alice lives in  Porto now."}', "UPDATE", "mem_oslo", None),
        ('{"action": "UPDATE", "target": 0}', "UPDATE", "mem_oslo", "Alice lives in Porto."),
        ('```json\n{"action": "DELETE", "target": 1, "text": null}\n```', "DELETE", "mem_cat", None),
        ('{"action": "NOOP", "target": 1, "text": "ignored"}', "NOOP", "mem_cat", None),
    ],
)
def test_valid_decisions_name_the_neighbour_by_id(raw, action, target, text):
    d = parse_decision(raw, CAND, NEIGHBOURS, "m", "h")
    assert (d.action, d.target, d.error, d.raw_output) == (action, target, None, raw)
    assert d.text == (text or ("Alice lives in Porto now." if action == "UPDATE" else None))


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty output"),
        ("UPDATE 0", "not JSON"),
        ("[]", "not an object"),
        ('{"action": "MERGE", "target": 0}', "action must be one of ADD, UPDATE, DELETE, NOOP"),
        ('{"action": "update", "target": 0}', "action must be one of"),
        ('{"action": "ADD", "target": 0}', "ADD takes no target"),
        ('{"action": "UPDATE", "target": 2}', "UPDATE needs a target memory number (0..1), not 2"),
        ('{"action": "DELETE", "target": null}', "DELETE needs a target"),
        ('{"action": "NOOP", "target": true}', "NOOP needs a target"),
        ('{"action": "NOOP", "target": "mem_oslo"}', "NOOP needs a target"),
        ('{"action": "UPDATE", "target": 0, "text": 5}', "text must be a string or null"),
        ('{"action": "UPDATE", "target": 0, "text": "  "}', "UPDATE text must be 1..500"),
        ('{"action": "ADD", "why": "new"}', "unknown field(s) ['why']"),
        ('{"action": "ADD", "action": "NOOP"}', "duplicate key 'action'"),
    ],
)
def test_malformed_decisions_are_rejected_with_a_reason(raw, reason):
    d = parse_decision(raw, CAND, NEIGHBOURS)
    assert d.action is None and d.target is None and d.raw_output == raw
    assert d.error is not None and reason in d.error, d.error


def test_decide_without_neighbours_can_only_add():
    assert parse_decision('{"action": "NOOP", "target": 0}', CAND, []).error == (
        "NOOP needs a target memory number (none: there are no existing memories), not 0"
    )
    chat = build_decide_prompt(Candidate("Alice lives in Oslo.", (1,), retracts=True), NEIGHBOURS)
    assert "[0] Alice lives in Oslo.\n[1] Alice has a cat." in chat[1]["content"]
    assert "(withdrawn by the speaker)" in chat[1]["content"]
    assert "(none)" in build_decide_prompt(CAND, [])[1]["content"]
    assert not isinstance(object(), Decider)
