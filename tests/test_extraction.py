"""Extraction as a consumer of the log: every decision kind, the decision record, malformed output,
replay without the extractor, a SIGKILL mid-run, and re-extraction on a branch."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from ledger import events as ev
from ledger.errors import NotFound
from ledger.factory import open_ledger
from ledger.memos.extraction.apply import decision_event_id, track_stream
from ledger.memos.extraction.base import Candidate, ExistingMemory, Extraction, Message
from ledger.memos.extraction.consumer import ExtractionConsumer, decisions_of
from ledger.memos.extraction.registry import EXTRACTORS, register_extractor
from ledger.memos.extraction.rules import RulesExtractor
from ledger.memos.extraction.runtime import MAIN_TRACK, catch_up_extraction
from ledger.timemachine.lineage import lineage
from tests.cli_helpers import run
from tests.extraction_support import Malformed

ROOT = Path(__file__).resolve().parents[1]


def _say(led, text: str, ts: str, cube: str = "c") -> list[int]:
    return led.ingest(
        cube, [{"role": "user", "content": text, "name": "Alice", "timestamp": ts}], "alice", user_id="u1"
    ).offsets


def _kinds(led, track: str = "rules") -> list[list[str]]:
    return [[d["kind"] for d in e.payload["decisions"]] for e in decisions_of(led, track)]


def _texts(led, cube: str = "c") -> list[str]:
    return sorted(m.text or "" for m in led.cube_memories(cube).values())


def test_every_decision_kind_with_the_rules_backend(data_dir_ledger):
    led = data_dir_ledger
    consumer = ExtractionConsumer(led, RulesExtractor())
    first = _say(led, "I live in Oslo. I eat pork. I like tea.", "2024-05-01T10:00:00Z")
    consumer.catch_up()
    before = led.head()
    assert _texts(led) == ["Alice eats pork.", "Alice likes tea.", "Alice lives in Oslo."]
    second = _say(led, "I moved to Porto. I like tea! I visited Rome yesterday.", "2024-06-01T09:00:00Z")
    _say(led, "I don't eat pork. I no longer like tea.", "2024-06-02T09:00:00Z")
    consumer.catch_up()
    assert _kinds(led) == [["ADD", "ADD", "ADD"], ["UPDATE", "NOOP", "ADD"], ["UPDATE", "DELETE"]]
    assert _texts(led) == ["Alice does not eat pork.", "Alice moved to Porto.", "Alice visited Rome on 2024-05-31."]
    decisions = list(decisions_of(led, "rules"))
    oslo = decisions[0].payload["decisions"][0]["memory_id"]
    # UPDATE: a new version of the Oslo memory; history and as-of keep the old fact
    assert decisions[1].payload["decisions"][0]["target"] == oslo
    assert [v.text for v in led.history(oslo)] == ["Alice lives in Oslo.", "Alice moved to Porto."]
    assert led.get(oslo, as_of=before).text == "Alice lives in Oslo."
    # NOOP: no new memory, the decision names the existing one
    tea = decisions[0].payload["decisions"][2]["memory_id"]
    assert decisions[1].payload["decisions"][1] | {"score": None} == {
        "kind": "NOOP",
        "candidate": 1,
        "memory_id": None,
        "target": tea,
        "score": None,
        "reason": "duplicate of a current memory",
    }
    # DELETE: a tombstone of the retracted memory
    assert decisions[2].payload["decisions"][1]["target"] == tea
    with pytest.raises(NotFound, match="deleted"):
        led.get(tea)
    # lineage to the source message, its scope, observed_at from the message timestamp
    state = led.get(oslo)
    assert state.metadata["user_id"] == "u1" and state.metadata["observed_at"] == "2024-06-01T09:00:00Z"
    assert state.metadata["fact_key"] == "alice|residence"
    msgs = {e.offset: e.payload["message_id"] for e in led.events() if e.type == ev.MESSAGE_ADDED}
    assert {e.parent for e in lineage(led, oslo).sources} == {msgs[first[0]], msgs[second[0]]}


def test_the_decision_record_names_extractor_model_prompt_output_and_sources(data_dir_ledger):
    led = data_dir_ledger
    offsets = led.ingest(
        "c",
        [{"role": "user", "content": "I work at Acme."}, {"role": "assistant", "content": "Nice."}],
        "alice",
        user_id="bob",
    ).offsets
    ExtractionConsumer(led, RulesExtractor()).catch_up()
    (record,) = decisions_of(led, "rules")
    p = record.payload
    assert (p["extractor"], p["version"], p["model"], p["prompt_hash"], p["error"]) == ("rules", "3", None, None, None)
    assert p["source_offsets"] == offsets and p["through_offset"] == offsets[-1]
    assert record.event_id == decision_event_id("rules", offsets) and record.stream == track_stream("rules")
    assert "sealed" in p and "Acme" not in str(p)
    opened = led.sealer.open(p["sealed"])
    assert opened["candidates"][0]["text"] == "Bob works at Acme."
    (added,) = [e for e in led.events() if e.type == ev.MEMORY_ADDED]
    assert added.causation_id == record.event_id


def test_malformed_output_is_recorded_and_nothing_applied(ledger):
    offsets = _say(ledger, "I live in Oslo.", "2024-05-01T10:00:00Z")
    consumer = ExtractionConsumer(ledger, Malformed())
    assert consumer.step() == 1
    (record,) = decisions_of(ledger, "malformed")
    p = record.payload
    assert "outside its window" in p["error"] and p["decisions"] == []
    assert p["output"]["raw_output"].startswith('{"facts"') and p["model"] == "test-model"
    assert p["through_offset"] == offsets[-1] and consumer.step() == 0
    assert ledger.cube_memories("c") == {}


def test_two_consumers_racing_decide_each_window_once(ledger):
    for i in range(3):
        _say(ledger, f"I like thing{i}.", "2024-05-01T10:00:00Z")
    rival = ExtractionConsumer(ledger, RulesExtractor())

    class Racing(ExtractionConsumer):
        raced = False

        def _decide(self, window, extraction, pool):  # the rival commits between our read and our append
            if not self.raced:
                self.raced = True
                rival.step()
            return super()._decide(window, extraction, pool)

    racing = Racing(ledger, RulesExtractor())
    racing.catch_up()
    windows = [tuple(e.payload["source_offsets"]) for e in decisions_of(ledger, "rules")]
    assert len(windows) == len(set(windows)) == 3
    assert _texts(ledger) == [f"Alice likes thing{i}." for i in range(3)]


def test_replay_rebuilds_the_same_memories_without_calling_the_extractor(tmp_path, capsys):
    from tests.ledgers import data_ledger

    data = tmp_path / "data"
    led = data_ledger(data)
    _say(led, "I live in Oslo. I like tea.", "2024-05-01T10:00:00Z")
    _say(led, "I moved to Porto. I no longer like tea.", "2024-06-01T10:00:00Z")
    assert catch_up_extraction(led) == 2
    before = {k: (v.text, v.version, v.exists) for k, v in led.cube_memories("c").items()}
    led.log.close()
    cfg = data / "memledger.toml"
    cfg.write_text(cfg.read_text() + '\n[extraction]\nbackend = "tests.extraction_support:build_never"\n')
    assert run(capsys, "--data", str(data), "rebuild", "--no-progress", "--view", "keyword")[0] == 0
    code, out, err = run(capsys, "--data", str(data), "search", "--cube", "c", "--no-vector", "Porto")
    assert code == 0 and "Alice moved to Porto." in out, err
    again = open_ledger(data)
    assert {k: (v.text, v.version, v.exists) for k, v in again.cube_memories("c").items()} == before
    _say(again, "I like coffee.", "2024-07-01T10:00:00Z")  # the configured extractor is wired: new messages call it
    with pytest.raises(AssertionError, match="was called"):
        catch_up_extraction(again)
    again.log.close()


def _spawn_consumer(data: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = ["--data", str(data), "consume", "--extractor", "tests.extraction_support:build_slow", "--no-lease"]
    args += ["--report-every", "1000", "--poll-interval", "0.05"]
    return subprocess.Popen([sys.executable, "-m", "ledger", *args], env=env, stdout=subprocess.DEVNULL)


def test_sigkill_mid_extraction_resumes_without_lost_or_doubled_decisions(tmp_path):
    from tests.ledgers import data_ledger

    data = tmp_path / "data"
    led = data_ledger(data)
    n = 40
    for i in range(n):
        _say(led, f"I like thing{i}.", "2024-05-01T10:00:00Z")
    stream = track_stream(MAIN_TRACK)
    for kill_at in (5, 15):
        proc = _spawn_consumer(data)
        try:
            while led.log.stream_version(stream) < kill_at:
                assert proc.poll() is None, "the consumer died on its own"
                time.sleep(0.02)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert led.log.stream_version(stream) < n, "the consumer finished before it was killed"
    proc = _spawn_consumer(data)
    try:
        while led.log.stream_version(stream) < n:
            assert proc.poll() is None
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    windows = [tuple(e.payload["source_offsets"]) for e in decisions_of(led, MAIN_TRACK)]
    messages = [(e.offset,) for e in led.events() if e.type == ev.MESSAGE_ADDED]
    assert windows == messages  # each message batch decided exactly once, in order
    assert _texts(led) == sorted(f"Alice likes thing{i}." for i in range(n))
    added = [e.payload["memory_id"] for e in led.events() if e.type == ev.MEMORY_ADDED]
    assert len(added) == len(set(added)) == n
    led.log.close()


class _Alternative(RulesExtractor):
    """The rules, except that it finds nothing about pork and knows Alice is friendly."""

    name = "alternative"

    def extract(self, messages: Sequence[Message], context: Sequence[ExistingMemory]) -> Extraction:
        out = [c for c in super().extract(messages, context).candidates if "pork" not in c.text]
        out.append(Candidate("Alice is friendly.", (messages[0].offset,), key="alice|is|friendly"))
        return Extraction(tuple(out))


def test_reextract_on_a_branch_shows_the_changes_and_merge_adopts_them(tmp_path, capsys):
    from tests.ledgers import data_ledger

    data = tmp_path / "data"
    led = data_ledger(data)
    _say(led, "I live in Oslo. I eat pork.", "2024-05-01T10:00:00Z")
    catch_up_extraction(led)
    head = led.head()
    register_extractor("alternative", lambda options: _Alternative())
    try:
        code, out, err = run(
            capsys,
            "--data",
            str(data),
            "reextract",
            "--cube",
            "c",
            "--extractor",
            "alternative",
            "--branch",
            "alt",
            "--actor",
            "alice",
            "--json",
        )
        assert code == 0, err
    finally:
        EXTRACTORS.pop("alternative")
    assert led.head() == head + 1  # main: only the branch's audit record
    code, out, _ = run(capsys, "--data", str(data), "branch", "diff", "alt", "--json")
    import json

    changes = sorted((d["change"], (d["after"] or d["before"])["text"]) for d in json.loads(out))
    assert changes == [("added", "Alice is friendly."), ("removed", "Alice eats pork.")]
    code, out, err = run(capsys, "--data", str(data), "branch", "merge", "alt", "--actor", "alice")
    assert code == 0, err
    assert _texts(led) == ["Alice is friendly.", "Alice lives in Oslo."]


def test_a_search_still_answers_when_the_extractor_cannot_run(tmp_path, capsys):
    from tests.ledgers import data_ledger

    data = tmp_path / "data"
    led = data_ledger(data)
    led.add("c", "Alice lives in Oslo.", "alice")
    _say(led, "I like tea.", "2024-05-01T10:00:00Z")
    led.log.close()
    cfg = data / "memledger.toml"
    cfg.write_text(cfg.read_text() + '\n[extraction]\nbackend = "tests.extraction_support:build_down"\n')
    code, out, err = run(capsys, "--data", str(data), "search", "--cube", "c", "--no-vector", "Oslo")
    assert code == 0 and "Alice lives in Oslo." in out
    assert "warning: extraction did not catch up: model server" in err
    again = open_ledger(data)
    assert list(decisions_of(again, MAIN_TRACK)) == []  # nothing recorded: the message is still pending
    again.log.close()


def test_consume_extractor_in_process_and_wait_without_an_in_process_extractor(tmp_path, capsys):
    import json

    from tests.ledgers import data_ledger

    data = tmp_path / "data"
    led = data_ledger(data)
    _say(led, "I live in Oslo.", "2024-05-01T10:00:00Z")
    led.log.close()
    cfg = data / "memledger.toml"
    cfg.write_text(cfg.read_text() + "\n[extraction]\nin_process = false\n")
    d = str(data)
    code, _, err = run(capsys, "--data", d, "consume", "--extractor", "rules", "--rebuild")
    assert code == 2 and "--rebuild applies to views" in err
    f = tmp_path / "m.json"
    f.write_text(json.dumps([{"role": "user", "content": "I like tea.", "name": "Alice"}]))
    code, _, err = run(capsys, "--data", d, "ingest", "--cube", "c", "--messages", str(f), "--wait", "--timeout", "0")
    assert code == 2 and "has not reached offset" in err  # nobody extracts: in_process is off
    code, out, _ = run(capsys, "--data", d, "consume", "--extractor", "rules", "--once", "--no-lease")
    status = json.loads(out.splitlines()[-1])
    assert code == 0 and status["pending"] == 0 and status["decisions"] == 2 and status["track"] == MAIN_TRACK
    again = open_ledger(d)
    assert _texts(again) == ["Alice likes tea.", "Alice lives in Oslo."]
    again.log.close()


def test_a_fact_updated_more_often_than_a_seal_has_keys_stays_writable(data_dir_ledger):
    """Regression: each UPDATE used to seal the new version under every earlier source's key as well,
    so the 100th change of one fact (a seal holds at most 100 keys) failed."""
    led = data_dir_ledger
    consumer = ExtractionConsumer(led, RulesExtractor())
    for i in range(105):
        _say(led, f"I live in City{i}.", "2024-05-01T10:00:00Z")
    consumer.catch_up()
    (memory,) = led.cube_memories("c").values()
    assert memory.text == "Alice lives in City104." and memory.version == 105
    assert len(memory.keys) <= 3  # its own key, the one source message's (and no earlier ones)
    assert len({e.parent for e in lineage(led, memory.memory_id).sources}) == 105


@pytest.mark.parametrize(
    "turns",
    [
        ["I live in Oslo.", "I live in Porto now. I no longer live in Oslo."],  # the move and the retraction at once
        ["I live in Oslo.", "I moved to Porto.", "I no longer live in Oslo."],  # the retraction comes later
    ],
)
def test_retracting_the_old_value_keeps_the_memory_that_states_the_new_one(data_dir_ledger, turns):
    """A retraction of "lives in Oslo" used to delete the memory an earlier candidate had just updated to
    Porto (same fact key, similar words), leaving no current residence at all."""
    led = data_dir_ledger
    consumer = ExtractionConsumer(led, RulesExtractor())
    for i, turn in enumerate(turns):
        _say(led, turn, f"2024-06-0{i + 1}T09:00:00Z")
        consumer.catch_up()
    (current,) = led.cube_memories("c").values()
    assert "Porto" in (current.text or "")
    assert [v.text for v in led.history(current.memory_id)][0] == "Alice lives in Oslo."


def test_retracting_the_current_value_still_deletes_it(data_dir_ledger):
    led = data_dir_ledger
    consumer = ExtractionConsumer(led, RulesExtractor())
    _say(led, "I live in Oslo.", "2024-06-01T09:00:00Z")
    _say(led, "I no longer live in Oslo.", "2024-06-02T09:00:00Z")
    consumer.catch_up()
    assert _texts(led) == [] and _kinds(led)[-1] == ["DELETE"]
