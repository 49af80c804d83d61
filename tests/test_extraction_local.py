"""The ``local`` LLM extraction backend: a real (tiny) model through the chat layout and greedy decoding.

A tiny model taught in the run (tests/llm_fixtures.py) gives valid answers, a malformed one and a
decision; a random model gives malformed output, which is recorded and yields nothing; SmolLM2 runs
in a slow test on a simple conversation (structure only: its answers are not asserted)."""

from __future__ import annotations

import pytest

from ledger.errors import InvalidRequest
from ledger.llm import load_local_model, weights_fingerprint
from ledger.memos.extraction.base import Candidate, Extraction, Extractor, Message
from ledger.memos.extraction.llm_decide import Decider, build_decide_prompt
from ledger.memos.extraction.llm_prompt import PROMPT_VERSION, build_prompt, prompt_hash
from ledger.memos.extraction.llm_settings import LLMExtractionSettings
from ledger.memos.extraction.local import make_local_extractor
from ledger.memos.llm_chat import complete
from tests.llm_fixtures import ANSWERS, CAND, NEIGHBOURS, WINDOW, shared_taught_model


@pytest.fixture(scope="module")
def taught():
    return shared_taught_model()


def test_a_valid_answer_becomes_candidates_with_offsets_times_and_the_model(taught):
    ex = make_local_extractor({"max_new_tokens": 200}, model=taught)
    as_port: Extractor = ex  # the port's protocol (structural)
    assert isinstance(ex, Decider) and as_port.name == "local" and ex.version == "llm-1+decide-1"
    got = ex.extract(WINDOW, ())
    assert got.error is None and got.raw_output == ANSWERS["window"]
    assert got.candidates == (
        Candidate("Alice lives in Oslo.", (40, 47), True, "alice|lives_in", "2023-09-02", PROMPT_VERSION),
        Candidate("Alice lives in Porto.", (47,), False, "alice|lives_in", "2023-09-02T09:30:00", PROMPT_VERSION),
    )
    assert got.model == f"{taught.model_id}#weights:{weights_fingerprint(taught.model)[:16]}"
    assert got.prompt_hash == prompt_hash(build_prompt(WINDOW))
    assert ex.extract(WINDOW, ()) == got  # greedy: the same window gives the same extraction


def test_malformed_output_is_recorded_and_nothing_is_extracted(taught):
    ex = make_local_extractor(None, model=taught)
    got = ex.extract(WINDOW[:2], ())
    assert got.candidates == () and got.raw_output == ANSWERS["short"]
    assert got.error is not None and got.error.startswith("not JSON")
    assert got.prompt_hash == prompt_hash(build_prompt(WINDOW[:2])) and got.model == ex.model


def test_the_model_decides_among_neighbours(taught):
    ex = make_local_extractor(None, model=taught)
    d = ex.decide(CAND, NEIGHBOURS)
    assert (d.action, d.target, d.text, d.error) == ("UPDATE", "mem_oslo", "Alice lives in Porto.", None)
    assert d.raw_output == ANSWERS["decide"] and d.prompt_hash == prompt_hash(build_decide_prompt(CAND, NEIGHBOURS))
    assert ex.decide(CAND, []).action == "ADD"  # nothing to compare with: no model call


def test_a_random_model_from_a_directory_gives_malformed_output_recorded(tiny_model_dir):
    ex = make_local_extractor({"model": str(tiny_model_dir), "max_new_tokens": 12})
    got = ex.extract(WINDOW, ())
    assert isinstance(got, Extraction) and got.candidates == ()
    assert got.error and got.raw_output
    model = load_local_model(str(tiny_model_dir))
    assert got.raw_output == complete(model, build_prompt(WINDOW), 12, stop_at_json_end=True).text
    assert got.model is not None and got.model.startswith("path:") and "#weights:" in got.model
    assert ex.extract([], ()) == Extraction(candidates=(), model=got.model)  # no call for an empty window


def test_a_window_longer_than_the_context_is_recorded_not_raised():
    from tests.memos_fixtures import tiny_model

    small = tiny_model(seed=3)
    small.model.config.max_position_embeddings = 300
    got = make_local_extractor({"max_new_tokens": 8}, model=small).extract(WINDOW, ())
    assert got.candidates == () and got.raw_output is None
    assert got.error is not None and "the model's context is 300" in got.error


@pytest.mark.parametrize(
    ("section", "backend", "message"),
    [
        ({"model": 3}, "local", "[extraction] model must be a non-empty string"),
        ({"model": " "}, "local", "[extraction] model must be a non-empty string"),
        ({"max_new_tokens": 0}, "local", "[extraction] max_new_tokens must be between 1 and 4096"),
        ({"max_new_tokens": "9"}, "local", "[extraction] max_new_tokens must be an integer"),
        ({"max_new_tokens": 2.5}, "local", "[extraction] max_new_tokens must be an integer"),
        ({"max_new_tokens": True}, "local", "[extraction] max_new_tokens must be an integer"),
        ({"timeout": 0, "base_url": "http://h/v1", "model": "m"}, "openai", "[extraction] timeout must be between"),
        ({"json_mode": "yes"}, "local", "[extraction] json_mode must be true or false"),
        ({"model": "m"}, "openai", "[extraction] backend 'openai' needs base_url"),
        ({"base_url": "127.0.0.1:8400", "model": "m"}, "openai", "base_url must be an http(s) URL"),
        ({"base_url": "http://127.0.0.1:1/v1"}, "openai", "[extraction] backend 'openai' needs model"),
        ({"api_key_env": "sk-abc123"}, "local", "api_key_env must be the NAME of an environment variable"),
    ],
)
def test_bad_settings_are_one_line_errors(section, backend, message):
    with pytest.raises(InvalidRequest) as err:
        LLMExtractionSettings.from_config(section, backend)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert "abc123" not in str(err.value)  # a key pasted by mistake is never echoed


def test_settings_defaults_and_sources(tmp_path):
    from ledger.config import Config

    assert LLMExtractionSettings.from_config(None, "local") == LLMExtractionSettings()
    cfg = Config(tmp_path, {"extraction": {"backend": "local", "model": "/m", "max_new_tokens": 64, "threshold": 1}})
    assert LLMExtractionSettings.from_config(cfg, "local").model == "/m"
    with pytest.raises(InvalidRequest, match=r"\[extraction\] must be a table, not int"):
        LLMExtractionSettings.from_config(3, "local")
    from ledger.memos.extraction.registry import build_extractor

    with pytest.raises(InvalidRequest, match="max_new_tokens must be between"):
        build_extractor("local", {"max_new_tokens": -1})  # the registry's factories read the same keys


@pytest.mark.slow
def test_smollm2_on_a_simple_conversation():
    from ledger.llm import ModelError

    try:
        ex = make_local_extractor({"model": "smollm2", "max_new_tokens": 160})
    except ModelError as exc:
        pytest.skip(str(exc))
    first = [
        Message(1, "m1", "user", "I live in Oslo.", name="Alice", timestamp="2023-05-01T10:00:00"),
        Message(2, "m2", "assistant", "Oslo is a lovely city.", timestamp="2023-05-01T10:00:05"),
    ]
    later = [Message(9, "m3", "user", "I moved to Porto.", name="Alice", timestamp="2023-09-01T08:00:00")]
    for window in (first, later):
        got = ex.extract(window, ())
        print(f"\nSmolLM2 on {[m.content for m in window]}:\n  raw: {got.raw_output!r}\n  error: {got.error}")
        for c in got.candidates:
            print(f"  candidate: {c}")
        assert got.model is not None and got.model.startswith("HuggingFaceTB/SmolLM2-135M-Instruct")
        assert got.raw_output and got.prompt_hash == prompt_hash(build_prompt(window))
        assert (got.error is None) or got.candidates == ()
        offsets = {m.offset for m in window}
        assert all(c.text and set(c.source_offsets) <= offsets for c in got.candidates)


def _ingest_window(led):
    """WINDOW's messages, ingested as one call (so the consumer hands the model the same window)."""
    msgs = [
        {"role": m.role, "content": m.content, **({"name": m.name} if m.name else {})}
        | ({"timestamp": m.timestamp} if m.timestamp else {})
        for m in WINDOW
    ]
    return led.ingest("c", msgs, "alice", user_id="alice").offsets


def test_the_consumer_records_the_local_models_decisions_with_lineage(ledger, taught):
    from ledger.memos.extraction.consumer import ExtractionConsumer, decisions_of
    from ledger.timemachine.lineage import lineage

    offsets = _ingest_window(ledger)
    ex = make_local_extractor({"max_new_tokens": 200}, model=taught)
    ExtractionConsumer(ledger, ex).catch_up()
    (record,) = decisions_of(ledger, "local")
    p = record.payload
    assert (p["extractor"], p["version"], p["model"], p["error"]) == ("local", ex.version, ex.model, None)
    assert p["prompt_hash"] == prompt_hash(build_prompt(WINDOW)) and p["source_offsets"] == offsets
    assert p["output"]["raw_output"] == ANSWERS["window"]
    assert [d["kind"] for d in p["decisions"]] == ["NOOP", "ADD"]  # the retracted Oslo fact was never stored
    (mem,) = ledger.cube_memories("c").values()
    assert mem.text == "Alice lives in Porto." and mem.metadata["observed_at"] == "2023-09-02T09:30:00"
    message_ids = {e.offset: e.payload["message_id"] for e in ledger.events() if e.offset in offsets}
    assert {e.parent for e in lineage(ledger, mem.memory_id).sources} == {message_ids[offsets[2]]}


def test_the_consumer_records_malformed_local_output_and_applies_nothing(ledger, tiny_model_dir):
    from ledger.memos.extraction.consumer import ExtractionConsumer, decisions_of

    offsets = _ingest_window(ledger)
    ExtractionConsumer(ledger, make_local_extractor({"model": str(tiny_model_dir), "max_new_tokens": 8})).catch_up()
    (record,) = decisions_of(ledger, "local")
    p = record.payload
    assert p["error"] and p["decisions"] == [] and p["output"]["raw_output"]
    assert p["through_offset"] == offsets[-1] and ledger.cube_memories("c") == {}


@pytest.mark.parametrize(
    ("pieces", "done_at"),
    [
        (['{"facts": ', "[]", "}", " more"], 2),
        (["  \n", '{"a": "}', " {[ ", '", "b": [1, {"c": 2}]}'], 3),  # brackets inside strings do not count
        (['{"a": "\\"}', '"}'], 1),  # an escaped quote does not end the string
        (['{"a": "x\\\\"}'], 0),  # an escaped backslash does
        (["[1, [2]", "]"], 1),
        (["Here: ", '{"facts": []}'], None),  # prose first: never stops early
        (["```json\n", '{"facts": []}'], None),
    ],
)
def test_json_end_stops_when_the_leading_object_closes(pieces, done_at):
    from ledger.memos.llm_chat import JsonEnd

    watcher = JsonEnd()
    ends = [watcher.feed(p) for p in pieces]
    assert ends.index(True) == done_at if done_at is not None else not any(ends)
