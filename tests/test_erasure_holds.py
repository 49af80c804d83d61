"""Issue 12, legal holds: a held memory (by id, cube or subject) cannot be deleted, erased, forgotten
or redacted; every refused attempt is recorded; releasing the hold lets the operation through."""

from __future__ import annotations

import pytest

from ledger.errors import InvalidRequest, LegalHold, NotFound
from ledger.governance.erase import erase
from ledger.governance.forget import forget
from ledger.governance.holds import HOLDS_STREAM, place_hold, read_holds, release_hold
from ledger.governance.redact import redact
from tests.service_support import make_service


def _refusals(led) -> list[dict]:
    return [e.payload | {"actor": e.actor} for e in led.log.read_stream(HOLDS_STREAM) if e.type == "hold.refused"]


@pytest.mark.parametrize("scope", ["memory", "cube", "subject"])
def test_a_hold_blocks_delete_erase_forget_and_redact_and_each_refusal_is_recorded(data_dir_ledger, scope):
    led = data_dir_ledger
    m = led.add("c", "alice's contract number is 55-1234-99", "agent", subject="alice")
    target = {"memory": {"memory_id": m.id}, "cube": {"cube": "c"}, "subject": {"subject": "alice"}}[scope]
    hold = place_hold(led.log, "legal", "litigation 2026-114", **target)
    attempts = [
        ("delete", lambda: led.delete(m.id, "agent")),
        ("delete", lambda: led.delete_where("c", "agent")),
        ("erase", lambda: erase(led, [m.id], "dpo", "request")),
        ("forget", lambda: forget(led, "alice", "dpo")),
        ("redact", lambda: redact(led, m.id, [(0, 5)], "dpo", "request")),
    ]
    for operation, attempt in attempts:
        before = len(_refusals(led))
        with pytest.raises(LegalHold, match=hold.hold_id) as info:
            attempt()
        assert info.value.hold_ids == [hold.hold_id]
        refused = _refusals(led)
        assert len(refused) == before + 1 and refused[-1]["operation"] == operation
        assert refused[-1]["hold_ids"] == [hold.hold_id]
    assert led.get(m.id).text == "alice's contract number is 55-1234-99"  # nothing was changed
    assert [r["actor"] for r in _refusals(led)] == ["agent", "agent", "dpo", "dpo", "dpo"]
    release_hold(led.log, hold.hold_id, "legal", "case closed")
    assert read_holds(led.log).active == {}
    assert erase(led, [m.id], "dpo", "request").complete


def test_a_hold_on_a_derived_memory_blocks_erasing_its_source(data_dir_ledger):
    led = data_dir_ledger
    a = led.add("c", "source text one here", "agent")
    b = led.add("c", "source text two here", "agent")
    merged = led.merge([a.id, b.id], "merged text of both", "agent")
    place_hold(led.log, "legal", "keep the merge", memory_id=merged.id)
    with pytest.raises(LegalHold):
        erase(led, [a.id], "dpo", "request")  # would make the held merge unreadable
    led.delete(a.id, "agent")  # deleting the source leaves the merge readable: allowed


def test_hold_input_is_checked(data_dir_ledger):
    led = data_dir_ledger
    head = led.head()
    with pytest.raises(InvalidRequest, match="exactly one"):
        place_hold(led.log, "legal", "r", cube="c", subject="s")
    with pytest.raises(InvalidRequest, match="reason"):
        place_hold(led.log, "legal", " ", cube="c")
    with pytest.raises(InvalidRequest):
        place_hold(led.log, "legal", "r", cube="_system")
    with pytest.raises(NotFound):
        release_hold(led.log, "hold_nope", "legal")
    assert led.head() == head


def test_http_holds_are_for_admins_and_refusals_are_409(tmp_path):
    s = make_service(tmp_path)
    c = s.client
    c.post("/v1/cubes", json={"cube": "w"}, headers=s.h("alice"))
    m = c.post("/v1/memories", json={"cube": "w", "text": "held text"}, headers=s.h("alice")).json()
    assert c.post("/v1/holds", json={"cube": "w", "reason": "r"}, headers=s.h("alice")).status_code == 403
    assert (
        c.post("/v1/holds", json={"cube": "w", "subject": "x", "reason": "r"}, headers=s.h("root")).status_code == 422
    )
    hold = c.post("/v1/holds", json={"cube": "w", "reason": "audit"}, headers=s.h("root"))
    assert hold.status_code == 201
    hid = hold.json()["hold_id"]
    assert [h["hold_id"] for h in c.get("/v1/holds", headers=s.h("root")).json()["holds"]] == [hid]
    r = c.request("DELETE", f"/v1/memories/{m['id']}", headers=s.h("alice"))
    assert r.status_code == 409 and hid in r.text
    assert c.post(f"/v1/holds/{hid}/release", json={"reason": "done"}, headers=s.h("root")).status_code == 200
    assert c.request("DELETE", f"/v1/memories/{m['id']}", headers=s.h("alice")).status_code == 200
    assert [e.type for e in s.events() if e.stream == HOLDS_STREAM] == ["hold.placed", "hold.refused", "hold.released"]
