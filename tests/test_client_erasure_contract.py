"""The contract of ``tests/test_client_contract.py`` for deletion, erasure, redaction, lineage,
legal holds and subject exports (issues 12 and 14): the embedded client, ``MemledgerClient``
against a real ``memledger serve`` and ``AsyncMemledgerClient`` pass the same tests. ``client``
acts as principal ``alice``; ``admin`` as the admin principal ``root`` of the same ledger."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ledger.errors import AccessDenied, ConcurrencyConflict, InvalidRequest, LegalHold, NotFound, StateError
from tests.client_fixtures import embedded_with_admin, fresh, served_with_admin


@pytest.fixture(scope="module", params=["embedded", "http", "http-async"])
def pair(request, tmp_path_factory) -> Iterator[tuple[Any, Any]]:
    tmp = tmp_path_factory.mktemp(request.param)
    yield from (embedded_with_admin(tmp) if request.param == "embedded" else served_with_admin(tmp, request.param))


@pytest.fixture
def client(pair) -> Any:
    return pair[0]


@pytest.fixture
def admin(pair) -> Any:
    return pair[1]


def head(client: Any) -> int:
    return client.head()["offset"]


def test_delete_is_a_tombstone_the_past_still_sees(client):
    cube = fresh()
    w = client.add(cube=cube, text="Alice prefers green tea")
    keep = client.add(cube=cube, text="Alice lives in Lisbon")
    d = client.delete(w.id, reason="user asked", expected_version=1)
    assert d.id == w.id and d.offset > keep.offset
    with pytest.raises(NotFound, match="deleted"):
        client.get(w.id)
    assert client.get(w.id, as_of=w.offset).text == "Alice prefers green tea"  # the past is untouched
    assert [m.id for m in client.list_memories(cube).memories] == [keep.id]
    assert w.id not in [h.id for h in client.search("green tea", cubes=[cube], all_states=True)]
    trail = client.audit(memory=w.id, types=["memory.deleted"])
    assert [(e["type"], e["actor"]) for e in trail] == [("memory.deleted", "alice")]
    with pytest.raises(NotFound):
        client.delete(w.id)  # deleted already
    with pytest.raises(NotFound):
        client.delete("mem_missing")


def test_delete_refuses_a_stale_version_and_a_frozen_memory(client):
    cube = fresh()
    w = client.add(cube=cube, text="v1")
    client.update(w.id, "v2")
    before = head(client)
    with pytest.raises(ConcurrencyConflict):
        client.delete(w.id, expected_version=1)
    with pytest.raises(InvalidRequest):
        client.delete(w.id, reason="x" * 2001)
    assert head(client) == before and client.get(w.id, as_of=before).text == "v2"
    client.change_state(w.id, "frozen")
    with pytest.raises(StateError):
        client.delete(w.id)


def test_delete_where_is_one_atomic_batch_of_the_matching_memories(client):
    cube = fresh()
    a = client.add(cube=cube, text="one", metadata={"user_id": "u1"})
    b = client.add(cube=cube, text="two", metadata={"user_id": "u1"})
    c = client.add(cube=cube, text="three", metadata={"user_id": "u2"})
    out = client.delete_where(cube, where={"user_id": "u1"}, reason="account closed")
    assert sorted(out["deleted"]) == sorted([a.id, b.id]) and out["count"] == 2 and len(out["offsets"]) == 2
    assert [m.id for m in client.list_memories(cube).memories] == [c.id]
    before = head(client)
    with pytest.raises(InvalidRequest):
        client.delete_where(cube, where={"user_id": {"$bogus": 1}})
    assert head(client) == before
    with pytest.raises(NotFound):
        client.delete_where(fresh("unknown"))
    assert client.delete_where(cube)["deleted"] == [c.id]  # no filter: the whole cube


def test_erase_is_irreversible_and_reaches_derived_memories(client):
    cube = fresh()
    a = client.add(cube=cube, text="Alice's PIN is 4321")
    b = client.add(cube=cube, text="Alice banks at Acme")
    m = client.merge([a.id, b.id], "Alice banks at Acme with PIN 4321")
    before = head(client)
    for bad in ("", "   "):
        with pytest.raises(InvalidRequest):
            client.erase(a.id, reason=bad)  # a reason is required
    assert head(client) == before
    report = client.erase(a.id, reason="GDPR request 17")
    assert report["erased"] == [a.id] and report["derived"] == [m.id]
    assert report["complete"] is True and report["keys_destroyed"] >= 1 and report["already_erased"] is False
    with pytest.raises(NotFound, match="erased"):
        client.get(a.id)
    assert client.get(m.id).text is None  # derived from the erased text: unreadable too
    assert client.get(b.id).text == "Alice banks at Acme"
    assert {v.text for v in client.history(m.id)} == {None}
    again = client.erase(a.id, reason="GDPR request 17")  # a repeat finishes the same erasure
    assert again["already_erased"] is True and again["erasure_id"] == report["erasure_id"]
    trail = client.audit(memory=a.id, types=["memory.erased"])
    assert [(e["type"], e["actor"]) for e in trail] == [("memory.erased", "alice")]
    with pytest.raises(NotFound):
        client.erase("mem_missing", reason="x")


def test_erase_where_erases_the_matching_memories_deleted_ones_too(client):
    cube = fresh()
    a = client.add(cube=cube, text="one", metadata={"user_id": "u1"})
    b = client.add(cube=cube, text="two", metadata={"user_id": "u1"})
    c = client.add(cube=cube, text="three", metadata={"user_id": "u2"})
    client.delete(b.id)
    report = client.erase_where(cube, reason="account closed", where={"user_id": "u1"})
    assert sorted(report["erased"]) == sorted([a.id, b.id]) and report["complete"] is True
    assert client.get(c.id).text == "three"
    with pytest.raises(NotFound):
        client.erase_where(cube, reason="again", where={"user_id": "u1"})  # nothing left to erase
    with pytest.raises(InvalidRequest):
        client.erase_where(cube, reason="   ")


def test_redact_masks_spans_and_erases_the_earlier_versions(client):
    cube = fresh()
    w = client.add(cube=cube, text="my card 4111 and my dog Rex", metadata={"user_id": "u1"})
    client.update(w.id, "my card 4111 and my dog Rex is 3", metadata={"user_id": "u1"})
    start = "my card ".index("c") + len("card ")
    report = client.redact(w.id, [(start, start + 4)], reason="card number")
    assert report["complete"] is True
    now = client.get(w.id)
    assert "4111" not in (now.text or "") and now.text.startswith("my card ") and now.metadata == {"user_id": "u1"}
    texts = [v.text for v in client.history(w.id)]
    assert texts[-1] == now.text and set(texts[:-1]) == {None}  # every earlier version: unreadable
    with pytest.raises(InvalidRequest):
        client.redact(w.id, [(3, 3)], reason="empty span")
    with pytest.raises(InvalidRequest):
        client.redact(w.id, [(0, 2)], reason="  ")
    with pytest.raises(NotFound):
        client.redact("mem_missing", [(0, 1)], reason="x")


def test_lineage_names_sources_and_descendants(client):
    cube = fresh()
    a = client.add(cube=cube, text="alpha")
    b = client.add(cube=cube, text="beta")
    ab = client.merge([a.id, b.id], "alpha and beta")
    up = client.lineage(ab.id)
    assert up["memory_id"] == ab.id and {(e["parent"], e["child"]) for e in up["sources"]} == {
        (a.id, ab.id),
        (b.id, ab.id),
    }
    down = client.lineage(a.id)
    assert [(e["parent"], e["child"], e["relation"]) for e in down["descendants"]] == [(a.id, ab.id, "merged")]
    past = client.lineage(a.id, as_of=b.offset)
    assert past["as_of"] == b.offset and past["descendants"] == []
    with pytest.raises(NotFound):
        client.lineage(ab.id, as_of=b.offset)  # not merged yet: ab did not exist
    with pytest.raises(InvalidRequest):
        client.lineage(a.id, depth=0)
    with pytest.raises(NotFound):
        client.lineage("mem_missing")


def test_holds_are_for_admins_and_block_delete_and_erase_with_legal_hold(client, admin):
    cube = fresh()
    w = client.add(cube=cube, text="evidence")
    with pytest.raises(AccessDenied):
        client.place_hold("litigation", cube=cube)
    with pytest.raises(AccessDenied):
        client.holds()
    hold = admin.place_hold("litigation 2026-7", cube=cube)
    assert hold["scope"] == "cube" and hold["target"] == cube and hold["placed_by"] == "root"
    assert hold["hold_id"] in [h["hold_id"] for h in admin.holds()]
    for attempt in (lambda: client.delete(w.id), lambda: client.erase(w.id, reason="asked")):
        with pytest.raises(LegalHold) as refused:
            attempt()
        assert refused.value.hold_ids == [hold["hold_id"]]
    refusals = admin.audit(actor="alice", types=["hold.refused"])
    assert [(e["details"]["operation"], e["actor"]) for e in refusals] == [("delete", "alice"), ("erase", "alice")]
    assert client.get(w.id).text == "evidence"
    with pytest.raises(InvalidRequest):
        admin.place_hold("two targets", cube=cube, memory_id=w.id)
    with pytest.raises(AccessDenied):
        client.release_hold(hold["hold_id"])
    released = admin.release_hold(hold["hold_id"], reason="case closed")
    assert released["hold_id"] == hold["hold_id"] and released["offset"] > hold["offset"]
    with pytest.raises(NotFound):
        admin.release_hold(hold["hold_id"])
    assert client.delete(w.id).id == w.id


def test_subject_export_is_for_admins_and_holds_every_event_of_the_subject(client, admin):
    cube, subject = fresh(), fresh("subject-")
    w = client.add(cube=cube, text="Dana's address is 1 Main St", subject=subject)
    client.get(w.id)
    with pytest.raises(AccessDenied):
        client.subject_export(subject)
    records = admin.subject_export(subject)
    header, rest = records[0], records[1:]
    assert header["subject"] == subject
    types = [r["event"]["type"] for r in rest if "event" in r]
    assert "memory.added" in types and "memory.read" in types
    assert any(r.get("content", {}).get("text") == "Dana's address is 1 Main St" for r in rest)
    with pytest.raises(NotFound):
        admin.subject_export(fresh("nobody-"))


def test_an_admin_may_erase_and_redact_any_memory(client, admin):
    cube = fresh()
    w = client.add(cube=cube, text="ticket 5521 for Dana")
    other = client.add(cube=cube, text="ticket 5522 for Eve")
    assert admin.redact(other.id, [(7, 11)], reason="ticket number")["complete"] is True
    assert "5522" not in (client.get(other.id).text or "")
    report = admin.erase(w.id, reason="DPO request")
    assert report["erased"] == [w.id] and report["complete"] is True
    trail = client.audit(memory=w.id, types=["memory.erased"])
    assert [e["actor"] for e in trail] == ["root"]
