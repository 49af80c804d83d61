"""Plain ``add`` of an exact or near duplicate is a no-op returning the existing memory (Python, CLI, HTTP)."""

from __future__ import annotations

import json

from tests.cli_helpers import init_data, run
from tests.service_support import make_service


def test_exact_and_near_duplicates_in_one_scope_write_nothing(ledger):
    first = ledger.add("c", "Alice likes green tea.", "a", metadata={"user_id": "u1"})
    head = ledger.head()
    for text in ("Alice likes green tea.", "alice likes  GREEN tea", "Alice likes the green tea!"):
        again = ledger.add("c", text, "a", metadata={"user_id": "u1", "note": "ignored"})
        assert again.duplicate and again.id == first.id and again.offset == first.offset
        assert again.event_id == first.event_id
    assert ledger.head() == head
    assert not ledger.add("c", "Alice likes black tea.", "a", metadata={"user_id": "u1"}).duplicate


def test_other_scopes_subjects_cubes_and_opt_out_are_written(ledger):
    base = ledger.add("c", "Likes tea.", "a", metadata={"user_id": "u1"})
    others = [
        ledger.add("c", "Likes tea.", "a", metadata={"user_id": "u2"}),
        ledger.add("c", "Likes tea.", "a", metadata={"user_id": "u1", "run_id": "r1"}),
        ledger.add("d", "Likes tea.", "a", metadata={"user_id": "u1"}),
        ledger.add("c", "Likes tea.", "a", metadata={"user_id": "u1"}, allow_duplicate=True),
    ]
    assert not any(w.duplicate for w in others)
    assert len({base.id, *(w.id for w in others)}) == 5


def test_a_deleted_or_archived_memory_is_no_longer_a_duplicate(ledger):
    w = ledger.add("c", "Lives in Oslo.", "a")
    ledger.delete(w.id, "a")
    again = ledger.add("c", "Lives in Oslo.", "a")
    assert not again.duplicate and again.id != w.id
    ledger.change_state(again.id, "archived", "a")
    assert not ledger.add("c", "Lives in Oslo.", "a").duplicate


def test_an_update_that_makes_a_duplicate_counts(ledger):
    w = ledger.add("c", "Lives in Oslo.", "a")
    assert not ledger.add("c", "Lives in Porto.", "a").duplicate
    ledger.update(w.id, "Lives in Bergen.", "a")
    assert ledger.add("c", "Lives in Bergen.", "a").id == w.id
    assert not ledger.add("c", "Lives in Oslo.", "a").duplicate


def test_cli_add_reports_a_duplicate_and_allows_one_on_request(tmp_path, capsys):
    d = init_data(tmp_path, capsys)
    code, out, _ = run(capsys, "--data", d, "add", "--json", "--cube", "c", "--actor", "a", "Alice likes tea")
    first = json.loads(out)["id"]
    code, out, _ = run(capsys, "--data", d, "add", "--cube", "c", "--actor", "a", "alice likes tea.")
    assert code == 0 and out.startswith(first) and "duplicate" in out
    code, out, _ = run(
        capsys, "--data", d, "add", "--json", "--cube", "c", "--actor", "a", "--allow-duplicate", "Alice likes tea"
    )
    assert code == 0 and json.loads(out)["id"] != first and "duplicate" not in json.loads(out)


def test_http_add_answers_the_existing_memory(tmp_path):
    svc = make_service(tmp_path)
    c, h = svc.client, svc.h("alice")
    assert c.post("/v1/cubes", json={"cube": "c"}, headers=h).status_code == 201
    first = c.post("/v1/memories", json={"cube": "c", "text": "Alice likes tea."}, headers=h).json()
    assert first["duplicate"] is False
    head = svc.head()
    again = c.post("/v1/memories", json={"cube": "c", "text": "alice likes tea"}, headers=h).json()
    assert again["duplicate"] is True and again["id"] == first["id"] and svc.head() == head
    forced = c.post("/v1/memories", json={"cube": "c", "text": "alice likes tea", "allow_duplicate": True}, headers=h)
    assert forced.json()["duplicate"] is False and forced.json()["id"] != first["id"]
    bad = c.post("/v1/memories", json={"cube": "c", "text": "x", "allow_duplicate": "yes"}, headers=h)
    assert bad.status_code == 422


def test_a_forgotten_subjects_memory_is_no_longer_a_duplicate(data_dir_ledger, tmp_path):
    from ledger.governance.forget import forget

    led = data_dir_ledger
    w = led.add("c", "Alice's phone is 555.", "a", subject="alice")
    assert led.add("c", "Alice's phone is 555.", "a", subject="alice").id == w.id  # the index holds it now
    forget(led, "alice", "dpo", data_dir=tmp_path / "data")
    assert led.duplicates().memories("c")[w.id].text is None
    assert not led.add("c", "Alice's phone is 555.", "a").duplicate
