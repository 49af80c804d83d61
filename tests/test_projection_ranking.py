"""Ranking cues of hybrid retrieval: speaker focus, time focus for "when" questions, min-max fusion."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ledger.errors import InvalidRequest
from projections.query_intent import asks_when, mentions_time
from projections.retrieval import FusionWeights
from projections.view_set import ViewSet


@pytest.fixture()
def ledger(data_dir_ledger):
    """Ranking runs over a data directory's views."""
    return data_dir_ledger


def ranked(ledger, query: str, weights: FusionWeights, k: int = 5) -> list[str]:
    with ViewSet.open(ledger, kinds=["keyword", "graph"], weights=weights) as views:
        return [h.memory_id for h in views.search(query, cube="chat", k=k)]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("When did Caroline go to the support group?", True),
        ("what year did she move?", True),
        ("How long ago was the trip?", True),
        ("In which month did they meet?", True),
        ("What did Caroline research?", False),
        ("Why is the group important when you are new?", False),
    ],
)
def test_asks_when(query: str, expected: bool) -> None:
    assert asks_when(query) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I went to the support group last Saturday", True),
        ("We moved there two years ago", True),
        ("The painting is finished, next week I frame it", True),
        ('(8:56 pm on 20 July, 2023) Caroline said, "I love painting"', False),
        ("Caroline said the cake was lovely", False),
    ],
)
def test_mentions_time(text: str, expected: bool) -> None:
    assert mentions_time(text) is expected


def test_speaker_focus_prefers_what_the_named_speaker_said(ledger) -> None:
    by_mel = ledger.add(
        "chat", "Caroline's research on adoption agencies sounds great", "u", metadata={"speaker": "Melanie"}
    ).id
    by_car = ledger.add(
        "chat", "I have been doing research on adoption agencies", "u", metadata={"speaker": "Caroline"}
    ).id
    off = replace(FusionWeights(), speaker_boost=1.0, time_boost=1.0, entity_boost=0.0)
    assert ranked(ledger, "What did Caroline research about adoption agencies?", off)[0] == by_mel
    on = replace(off, speaker_boost=6.0)
    got = ranked(ledger, "What did Caroline research about adoption agencies?", on)
    assert got[0] == by_car and set(got) == {by_mel, by_car}
    # a question naming nobody is ranked as before
    nameless = "research about adoption agencies"
    assert ranked(ledger, nameless, on) == ranked(ledger, nameless, off)


def test_speaker_focus_reads_configured_keys_and_signals(ledger) -> None:
    other = ledger.add("chat", "Dana talked about the marathon", "u", metadata={"author": "Sam"}).id
    dana = ledger.add("chat", "I ran the marathon in four hours", "u", metadata={"author": "Dana"}).id
    w = replace(FusionWeights(), speaker_boost=6.0, time_boost=1.0, entity_boost=0.0)
    with ViewSet.open(ledger, kinds=["keyword", "graph"], weights=w) as views:
        hits = views.search("How did Dana do in the marathon?", cube="chat")
        assert hits[0].memory_id == dana and hits[0].signals["speaker_boost"] == 6.0
        assert "speaker_boost" not in next(h for h in hits if h.memory_id == other).signals
    no_keys = replace(w, speaker_keys=())
    assert ranked(ledger, "How did Dana do in the marathon?", no_keys)[0] == other


def test_time_focus_only_for_when_questions(ledger) -> None:
    plain = ledger.add("chat", "The pottery class with the kids was so much fun, pottery is great", "u").id
    dated = ledger.add("chat", "Last Friday I took the kids to a pottery class", "u").id
    off = replace(FusionWeights(), time_boost=1.0, speaker_boost=1.0)
    on = replace(off, time_boost=3.0)
    assert ranked(ledger, "When did she take the kids to the pottery class?", off)[0] == plain
    assert ranked(ledger, "When did she take the kids to the pottery class?", on)[0] == dated
    assert ranked(ledger, "Did she take the kids to the pottery class?", on)[0] == plain


def test_minmax_normalisation_and_unknown_name(ledger) -> None:
    a = ledger.add("chat", "apples and pears in the orchard", "u").id
    ledger.add("chat", "pears only", "u")
    assert ranked(ledger, "apples pears", replace(FusionWeights(), normalise="minmax"))[0] == a
    with pytest.raises(InvalidRequest):
        ranked(ledger, "apples pears", replace(FusionWeights(), normalise="zscore"))
