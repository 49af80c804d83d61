"""`memledger llm serve` (an OpenAI-compatible server for a local model) and the ``openai`` extraction
backend against it: real models over real loopback HTTP, no canned response table."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from ledger.llm import ModelError, ModelRequestRefused, load_local_model
from ledger.memos.extraction.llm_prompt import build_prompt, prompt_hash
from ledger.memos.extraction.local import make_local_extractor
from ledger.memos.extraction.openai_compat import make_openai_extractor
from ledger.memos.llm_chat import complete, render_chat
from ledger.memos.llm_server import create_llm_app
from tests.cli_helpers import run
from tests.live_server import free_port
from tests.llm_fixtures import ANSWERS, CAND, NEIGHBOURS, WINDOW, shared_taught_model

ROOT = Path(__file__).resolve().parents[1]


class _Served:
    """``create_llm_app`` under uvicorn in a thread, on a free loopback port."""

    def __init__(self, app):
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "the LLM server did not start"
            time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def taught():
    return shared_taught_model()


@pytest.fixture(scope="module")
def served(taught) -> Iterator[_Served]:
    s = _Served(create_llm_app(taught, ["tiny"], max_tokens_limit=300, created=1700000000))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def random_served(tiny_model_dir) -> Iterator[_Served]:
    s = _Served(create_llm_app(load_local_model(str(tiny_model_dir)), ["random"]))
    yield s
    s.stop()


def _openai(url: str, **extra):
    return make_openai_extractor({"base_url": url, "model": "tiny", "max_new_tokens": 200, **extra})


def test_models_are_listed_under_every_name(served, taught):
    r = httpx.get(f"{served.url}/models")
    assert r.status_code == 200
    assert r.json() == {
        "object": "list",
        "data": [
            {"id": "tiny", "object": "model", "created": 1700000000, "owned_by": "memledger"},
            {"id": taught.model_id, "object": "model", "created": 1700000000, "owned_by": "memledger"},
        ],
    }


def test_a_completion_is_the_models_greedy_answer_in_the_openai_format(served, taught):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "I live in Oslo."}]
    r = httpx.post(f"{served.url}/chat/completions", json={"model": "tiny", "messages": messages, "max_tokens": 7})
    assert r.status_code == 200, r.text
    body = r.json()
    local = complete(taught, messages, 7)
    assert body["object"] == "chat.completion" and body["model"] == "tiny" and body["id"].startswith("chatcmpl-")
    assert body["choices"] == [
        {"index": 0, "message": {"role": "assistant", "content": local.text}, "finish_reason": local.finish_reason}
    ]
    n_prompt = len(taught.encode(render_chat(taught, messages)))
    assert body["usage"] == {
        "prompt_tokens": n_prompt,
        "completion_tokens": local.completion_tokens,
        "total_tokens": n_prompt + local.completion_tokens,
    }
    assert local.completion_tokens <= 7 and body["system_fingerprint"] == taught.model_id


def test_the_openai_backend_extracts_through_the_server_as_the_local_one_does(served, taught):
    ex = _openai(served.url)
    assert ex.name == "openai"
    got = ex.extract(WINDOW, ())
    here = make_local_extractor({"max_new_tokens": 200}, model=taught).extract(WINDOW, ())
    assert got.error is None and got.candidates == here.candidates and len(got.candidates) == 2
    assert got.raw_output == ANSWERS["window"] and got.prompt_hash == prompt_hash(build_prompt(WINDOW))
    assert got.model == f"openai:{served.url}:tiny"
    bad = ex.extract(WINDOW[:2], ())
    assert bad.candidates == () and bad.raw_output == ANSWERS["short"] and bad.error.startswith("not JSON")
    d = ex.decide(CAND, NEIGHBOURS)
    assert (d.action, d.target, d.text) == ("UPDATE", "mem_oslo", "Alice lives in Porto.")


def test_a_random_model_over_http_gives_malformed_output_recorded_and_skipped(random_served, tiny_model_dir):
    ex = make_openai_extractor({"base_url": random_served.url, "model": "random", "max_new_tokens": 10})
    got = ex.extract(WINDOW, ())
    assert got.candidates == () and got.error and got.raw_output
    model = load_local_model(str(tiny_model_dir))
    assert got.raw_output == complete(model, build_prompt(WINDOW), 10).text  # the served model's real answer
    assert got.model == f"openai:{random_served.url}:random"


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]}, 404, "model 'gpt-4' is not served"),
        ({"model": "tiny", "messages": []}, 400, "messages: List should have at least 1 item"),
        ({"model": "tiny", "messages": [{"role": "robot", "content": "hi"}]}, 400, "messages.0.role"),
        ({"model": "tiny", "messages": [{"role": "user", "content": ["hi"]}]}, 400, "messages.0.content"),
        ({"model": "tiny", "messages": [{"role": "user"}]}, 400, "messages.0.content: Field required"),
        ({"messages": [{"role": "user", "content": "hi"}]}, 400, "model: Field required"),
        ({"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}, 400, "max_tokens"),
        ({"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 301}, 400, "at most 300"),
        ({"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.7}, 400, "greedily"),
        ({"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "stream": True}, 400, "stream"),
        ({"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "n": 2}, 400, "n:"),
        (
            {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "response_format": {"type": "json"}},
            400,
            "response_format.type",
        ),
        (
            {"model": "tiny", "messages": [{"role": "user", "content": "x " * 5000}], "max_tokens": 10},
            400,
            "the model's context is 4096",
        ),
    ],
)
def test_bad_requests_get_openai_style_errors(served, body, status, message):
    r = httpx.post(f"{served.url}/chat/completions", json=body)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert message in err["message"] and err["type"] == "invalid_request_error"


def test_transport_failures_raise_so_the_window_is_retried(served, monkeypatch):
    dead = make_openai_extractor({"base_url": "http://127.0.0.1:9/v1", "model": "x", "timeout": 2})
    with pytest.raises(ModelError, match="unreachable"):
        dead.extract(WINDOW, ())
    monkeypatch.delenv("MEMLEDGER_TEST_LLM_KEY", raising=False)
    with pytest.raises(ModelError, match="MEMLEDGER_TEST_LLM_KEY"):
        _openai(served.url, api_key_env="MEMLEDGER_TEST_LLM_KEY").extract(WINDOW, ())
    monkeypatch.setenv("MEMLEDGER_TEST_LLM_KEY", "sk-local")
    assert _openai(served.url, api_key_env="MEMLEDGER_TEST_LLM_KEY").extract(WINDOW, ()).error is None


def test_the_cli_serves_a_model_directory_on_loopback(tiny_model_dir):
    port = free_port()
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    cmd = [sys.executable, "-m", "ledger", "llm", "serve", "--model", str(tiny_model_dir), "--port", str(port)]
    proc = subprocess.Popen([*cmd, "--name", "t"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "memledger llm serve did not answer"
                time.sleep(0.2)
        assert [m["id"] for m in r.json()["data"]][:2] == ["t", str(tiny_model_dir)]
        body = {"model": "t", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 3}
        answer = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body, timeout=60).json()
        assert answer["usage"]["completion_tokens"] <= 3 and isinstance(answer["choices"][0]["message"]["content"], str)
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--host", "0.0.0.0"], "--host 0.0.0.0 is not a loopback address"),
        (["--host", "example.org"], "is not a loopback address"),
        (["--port", "70000"], "--port must be 0..65535"),
        (["--max-tokens-limit", "0"], "--max-tokens-limit must be at least 1"),
        (["--model", "/nonexistent/model"], "is not a transformers model directory"),
    ],
)
def test_the_cli_refuses_bad_arguments_in_one_line(capsys, args, message):
    code, _, err = run(capsys, "llm", "serve", *args)
    assert code == 2 and message in err and err.startswith("error: ") and err.count("\n") == 1


def test_the_consumer_over_http_records_a_random_models_output_and_skips_it(ledger, random_served):
    from ledger.memos.extraction.consumer import ExtractionConsumer, decisions_of
    from ledger.memos.extraction.registry import build_extractor

    offsets = ledger.ingest("c", [{"role": "user", "content": "I live in Oslo."}], "alice").offsets
    ex = build_extractor("openai", {"base_url": random_served.url, "model": "random", "max_new_tokens": 8})
    ExtractionConsumer(ledger, ex).catch_up()
    (record,) = decisions_of(ledger, "openai")
    p = record.payload
    assert p["model"] == f"openai:{random_served.url}:random" and p["error"] and p["decisions"] == []
    assert p["output"]["raw_output"] and p["through_offset"] == offsets[-1]
    assert ledger.cube_memories("c") == {}  # recorded, skipped: nothing applied


def test_an_endpoint_refusing_json_mode_is_asked_again_without_it(served, capsys):
    """Before: ``json_mode = true`` against a server without ``response_format`` support failed every
    window with a 400 and the consumer retried it forever."""
    ex = _openai(served.url, json_mode=True)
    got = ex.extract(WINDOW, ())
    assert got.error is None and got.raw_output == ANSWERS["window"] and len(got.candidates) == 2
    assert "refuses response_format" in capsys.readouterr().err
    assert ex.backend.json_mode is False  # asked once, remembered


def test_a_prompt_over_the_endpoints_context_is_recorded_not_retried(served):
    from ledger.memos.extraction.base import Message

    big = [Message(1, "msg_big", "user", "word " * 5000, "Alice", None, {})]
    got = _openai(served.url, max_new_tokens=10).extract(big, ())
    assert got.candidates == () and "context" in got.error and got.prompt_hash


def test_a_refused_request_stops_the_consumer_instead_of_looping(ledger, served):
    from ledger.memos.extraction.consumer import ExtractionConsumer, decisions_of
    from ledger.memos.extraction.registry import build_extractor

    ledger.ingest("c", [{"role": "user", "content": "I live in Oslo."}], "alice")
    for section in ({"model": "gpt-4"}, {"max_new_tokens": 301}):  # not served; over the server's limit
        ex = build_extractor("openai", {"base_url": served.url, "model": "tiny", **section})
        with pytest.raises(ModelRequestRefused) as info:
            ExtractionConsumer(ledger, ex).run(max_seconds=60, retry_backoff=0.01)
        assert (info.value.status, info.value.code) in ((404, "model_not_found"), (400, None))
        assert list(decisions_of(ledger, "openai")) == []  # nothing recorded, nothing skipped
