"""The rules extractor, relative dates, the [extraction] settings and the extractor registry."""

from __future__ import annotations

import pytest

from ledger.config import Config
from ledger.errors import InvalidRequest
from ledger.memos.extraction.base import Message
from ledger.memos.extraction.dates import resolve
from ledger.memos.extraction.reconcile import normalise, similarity
from ledger.memos.extraction.registry import build_extractor, known_extractors, register_extractor
from ledger.memos.extraction.rules import RulesExtractor
from ledger.memos.extraction.settings import ExtractionSettings

TS = "2024-05-08T10:00:00Z"  # a Wednesday


def _facts(text: str, role: str = "user", name: str | None = "Alice", scope: dict | None = None):
    msg = Message(7, "msg_1", role, text, name, TS, scope or {})
    return [(c.text, c.key, c.retracts, c.rule) for c in RulesExtractor().extract([msg], []).candidates]


@pytest.mark.parametrize(
    ("said", "fact", "key", "retracts"),
    [
        ("I don't eat pork.", "Alice does not eat pork.", "alice|eat|pork", False),
        ("I eat pork.", "Alice eats pork.", "alice|eat|pork", False),
        ("I'm not a vegetarian.", "Alice is not a vegetarian.", "alice|is|vegetarian", False),
        ("I no longer live in Oslo.", "Alice lives in Oslo.", "alice|residence", True),
        ("I don't like tea anymore.", "Alice likes tea.", "alice|pref|tea", True),
        ("I stopped eating meat.", "Alice eats meat.", "alice|eat|meat", True),
        ("I'm no longer a student.", "Alice is a student.", "alice|is|student", True),
        ("We are planning a trip to Japan.", "Alice and others are planning a trip to Japan.", None, False),
        ("I plan to learn Rust.", "Alice plans to learn Rust.", None, False),
        ("We will visit Kyoto.", "Alice and others will visit Kyoto.", None, False),
        ("We live in Lisbon.", "Alice and others live in Lisbon.", "alice|residence", False),
        ("Our dog is called Rex.", "The dog of Alice and others is called Rex.", "alice|our:dog", False),
        ("I moved to Porto.", "Alice moved to Porto.", "alice|residence", False),
        ("I work at Acme.", "Alice works at Acme.", "alice|work", False),
        ("I really love hiking.", "Alice really loves hiking.", "alice|pref|hiking", False),
        ("My sister is a nurse.", "Alice's sister is a nurse.", "alice|my:sister", False),
        ("Call me Ali.", "Alice wants to be called Ali.", "alice|name", False),
        ("I'm still living in Oslo.", "Alice lives in Oslo.", "alice|residence", False),
        ("These days I live in Oslo.", "Alice lives in Oslo.", "alice|residence", False),
        ("Yes, I work at Acme!", "Alice works at Acme.", "alice|work", False),
        ("I'm working at Acme.", "Alice works at Acme.", "alice|work", False),
        ("I love hiking so much.", "Alice loves hiking so much.", "alice|pref|hiking", False),
        ("I'm going to Rome.", "Alice is going to Rome.", "alice|is|going to rome", False),
    ],
)
def test_each_shape(said, fact, key, retracts):
    assert [(t, k, r) for t, k, r, _ in _facts(said)] == [(fact, key, retracts)]


def test_dislike_and_like_share_a_key_so_one_supersedes_the_other():
    (like,) = _facts("I like tea.")
    (dont,) = _facts("I don't like tea.")
    assert like[1] == dont[1] == "alice|pref|tea"


@pytest.mark.parametrize(
    ("habit", "negated"),
    [
        ("I eat eggs every week.", "I do not eat eggs."),
        ("I drink coffee daily.", "I don't drink coffee."),
        ("I play tennis on weekends.", "I don't play tennis."),
        ("I usually read novels.", "I don't read novels."),
    ],
)
def test_a_habit_with_a_frequency_shares_the_key_of_its_negation(habit, negated):
    """Frequency words qualify a fact but are not its attribute: "I do not eat eggs" supersedes
    "I eat eggs every week" (the update bench's negation failures)."""
    ((_, key, _, _),) = _facts(habit)
    ((_, neg_key, _, _),) = _facts(negated)
    assert key == neg_key is not None


@pytest.mark.parametrize("said", ["What do I eat?", "Maybe I live in Rome.", "I think I like jazz.", "Hello there."])
def test_questions_hedges_and_small_talk_give_nothing(said):
    assert _facts(said) == []


def test_only_user_messages_and_the_speaker_falls_back_to_the_user_id():
    assert _facts("I live in Oslo.", role="assistant") == []
    assert _facts("I live in Oslo.", name=None, scope={"user_id": "u7"})[0][0] == "U7 lives in Oslo."
    assert _facts("I live in Oslo.", name=None)[0][0] == "User lives in Oslo."


def test_several_facts_in_one_message_keep_their_order_and_are_not_repeated():
    got = [t for t, *_ in _facts("I live in Oslo and I like tea. I like tea! I don't eat pork.")]
    assert got == ["Alice lives in Oslo.", "Alice likes tea.", "Alice does not eat pork."]


@pytest.mark.parametrize(
    ("text", "out", "when"),
    [
        ("Alice visited Rome yesterday.", "Alice visited Rome on 2024-05-07.", "2024-05-07"),
        ("Alice ran today.", "Alice ran on 2024-05-08.", "2024-05-08"),
        ("Alice met Bob 3 days ago.", "Alice met Bob on 2024-05-05.", "2024-05-05"),
        ("Alice met Bob two weeks ago.", "Alice met Bob on 2024-04-24.", "2024-04-24"),
        ("Alice went to Berlin last week.", "Alice went to Berlin in the week of 2024-04-29.", "2024-04-29"),
        ("Alice moved last month.", "Alice moved in 2024-04.", "2024-04"),
        ("Alice started yoga last year.", "Alice started yoga in 2023.", "2023"),
        ("Alice likes tea.", "Alice likes tea.", None),
    ],
)
def test_relative_dates_resolve_against_the_message_time(text, out, when):
    assert resolve(text, TS) == (out, when)


def test_relative_dates_need_a_time():
    assert resolve("Alice ran yesterday.", None) == ("Alice ran yesterday.", None)
    assert resolve("Alice ran yesterday.", "not a time") == ("Alice ran yesterday.", None)


def test_normalised_text_and_similarity():
    assert normalise("Alice likes THE tea!") == normalise("alice  likes tea") == "alice likes tea"
    assert similarity("Alice likes tea.", "alice likes tea") == 1.0
    assert similarity("Alice likes tea.", "Bob owns a car.") == 0.0
    assert similarity("", "x") == 0.0


def _settings(**raw):
    return ExtractionSettings.from_config(Config(data_dir=__import__("pathlib").Path("."), raw={"extraction": raw}))


def test_settings_defaults_and_checks():
    s = ExtractionSettings.from_config(None)
    assert (s.backend, s.in_process, s.thresholds.duplicate, s.thresholds.update, s.context) == (
        "rules",
        True,
        0.9,
        0.75,
        10,
    )
    assert _settings(duplicate_threshold=1, update_threshold=0.5).thresholds.update == 0.5
    for bad, needle in (
        ({"backend": ""}, "backend"),
        ({"in_process": "yes"}, "in_process"),
        ({"update_threshold": 2}, "update_threshold"),
        ({"duplicate_threshold": True}, "duplicate_threshold"),
        ({"update_threshold": 0.95}, "must not exceed"),
        ({"context": -1}, "context"),
    ):
        with pytest.raises(InvalidRequest, match=needle):
            _settings(**bad)


def test_registry_names_factories_and_module_targets():
    assert "rules" in known_extractors()
    assert build_extractor("rules").name == "rules"
    assert build_extractor("tests.extraction_support:build_slow").name == "rules"
    with pytest.raises(InvalidRequest, match="unknown extractor 'nope'"):
        build_extractor("nope")
    with pytest.raises(InvalidRequest, match="no module"):
        build_extractor("no_such_module:build")
    with pytest.raises(InvalidRequest, match="without ':'"):
        register_extractor("a:b", lambda options: RulesExtractor())


def _pool(*memories):
    from ledger.memos.extraction.reconcile import Current, Pool

    return Pool([Current(*m) for m in memories])


def _cand(text, key=None, retracts=False):
    from ledger.memos.extraction.base import Candidate

    return Candidate(text, (1,), retracts=retracts, key=key)


def test_reconcile_retractions_by_text_by_key_and_of_nothing():
    from ledger.memos.extraction.settings import Thresholds

    t = Thresholds()
    pool = _pool(
        ("m1", "Alice lives in Oslo, Norway.", "alice|residence"), ("m2", "Alice likes tea.", "alice|pref|tea")
    )
    d = pool.decide(0, _cand("Alice lives in Oslo.", "alice|residence", True), t, "new")
    assert (d.kind, d.target, d.reason) == ("DELETE", "m1", "same fact key as the retracted fact")
    d = pool.decide(1, _cand("Alice likes tea.", "alice|pref|tea", True), t, "new")
    assert (d.kind, d.target, d.reason) == ("DELETE", "m2", "states the retracted fact")
    d = pool.decide(2, _cand("Alice likes tea.", "alice|pref|tea", True), t, "new")
    assert (d.kind, d.target, d.reason) == ("NOOP", None, "retracts nothing current")


def test_reconcile_never_deletes_or_updates_a_held_or_frozen_memory():
    from ledger.memos.extraction.reconcile import Current, Pool
    from ledger.memos.extraction.settings import Thresholds

    t = Thresholds()
    held = Current("m1", "Alice lives in Oslo.", "alice|residence")
    held.held = True
    frozen = Current("m2", "Alice likes tea.", "alice|pref|tea", writable=False)
    pool = Pool([held, frozen])
    d = pool.decide(0, _cand("Alice lives in Oslo.", "alice|residence", True), t, "new")
    assert (d.kind, d.target, d.reason) == ("NOOP", "m1", "would delete, but under a legal hold")
    d = pool.decide(1, _cand("Alice likes tea.", "alice|pref|tea", True), t, "new")
    assert (d.kind, d.reason) == ("NOOP", "would delete, but not writable")
    d = pool.decide(2, _cand("Alice moved to Porto.", "alice|residence"), t, "m3")
    assert (d.kind, d.memory_id) == ("ADD", "m3")  # the held memory of that key is left as it is


def test_reconcile_updates_a_similar_memory_without_a_key():
    from ledger.memos.extraction.settings import Thresholds

    pool = _pool(("m1", "Alice and Bob are planning a long trip to Japan.", None))
    d = pool.decide(0, _cand("Alice and Bob are planning a trip to Japan."), Thresholds(), "new")
    assert (d.kind, d.target, d.reason) == ("UPDATE", "m1", "similar memory with different content")
    assert pool.memories[0].text == "Alice and Bob are planning a trip to Japan."


def _hybrid_pool(*memories):
    from ledger.memos.extraction.reconcile import Current, Pool, VectorCache
    from projections.vector.setup import shared_embedder

    return Pool([Current(*m) for m in memories], vectors=VectorCache(shared_embedder("minilm").embed))


def test_hybrid_reconciliation_makes_a_paraphrase_a_noop_and_nothing_else():
    """With vectors (MiniLM), "Alice is still living in Oslo" is the memory "Alice lives in Oslo" said
    again; another value of the attribute, or the same words negated, is not."""
    from ledger.memos.extraction.reconcile import Current
    from ledger.memos.extraction.settings import Thresholds

    t = Thresholds()
    pool = _hybrid_pool(("m1", "Alice lives in Oslo.", None), ("m2", "Alice likes tea.", "alice|pref|tea"))
    d = pool.decide(0, _cand("Alice is living in Oslo these days."), t, "new0")
    assert (d.kind, d.target, d.reason) == ("NOOP", "m1", "paraphrase of a current memory") and d.score >= 0.93
    lexical = _pool(("m1", "Alice lives in Oslo.", None))
    assert lexical.decide(0, _cand("Alice is living in Oslo these days."), t, "new0").kind == "ADD"
    d = pool.decide(1, _cand("Alice likes coffee.", "alice|pref|coffee"), t, "new1")
    assert d.kind == "ADD"  # close in the embedding (0.8), a different fact
    d = pool.decide(2, _cand("Alice does not like tea.", "alice|pref|tea"), t, "new2")
    assert (d.kind, d.target) == ("UPDATE", "m2")  # the negation supersedes by key, never a NOOP
    pool.memories.append(Current("m3", "Alice likes thing21.", None))
    d = pool.decide(4, _cand("Alice likes thing22."), t, "new4")
    assert d.kind == "ADD"  # cosine over 0.93, but another name: names and numbers must match
    d = pool.decide(3, _cand("Alice is living in Oslo.", retracts=True), t, "new3")
    assert (d.kind, d.target, d.reason) == ("DELETE", "m1", "states the retracted fact in other words")


def test_hybrid_context_ranks_paraphrases_the_word_sets_miss():
    pool = _hybrid_pool(("m1", "Alice resides in Oslo.", None), ("m2", "Alice owns a bicycle.", None))
    assert [m.id for m in pool.context(["Where does Alice live?"], 1)] == ["m1"]


def test_similarity_setting():
    assert ExtractionSettings.from_config(None).similarity == "hybrid"
    assert _settings(similarity="lexical").similarity == "lexical"
    assert _settings(vector_duplicate_threshold=0.8).thresholds.vector_duplicate == 0.8
    with pytest.raises(InvalidRequest, match="similarity must be one of hybrid, lexical"):
        _settings(similarity="cosine")
    with pytest.raises(InvalidRequest, match="vector_duplicate_threshold"):
        _settings(vector_duplicate_threshold=2)


def test_a_retraction_deletes_the_memory_of_its_key_that_names_the_same_place():
    """'I no longer live in Porto' retracts 'Alice moved to Porto' (same key, same name), never
    'Alice moved to Lyon' (same key, another name)."""
    from ledger.memos.extraction.settings import Thresholds

    pool = _pool(("m1", "Alice moved to Lyon.", "alice|residence"))
    d = pool.decide(0, _cand("Alice lives in Porto.", "alice|residence", True), Thresholds(), "new")
    assert d.kind == "NOOP"
    pool = _pool(("m1", "Alice moved to Porto.", "alice|residence"))
    d = pool.decide(0, _cand("Alice lives in Porto.", "alice|residence", True), Thresholds(), "new")
    assert (d.kind, d.target, d.reason) == ("DELETE", "m1", "same fact key and names as the retracted fact")
