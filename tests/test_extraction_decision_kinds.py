"""Every reconciliation decision (ADD, UPDATE, DELETE, NOOP) reached through each LLM backend: the
local backend (a tiny model taught two answers, in process) and the OpenAI-compatible backend (the
same model served over loopback HTTP by ``create_llm_app``), next to the rules backend on the same
conversation. A real model and a real server, no canned response table."""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn

from ledger.memos.extraction.base import Message
from ledger.memos.extraction.consumer import ExtractionConsumer, decisions_of
from ledger.memos.extraction.llm_prompt import build_prompt
from ledger.memos.extraction.local import make_local_extractor
from ledger.memos.extraction.openai_compat import make_openai_extractor
from ledger.memos.extraction.registry import build_extractor
from ledger.memos.extraction.settings import ExtractionSettings
from ledger.memos.llm_server import create_llm_app
from tests.live_server import free_port
from tests.llm_fixtures import taught_model

FIRST = "I live in Oslo. I like tea."
SECOND = "I moved to Porto. I no longer like tea. Yes, I live in Porto!"


def _fact(text: str, key: str, retracts: bool = False) -> dict:
    return {"text": text, "retracts": retracts, "key": key, "observed_at": None, "source": [0]}


ANSWERS = {
    FIRST: json.dumps(
        {"facts": [_fact("Alice lives in Oslo.", "alice|lives_in"), _fact("Alice likes tea.", "alice|tea")]}
    ),
    SECOND: json.dumps(
        {
            "facts": [
                _fact("Alice lives in Porto.", "alice|lives_in"),
                _fact("Alice likes tea.", "alice|tea", retracts=True),
                _fact("Alice lives in Porto.", "alice|lives_in"),
            ]
        }
    ),
}
# the consumer hands no known facts to the model here ([extraction] context = 0), so each prompt is
# exactly the one the model was taught
SETTINGS = ExtractionSettings(context=0)


def _prompt(text: str) -> list[dict[str, str]]:
    return build_prompt([Message(0, "m", "user", text, name="Alice")])


@functools.cache
def _model():
    return taught_model([(_prompt(text), answer) for text, answer in ANSWERS.items()], seed=3)


@pytest.fixture(scope="module")
def model():
    return _model()


@pytest.fixture(scope="module")
def served(model) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_llm_app(model, ["taught"]), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the LLM server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/v1"
    server.should_exit = True
    thread.join(10)


def _run(ledger, extractor, cube: str, calls: tuple[str, ...] = (FIRST, SECOND)) -> list[list[tuple[str, str | None]]]:
    """Ingest the two calls into ``cube``, extract each, and return the decisions: (kind, the memory
    written, else the one matched)."""
    consumer = ExtractionConsumer(ledger, extractor, SETTINGS, track=cube, cube=cube)
    for text in calls:
        ledger.ingest(cube, [{"role": "user", "content": text, "name": "Alice"}], "alice")
        consumer.catch_up()
    out = []
    for record in decisions_of(ledger, cube):
        assert record.payload["error"] is None, record.payload["error"]
        out.append([(d["kind"], d["memory_id"] or d["target"]) for d in record.payload["decisions"]])
    return out


def _check(ledger, cube: str, decided) -> None:
    (first, second) = decided
    assert [k for k, _ in first] == ["ADD", "ADD"]
    oslo, tea = (mid for _, mid in first)
    assert second == [("UPDATE", oslo), ("DELETE", tea), ("NOOP", oslo)]
    current = sorted(m.text or "" for m in ledger.cube_memories(cube).values() if not m.deleted)
    assert current == ["Alice lives in Porto."] and ledger.history(tea)[-1].deleted
    assert [v.text for v in ledger.history(oslo)] == ["Alice lives in Oslo.", "Alice lives in Porto."]


@pytest.mark.parametrize("backend", ["local", "openai"])
def test_each_llm_backend_reaches_every_decision_kind(ledger, model, served, backend):
    if backend == "local":
        extractor = make_local_extractor({"max_new_tokens": 200}, model=model)
    else:
        extractor = make_openai_extractor({"base_url": served, "model": "taught", "max_new_tokens": 200})
    decided = _run(ledger, extractor, f"c-{backend}")
    _check(ledger, f"c-{backend}", decided)
    raw = [r.payload["output"]["raw_output"] for r in decisions_of(ledger, f"c-{backend}")]
    assert raw == [ANSWERS[FIRST], ANSWERS[SECOND]]  # the model's own answers, recorded


def test_the_rules_backend_decides_the_same_conversation_alike(ledger):
    # the rules write "moved to Porto" as said, and "I live in Porto" then updates it to that text:
    # the NOOP comes from saying the same again
    decided = _run(ledger, build_extractor("rules"), "c-rules", (FIRST, SECOND, "I live in Porto."))
    (first, second, third) = decided
    assert [k for k, _ in first] == ["ADD", "ADD"]
    assert [k for k, _ in second] == ["UPDATE", "DELETE", "UPDATE"] and third == [("NOOP", first[0][1])]
    current = sorted(m.text or "" for m in ledger.cube_memories("c-rules").values() if not m.deleted)
    assert current == ["Alice lives in Porto."]
