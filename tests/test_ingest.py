"""Ingesting conversation messages: one sealed, verbatim batch; bad input writes nothing; erasable."""

from __future__ import annotations

import json

import pytest

from ledger import events as ev
from ledger.errors import InvalidRequest, NotFound
from ledger.governance.erase import erase
from ledger.memos.extraction.runtime import catch_up_extraction
from ledger.memos.messages import read_messages
from ledger.timemachine.lineage import lineage
from tests.cli_helpers import init_data, run
from tests.service_support import make_service

CHAT = [
    {"role": "user", "content": "I live in Oslo. I eat pork.", "name": "Alice", "timestamp": "2024-05-01T10:00:00Z"},
    {"role": "assistant", "content": "Noted, Alice."},
]


def test_ingest_appends_one_sealed_batch_with_plaintext_scope(data_dir_ledger):
    led = data_dir_ledger
    done = led.ingest("c", CHAT, "alice", user_id="u1", agent_id="a1", session_id="s1")
    events = [e for e in led.events() if e.type == ev.MESSAGE_ADDED]
    assert [e.offset for e in events] == done.offsets == [done.offsets[0], done.offsets[0] + 1]
    assert {e.correlation_id for e in events} == {done.correlation_id}
    assert [e.payload["message_id"] for e in events] == done.message_ids
    for e in events:
        assert "sealed" in e.payload and "text" not in e.payload
        assert e.payload["metadata"] == {"user_id": "u1", "agent_id": "a1"}
        assert "Oslo" not in json.dumps(e.payload)
    msgs = read_messages(led, "c")
    assert [(m.role, m.content, m.name, m.timestamp) for m in msgs] == [
        ("user", CHAT[0]["content"], "Alice", "2024-05-01T10:00:00Z"),
        ("assistant", CHAT[1]["content"], None, None),
    ]
    assert msgs[0].scope == {"user_id": "u1", "agent_id": "a1"}


def test_plain_ledger_stores_messages_verbatim(ledger):
    done = ledger.ingest("c", [{"role": "user", "content": "  exact  text\n"}], "bob")
    (event,) = [e for e in ledger.events() if e.type == ev.MESSAGE_ADDED]
    assert event.payload["text"] == "  exact  text\n" and event.offset == done.offsets[0]


@pytest.mark.parametrize(
    ("messages", "needle"),
    [
        ([], "at least one"),
        ("hello", "JSON list"),
        ([{"role": "bot", "content": "x"}], "messages[0].role"),
        ([{"role": "user", "content": "ok"}, {"role": "user", "content": "   "}], "messages[1].content"),
        ([{"role": "user", "content": "x", "timestamp": "yesterday"}], "messages[0].timestamp"),
        ([{"role": "user", "content": "x", "timestamp": "2024-02-30T10:00:00Z"}], "messages[0].timestamp"),
        ([{"role": "user", "content": "x", "mood": "happy"}], "unknown field 'mood'"),
        ([{"role": "user", "content": "x", "name": ""}], "messages[0].name"),
        ([{"role": "user"}], "messages[0].content"),
    ],
)
def test_bad_messages_write_nothing(ledger, messages, needle):
    ledger.ingest("c", [{"role": "user", "content": "first"}], "bob")
    head = ledger.head()
    with pytest.raises(InvalidRequest) as info:
        ledger.ingest("c", messages, "bob")
    assert needle in str(info.value) and "\n" not in str(info.value)
    assert ledger.head() == head


def test_bad_scope_and_cube_write_nothing(ledger):
    with pytest.raises(InvalidRequest):
        ledger.ingest("c", CHAT, "bob", user_id=" ")
    with pytest.raises(InvalidRequest):
        ledger.ingest("_system", CHAT, "bob")
    assert ledger.head() == -1


def test_batch_id_makes_a_retry_write_nothing(ledger):
    first = ledger.ingest("c", CHAT, "bob", batch_id="b-1")
    head = ledger.head()
    again = ledger.ingest("c", CHAT, "bob", batch_id="b-1")
    assert ledger.head() == head
    assert again.duplicate and again.message_ids == first.message_ids and again.offsets == first.offsets


def test_erasing_a_message_makes_its_facts_unreadable(data_dir_ledger, tmp_path):
    led = data_dir_ledger
    done = led.ingest("c", CHAT, "alice", user_id="u1")
    catch_up_extraction(led)
    facts = {m.memory_id: m for m in led.cube_memories("c").values()}
    assert sorted(m.text for m in facts.values()) == ["Alice eats pork.", "Alice lives in Oslo."]
    assert {e.parent for m in facts for e in lineage(led, m).sources} == {done.message_ids[0]}
    report = erase(led, [done.message_ids[0]], "dpo", "user asked", data_dir=tmp_path / "data")
    assert set(report.derived_memory_ids) == set(facts)
    assert report.complete, report.checks.to_dict()
    assert all(m.text is None for m in led.cube_memories("c").values())
    assert [m.message_id for m in read_messages(led, "c")] == [done.message_ids[1]]
    with pytest.raises(NotFound):
        erase(led, ["msg_nope"], "dpo", "why")


def test_forgetting_the_subject_makes_messages_and_facts_unreadable(data_dir_ledger, tmp_path):
    from ledger.governance.forget import forget

    led = data_dir_ledger
    led.ingest("c", CHAT[:1], "alice", subject="alice-subject")
    catch_up_extraction(led)
    assert len(led.cube_memories("c")) == 2
    forget(led, "alice-subject", "dpo", data_dir=tmp_path / "data")
    assert read_messages(led, "c") == []
    assert all(m.text is None for m in led.cube_memories("c").values())


# -- CLI ------------------------------------------------------------------------------------
def test_cli_ingest_file_stdin_wait_and_bad_input(tmp_path, capsys, monkeypatch):
    import io
    import sys

    d = init_data(tmp_path, capsys)
    f = tmp_path / "m.json"
    f.write_text(json.dumps(CHAT))
    code, out, _ = run(capsys, "--data", d, "ingest", "--cube", "c", "--actor", "alice", "--messages", str(f))
    assert code == 0 and "2 messages at offsets" in out
    stdin = json.dumps([{"role": "user", "content": "I moved to Porto.", "name": "Alice"}])
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin.encode())))
    code, out, _ = run(capsys, "--data", d, "ingest", "--json", "--cube", "c", "--messages", "-", "--wait")
    assert code == 0
    body = json.loads(out)
    kinds = sorted((x["kind"], x["text"]) for x in body["decisions"])
    assert kinds == [("UPDATE", "Alice moved to Porto.")]
    code, out, _ = run(capsys, "--data", d, "log", "--json")
    head = len(out.splitlines())
    f.write_text("[{]")
    code, out, err = run(capsys, "--data", d, "ingest", "--cube", "c", "--messages", str(f))
    assert code == 2 and err.startswith("error: --messages is not valid JSON") and len(err.splitlines()) == 1
    f.write_text(json.dumps([{"role": "user", "content": "x", "timestamp": "soon"}]))
    code, out, err = run(capsys, "--data", d, "ingest", "--cube", "c", "--messages", str(f))
    assert code == 2 and "timestamp" in err and len(err.splitlines()) == 1
    code, out, _ = run(capsys, "--data", d, "log", "--json")
    assert len(out.splitlines()) == head


# -- HTTP -----------------------------------------------------------------------------------
def test_http_ingest_and_status(tmp_path):
    svc = make_service(tmp_path)
    c = svc.client
    assert c.post("/v1/cubes", json={"cube": "c"}, headers=svc.h("alice")).status_code == 201
    r = c.post("/v1/cubes/c/messages", json={"messages": CHAT, "user_id": "u1"}, headers=svc.h("alice"))
    assert r.status_code == 201, r.text
    assert r.json()["count"] == 2
    status = c.get("/v1/cubes/c/messages/status", headers=svc.h("alice")).json()
    assert status["pending"] == 2 and status["checkpoint"] == -1
    led = c.app.state.memledger.ledger  # type: ignore[attr-defined]
    catch_up_extraction(led)
    status = c.get("/v1/cubes/c/messages/status", headers=svc.h("alice")).json()
    assert status["pending"] == 0 and status["checkpoint"] == r.json()["offsets"][-1]
    head = svc.head()
    bad = {"messages": [{"role": "user", "content": "x", "timestamp": "2024-13-01"}]}
    assert c.post("/v1/cubes/c/messages", json=bad, headers=svc.h("alice")).status_code == 422
    assert c.post("/v1/cubes/c/messages", json={"messages": []}, headers=svc.h("alice")).status_code == 422
    assert c.post("/v1/cubes/c/messages", json={"messages": CHAT}, headers=svc.h("bob")).status_code == 404
    assert svc.head() == head + 1  # only bob's refusal is recorded (access.denied)
    retry = {"messages": CHAT, "batch_id": "k1"}
    first = c.post("/v1/cubes/c/messages", json=retry, headers=svc.h("alice")).json()
    second = c.post("/v1/cubes/c/messages", json=retry, headers=svc.h("alice")).json()
    assert second["duplicate"] and second["offsets"] == first["offsets"]


def test_serve_extracts_in_process_and_search_finds_the_facts(tmp_path):
    import time

    from tests.live_server import LiveServer

    server = LiveServer.start(tmp_path / "data", config='[views]\nvector = "none"\n')
    try:
        server.principal("alice")
        with server.client() as c:
            h = server.h("alice")
            assert c.post("/v1/cubes", json={"cube": "c"}, headers=h).status_code == 201
            r = c.post("/v1/cubes/c/messages", json={"messages": CHAT, "user_id": "u1"}, headers=h)
            assert r.status_code == 201
            deadline = time.monotonic() + 120  # the follower thread extracts (0.5 s polls); not a timing assertion
            while c.get("/v1/cubes/c/messages/status", headers=h).json()["pending"] and time.monotonic() < deadline:
                time.sleep(0.1)
            status = c.get("/v1/cubes/c/messages/status", headers=h).json()
            assert status["pending"] == 0 and status["checkpoint"] == r.json()["offsets"][-1]
            hits = c.get("/v1/search", params={"q": "Oslo", "cube": "c"}, headers=h).json()
            assert "Alice lives in Oslo." in str(hits)
    finally:
        server.stop()


def test_erasing_one_message_finds_no_residue_in_the_speakers_other_facts(data_dir_ledger, tmp_path):
    """Regression: the speaker's name was looked for as erased content, and every other fact names them."""
    from projections.view_set import ViewSet

    led, data = data_dir_ledger, tmp_path / "data"
    speaker = "Alexandra Lindqvist"  # long enough to be looked for
    first = led.ingest("c", [{"role": "user", "content": "I live in Oslo.", "name": speaker}], "a", user_id="u1")
    led.ingest("c", [{"role": "user", "content": "I like tea.", "name": speaker}], "a", user_id="u1")
    catch_up_extraction(led)
    with ViewSet.open(led, data, kinds=("keyword", "graph")) as views:
        views.catch_up()
    report = erase(led, [first.message_ids[0]], "dpo", "asked", data_dir=data)
    assert report.complete, report.checks.to_dict()
    assert _texts_of(led) == [None, f"{speaker} likes tea."]


def _texts_of(led):
    return sorted((m.text for m in led.cube_memories("c").values()), key=lambda t: (t is not None, t or ""))
