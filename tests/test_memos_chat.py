"""MOS chat: retrieval, KV-cache injection, local and OpenAI-compatible generation, write-back, facts."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from ledger.errors import InvalidRequest  # noqa: E402
from ledger.llm import OpenAICompatibleLLM  # noqa: E402
from ledger.memos.chat import ChatSession, scan_retriever  # noqa: E402
from ledger.memos.fact_extraction import extract_facts  # noqa: E402
from ledger.memos.scheduler import plan_at  # noqa: E402
from ledger.memos.scheduler_policy import SchedulerPolicy  # noqa: E402
from projections.kv_cache import KVCacheView  # noqa: E402
from projections.kv_store import KVStore  # noqa: E402
from tests.memos_fixtures import new_ledger, tiny_model  # noqa: E402


@pytest.fixture(scope="module")
def model():
    return tiny_model()


def _cube(ledger):
    act = ledger.add("alice", "Alice is allergic to peanuts.", "alice").id
    ledger.change_state(act, "activated", "scheduler")
    tea = ledger.add("alice", "Alice drinks green tea every morning.", "alice").id
    old = ledger.add("alice", "Alice used to drink tea with lemon.", "alice").id
    ledger.change_state(old, "archived", "scheduler")
    ledger.add("alice", "The car is parked on level 3.", "alice")
    return act, tea, old


def test_chat_turn_with_kv_cache_writes_the_exchange_back(tmp_path, model):
    ledger = new_ledger(tmp_path)
    act, tea, old = _cube(ledger)
    view = KVCacheView(ledger, KVStore(tmp_path / "kv"))
    chat = ChatSession(
        ledger, "alice", "alice", scan_retriever(ledger), model=model, kv_view=view, max_new_tokens=6, k=3
    )
    head = ledger.head()
    turn = chat.send("What tea do I drink? I live in Lyon and my cat is called Miso.")
    assert turn.retrieved[0] == tea and old not in turn.retrieved and act not in turn.retrieved
    assert turn.activated == [act]
    assert turn.cache_key is not None and turn.cached_tokens > 0 and view.store.has(turn.cache_key)
    assert turn.prefilled_tokens > 0 and turn.answer
    events = list(ledger.events(head + 1))
    assert [e.type for e in events] == [
        "memory.read",
        "memory.added",
        "memory.added",
        "message.added",
        "extraction.decided",
        "memory.added",
        "memory.added",
    ]
    read = events[0]
    assert read.actor == "alice" and read.payload["operation"] == "chat"
    assert read.payload["memory_ids"] == [act, *turn.retrieved] and "tea" in read.payload["query"]
    user = ledger.get(turn.user_memory)
    assert user.text.startswith("What tea") and user.tags == ["chat", "user-turn"]
    bot = ledger.get(turn.assistant_memory)
    assert bot.text == turn.answer and bot.metadata["reply_to"] == turn.user_memory
    assert bot.metadata["kv_cache"] == turn.cache_key and bot.created_by.startswith("assistant:")
    assert [f["text"] for f in turn.facts] == ["Alice lives in Lyon.", "Alice's cat is called Miso."]
    fact = ledger.get(turn.facts[0]["id"])
    message = events[3]
    assert message.payload["role"] == "user" and message.payload["session_id"] == chat.session_id
    assert fact.derived_from == [message.payload["message_id"]] and fact.tags == ["fact", "extracted"]
    # the second turn sees the first in its history, reuses the cache, and facts are not repeated
    n_cached = len(view.store.entries())
    turn2 = chat.send("I live in Lyon.")
    assert turn2.facts == [] and turn2.cache_key == turn.cache_key and len(view.store.entries()) == n_cached


def test_cached_and_uncached_chat_give_the_same_answer(tmp_path, model):
    answers = []
    for use_cache in (True, False):
        d = tmp_path / str(use_cache)
        d.mkdir()
        ledger = new_ledger(d)
        _cube(ledger)
        view = KVCacheView(ledger, KVStore(d / "kv")) if use_cache else None
        chat = ChatSession(
            ledger,
            "alice",
            "alice",
            scan_retriever(ledger),
            model=model,
            kv_view=view,
            max_new_tokens=12,
            extract=False,
        )
        t = chat.send("Tell me about my tea.")
        answers.append((t.answer, t.cached_tokens))
    assert answers[0][0] == answers[1][0]
    assert answers[0][1] > 0 and answers[1][1] == 0


def test_injected_retriever_and_bad_input(tmp_path, model):
    ledger = new_ledger(tmp_path)
    act, tea, old = _cube(ledger)
    calls = []

    def retrieve(cube, query, k):
        calls.append((cube, query, k))
        return [(old, 9.0), ("mem_unknown", 5.0), (tea, 1.0)]

    chat = ChatSession(ledger, "alice", "bob", retrieve, model=model, max_new_tokens=2, k=2)
    head = ledger.head()
    with pytest.raises(InvalidRequest, match="non-empty"):
        chat.send("   ")
    assert ledger.head() == head
    turn = chat.send("hello")
    assert calls[0][:2] == ("alice", "hello") and turn.retrieved == [tea]  # archived + unknown dropped
    assert turn.cache_key is None and turn.cached_tokens == 0
    with pytest.raises(InvalidRequest, match="exactly one"):
        ChatSession(ledger, "alice", "bob", retrieve)
    with pytest.raises(InvalidRequest, match="between 0 and 100"):
        ChatSession(ledger, "alice", "bob", retrieve, model=model, k=-1)
    with pytest.raises(InvalidRequest, match="max_new_tokens"):
        ChatSession(ledger, "alice", "bob", retrieve, model=model, max_new_tokens=0)


def test_chat_reads_make_memories_hot_for_the_scheduler(tmp_path, model):
    ledger = new_ledger(tmp_path)
    _, tea, _ = _cube(ledger)
    chat = ChatSession(
        ledger, "alice", "alice", scan_retriever(ledger), model=model, max_new_tokens=1, k=1, extract=False
    )
    for q in ("green tea?", "tea in the morning?", "which green tea"):
        chat.send(q)
    plan = plan_at(ledger, SchedulerPolicy(stable_for_s=0, promote_min_score=1.0, merge_threshold=1.0), cubes=["alice"])
    assert ("promote", (tea,)) in [(d.kind, d.memory_ids) for d in plan.decisions]


def test_new_cube_is_created_on_first_chat(tmp_path, model):
    ledger = new_ledger(tmp_path)
    chat = ChatSession(ledger, "fresh", "zoe", scan_retriever(ledger), model=model, max_new_tokens=1)
    turn = chat.send("My name is Zoe.")
    assert ledger.cube_exists("fresh") and turn.retrieved == []
    assert [f["text"] for f in turn.facts] == ["Zoe's name is Zoe."]


def test_chat_facts_are_reconciled_so_a_move_supersedes_the_old_residence(tmp_path, model):
    """Issue 13: through chat, "I moved to Porto" added a fact and never retired "lives in Oslo";
    now chat hands the message to the extractor, which reconciles it with the cube's facts."""
    ledger = new_ledger(tmp_path)
    chat = ChatSession(ledger, "alice", "alice", scan_retriever(ledger), model=model, max_new_tokens=1)
    (oslo,) = chat.send("I live in Oslo.").facts
    assert oslo["kind"] == "ADD"
    (porto,) = chat.send("I moved to Porto.").facts
    assert (porto["kind"], porto["id"], porto["text"]) == ("UPDATE", oslo["id"], "Alice moved to Porto.")
    facts = [m.text for m in ledger.cube_memories("alice").values() if "fact" in m.tags and not m.deleted]
    assert facts == ["Alice moved to Porto."]
    assert [v.text for v in ledger.history(oslo["id"])] == ["Alice lives in Oslo.", "Alice moved to Porto."]
    assert chat.send("I no longer live in Porto.").facts[0]["kind"] == "DELETE"
    assert chat.send("Nice weather.").facts == [] and chat.send("I live in Oslo!").facts[0]["kind"] == "ADD"


class _FakeOpenAI(BaseHTTPRequestHandler):
    seen: list = []

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _FakeOpenAI.seen.append((self.path, self.headers.get("Authorization"), body))
        out = json.dumps({"choices": [{"message": {"role": "assistant", "content": " You drink green tea. "}}]})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(out.encode())

    def log_message(self, *args):
        pass


def test_openai_compatible_endpoint(tmp_path, monkeypatch):
    server = HTTPServer(("127.0.0.1", 0), _FakeOpenAI)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("MEMOS_TEST_KEY", "sk-test")
        remote = OpenAICompatibleLLM(f"http://127.0.0.1:{server.server_port}/v1", "llama3", "MEMOS_TEST_KEY")
        ledger = new_ledger(tmp_path)
        act, tea, _ = _cube(ledger)
        chat = ChatSession(ledger, "alice", "alice", scan_retriever(ledger), remote=remote, k=1)
        turn = chat.send("Which tea do I drink?")
        path, auth, body = _FakeOpenAI.seen[-1]
        assert path == "/v1/chat/completions" and auth == "Bearer sk-test" and body["model"] == "llama3"
        assert "peanuts" in body["messages"][0]["content"]  # activated memory in the system prompt
        assert "green tea" in body["messages"][-1]["content"]  # retrieved memory with the question
        assert turn.answer == "You drink green tea."
        assert ledger.get(turn.assistant_memory).metadata["model"].startswith("openai:")
    finally:
        server.shutdown()
    from ledger.llm import ModelError

    dead = OpenAICompatibleLLM("http://127.0.0.1:9/v1", "x", timeout=2)
    with pytest.raises(ModelError, match="unreachable"):
        dead.chat([{"role": "user", "content": "hi"}])


def test_fact_extraction_rules():
    facts = extract_facts(
        "Hi! I'm a nurse. Where do I live? Maybe I hate cats. I have two cats; "
        "my favourite colours are blue and green. Please tell me a joke. Call me Ali.",
        "Sam",
    )
    assert [(f.text, f.rule) for f in facts] == [
        ("Sam is a nurse.", "i-am"),
        ("Sam has two cats.", "i-verb"),
        ("Sam's favourite colours are blue and green.", "my-x-is"),
        ("Sam wants to be called Ali.", "call-me"),
    ]
    assert extract_facts("I'm tired", "sam")[0].text == "sam is tired."
    assert extract_facts("I think I live in Rome.", "x") == []
    assert extract_facts("I really love my job and I was born in Oslo.", "kim")[1].text == "kim was born in Oslo."
    assert extract_facts("I really love my job.", "kim")[0].text == "kim really loves kim's job."


def test_chat_spans_cubes_shared_with_the_actor(tmp_path, model):
    from ledger.memos.cubes import create_cube, readable_cubes, share_cube

    ledger = new_ledger(tmp_path)
    create_cube(ledger, "team", "lead")
    create_cube(ledger, "secret", "boss")
    create_cube(ledger, "bob", "bob")
    handbook = ledger.add("team", "The team's standup is at nine thirty every weekday.", "lead").id
    ledger.add("secret", "The standup will be cancelled next year.", "boss")
    own = ledger.add("bob", "Bob prefers the standup to be short.", "bob").id
    share_cube(ledger, "team", "bob", "lead")
    shared = [c for c in readable_cubes(ledger, "bob") if c != "bob"]
    assert shared == ["team"]
    chat = ChatSession(
        ledger,
        "bob",
        "bob",
        scan_retriever(ledger),
        model=model,
        max_new_tokens=1,
        k=3,
        shared_cubes=shared,
        extract=False,
    )
    head = ledger.head()
    turn = chat.send("When is the standup?")
    assert set(turn.retrieved) == {handbook, own}  # the unshared cube was not searched
    assert turn.retrieved_cubes == {handbook: "team", own: "bob"}
    reads = {e.stream: e.payload["memory_ids"] for e in ledger.events(head + 1) if e.type == "memory.read"}
    assert reads == {"bob": [own], "team": [handbook]}  # each cube's stream audits its own reads
    assert ledger.get(turn.user_memory).cube == "bob"


def test_prompt_longer_than_the_context_is_refused_or_trimmed(tmp_path):
    small = tiny_model()
    small.model.config.max_position_embeddings = 200  # pretend the context is short
    ledger = new_ledger(tmp_path)
    chat = ChatSession(ledger, "c", "u", scan_retriever(ledger), model=small, max_new_tokens=4, extract=False)
    head = ledger.head()
    with pytest.raises(InvalidRequest, match="context is 200"):
        chat.send("x" * 300)
    assert ledger.head() == head  # nothing written
    chat.send("a" * 60)
    chat.send("b" * 60)  # the first exchange no longer fits next to this one: it is dropped from the prompt
    t = chat.send("c" * 60)
    assert t.prefilled_tokens + 4 <= 200


def test_default_retriever_uses_the_hybrid_search_views(tmp_path, model):
    from ledger.config import CONFIG_NAME
    from ledger.factory import open_ledger
    from ledger.memos.chat import default_retriever

    data = tmp_path / "data"
    data.mkdir()
    (data / CONFIG_NAME).write_text('[log]\nbackend = "sqlite"\n\n[views]\nvector = "none"\n')
    ledger = open_ledger(data)
    tea = ledger.add("alice", "Alice drinks green tea every morning.", "alice").id
    ledger.add("alice", "The car is parked on level 3.", "alice")
    retrieve = default_retriever(ledger, str(data))
    assert retrieve is not None and (data / "views").is_dir()  # the projection views, not the fold scan
    head = ledger.head()
    assert retrieve("alice", "which tea", 2)[0][0] == tea
    assert ledger.head() == head  # the retriever records no read; the chat turn does
    chat = ChatSession(ledger, "alice", "alice", retrieve, model=model, max_new_tokens=1, extract=False)
    assert chat.send("green tea?").retrieved[0] == tea


def test_hybrid_retriever_ranks_shared_cubes_in_one_search(tmp_path, model):
    from ledger.config import CONFIG_NAME
    from ledger.factory import open_ledger
    from ledger.memos.chat import default_retriever
    from ledger.memos.cubes import create_cube, share_cube

    data = tmp_path / "data"
    data.mkdir()
    (data / CONFIG_NAME).write_text('[log]\nbackend = "sqlite"\n\n[views]\nvector = "none"\n')
    ledger = open_ledger(data)
    create_cube(ledger, "team", "lead")
    create_cube(ledger, "bob", "bob")
    handbook = ledger.add("team", "The standup is at nine thirty.", "lead").id
    own = ledger.add("bob", "Bob finds the standup too long.", "bob").id
    share_cube(ledger, "team", "bob", "lead")
    retrieve = default_retriever(ledger, str(data))
    calls = []
    many = retrieve.many

    def spy(cubes, q, k):
        calls.append(cubes)
        return many(cubes, q, k)

    retrieve.many = spy
    chat = ChatSession(
        ledger, "bob", "bob", retrieve, model=model, max_new_tokens=1, extract=False, shared_cubes=["team"]
    )
    turn = chat.send("standup")
    assert calls == [["bob", "team"]]
    assert set(turn.retrieved) == {handbook, own} and turn.retrieved_cubes[handbook] == "team"


def test_earlier_answers_are_not_fed_back_as_memories(tmp_path, model):
    ledger = new_ledger(tmp_path)
    first = ChatSession(ledger, "c", "u", scan_retriever(ledger), model=model, max_new_tokens=3, extract=False)
    t1 = first.send("tell me about zebras")
    second = ChatSession(ledger, "c", "u", scan_retriever(ledger), model=model, max_new_tokens=3, extract=False)
    t2 = second.send("zebras")
    assert t1.user_memory in t2.retrieved and t1.assistant_memory not in t2.retrieved
    third = ChatSession(
        ledger,
        "c",
        "u",
        lambda c, q, k: [(t1.assistant_memory, 1.0)],
        model=model,
        max_new_tokens=1,
        extract=False,
        include_assistant_turns=True,
    )
    assert third.send("zebras").retrieved == [t1.assistant_memory]
