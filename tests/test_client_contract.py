"""One contract, three implementations (issue 14): the behaviour of the embedded API, of
``MemledgerClient`` against a real ``memledger serve`` and of ``AsyncMemledgerClient``, checked by
the same tests. Every implementation acts as principal ``alice``; ``bob`` exists as a principal."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ledger.errors import ConcurrencyConflict, InvalidRequest, NotFound, StateError
from ledger.timemachine.branch_merge import MergeConflict
from tests.client_fixtures import embedded, fresh, served


@pytest.fixture(scope="module", params=["embedded", "http", "http-async"])
def client(request, tmp_path_factory) -> Iterator[Any]:
    tmp = tmp_path_factory.mktemp(request.param)
    source = embedded(tmp) if request.param == "embedded" else served(tmp, request.param)
    yield from source


def head(client: Any) -> int:
    return client.head()["offset"]


def test_add_creates_the_cube_owned_by_the_caller(client):
    cube = fresh()
    w1 = client.add(cube=cube, text="likes green tea", metadata={"user_id": "u1"})
    w2 = client.add(cube=cube, text="lives in Lisbon", tags=["place"])
    assert w2.offset > w1.offset and w1.id != w2.id
    m = client.get(w1.id)
    assert (m.text, m.cube, m.metadata, m.created_by, m.state) == (
        "likes green tea",
        cube,
        {"user_id": "u1"},
        "alice",
        "generated",
    )
    assert client.get(w2.id).tags == ["place"]
    assert {"cube": cube, "roles": ["owner"]} in client.cubes()
    assert client.whoami()["principal"] == "alice"


def test_update_and_history(client):
    cube = fresh()
    w = client.add(cube=cube, text="v1")
    client.update(w.id, "v2")
    client.update(w.id, "v3", metadata={"k": 1}, reason="typo")
    versions = client.history(w.id)
    assert [(v.text, v.version, v.updated_by) for v in versions] == [
        ("v1", 1, "alice"),
        ("v2", 2, "alice"),
        ("v3", 3, "alice"),
    ]
    assert versions[-1].metadata == {"k": 1}
    assert versions[-1].provenance == [v.updated_offset for v in versions]


def test_as_of_offset_and_time(client):
    cube = fresh()
    w = client.add(cube=cube, text="v1")
    u = client.update(w.id, "v2")
    assert client.get(w.id, as_of=w.offset).text == "v1"
    assert client.get(w.id, as_of=str(u.offset)).text == "v2"
    assert client.get(w.id, as_of=client.get(w.id, as_of=w.offset).created_at).text == "v1"
    assert [v.text for v in client.history(w.id, as_of=w.offset)] == ["v1"]
    with pytest.raises(NotFound):
        client.get(w.id, as_of=w.offset - 1)  # did not exist yet
    with pytest.raises(NotFound):
        client.get(w.id, as_of=head(client) + 1000)  # an offset the log has not reached
    with pytest.raises(InvalidRequest):
        client.get(w.id, as_of="not a time")


def test_idempotent_add(client):
    cube = fresh()
    a = client.add(cube=cube, text="hello", idempotency_key="req-42")
    before = head(client)
    b = client.add(cube=cube, text="hello", idempotency_key="req-42")
    assert (a.id, a.offset, a.event_id) == (b.id, b.offset, b.event_id)
    assert head(client) == before
    with pytest.raises(StateError):
        client.add(cube=fresh(), text="hello", idempotency_key="req-42")  # the key names another write


def test_expected_version_conflict_and_unrelated_writes(client):
    cube = fresh()
    w = client.add(cube=cube, text="v1")
    client.add(cube=cube, text="another memory")  # moves the cube, not this memory
    client.update(w.id, "v2", expected_version=1)
    with pytest.raises(ConcurrencyConflict):
        client.update(w.id, "v3", expected_version=1)
    assert client.get(w.id).text == "v2"


def test_bad_input_raises_the_embedded_classes_and_writes_nothing(client):
    cube = fresh()
    client.add(cube=cube, text="x")
    before = head(client)
    for bad in ("", "   ", "\u200b"):
        with pytest.raises(InvalidRequest):
            client.add(cube=cube, text=bad)
    with pytest.raises(InvalidRequest):
        client.add(cube="_system", text="x")
    with pytest.raises(InvalidRequest):
        client.add(cube="a/b", text="x")
    with pytest.raises(InvalidRequest):
        client.add(cube=cube, text="x", metadata={"n": float("nan")})
    with pytest.raises(InvalidRequest):
        client.search("   ", cubes=[cube])
    assert head(client) == before
    with pytest.raises(NotFound):
        client.update("mem_missing", "x")
    with pytest.raises(NotFound):
        client.get("mem_missing")


def test_lifecycle_and_frozen_is_read_only(client):
    w = client.add(cube=fresh(), text="x")
    client.change_state(w.id, "activated")
    client.change_state(w.id, "archived", reason="stale")
    with pytest.raises(StateError):
        client.change_state(w.id, "generated")
    with pytest.raises(StateError):
        client.update(w.id, "y")
    client.change_state(w.id, "frozen")
    with pytest.raises(InvalidRequest):
        client.change_state(w.id, "deleted")
    assert client.get(w.id).state == "frozen"


def test_merge_and_link_record_provenance(client):
    cube = fresh()
    a = client.add(cube=cube, text="Bob likes tea", metadata={"user_id": "bob"})
    b = client.add(cube=cube, text="Bob likes green tea")
    m = client.merge([a.id, b.id], "Bob likes green tea", reason="near-duplicates")
    merged = client.get(m.id)
    assert merged.sources == [a.id, b.id] and merged.metadata == {"user_id": "bob"}
    assert client.get(a.id).state == "merged" and client.get(a.id).merged_into == m.id
    link = client.link(m.id, b.id, "refines")
    assert link.id == m.id
    with pytest.raises(InvalidRequest):
        client.merge([a.id], "x")


def test_reads_and_writes_name_the_caller_in_the_audit_trail(client):
    cube = fresh()
    w = client.add(cube=cube, text="x")
    client.get(w.id)
    client.history(w.id)
    entries = client.audit(memory=w.id)
    assert [(e["type"], e["actor"]) for e in entries] == [
        ("memory.added", "alice"),
        ("memory.read", "alice"),
        ("memory.read", "alice"),
    ]
    assert [e["details"]["operation"] for e in entries[1:]] == ["get", "history"]
    cube_trail = client.audit(cube=cube, types=["cube.*"])
    assert [e["type"] for e in cube_trail] == ["cube.created"]
    with pytest.raises(NotFound):
        client.audit(memory="mem_missing")


def test_search_with_filters_as_of_and_states(client):
    cube = fresh()
    tea = client.add(cube=cube, text="Alice prefers green tea", metadata={"user_id": "alice"})
    client.add(cube=cube, text="Bob prefers black coffee", metadata={"user_id": "bob"})
    hits = client.search("what does Alice drink? tea", cubes=[cube], k=5)
    assert hits and hits[0].id == tea.id and hits[0].cube == cube and hits[0].score > 0
    assert tea.offset in hits[0].provenance["offsets"]
    only_bob = client.search("prefers", cubes=[cube], metadata={"user_id": "bob"})
    assert [h.metadata["user_id"] for h in only_bob] == ["bob"]
    assert client.search("green tea", cubes=[cube], as_of=tea.offset - 1) == []
    client.change_state(tea.id, "archived")
    assert tea.id not in [h.id for h in client.search("green tea", cubes=[cube])]
    assert tea.id in [h.id for h in client.search("green tea", cubes=[cube], all_states=True)]
    assert tea.id in [h.id for h in client.search("green tea", cubes=[cube], states=["archived"])]
    reads = client.audit(cube=cube, types=["memory.read"])
    assert reads and all(e["actor"] == "alice" and e["details"]["operation"] == "search" for e in reads)
    with pytest.raises(NotFound):
        client.search("tea", cubes=[fresh("unknown")])


def test_list_memories_pages_in_creation_order_with_an_opaque_cursor(client):
    cube = fresh()
    ids = [client.add(cube=cube, text=f"memory {i}", metadata={"user_id": f"u{i % 2}"}).id for i in range(3)]
    first = client.list_memories(cube, limit=2)
    assert [m.id for m in first.memories] == ids[:2] and first.next_cursor not in (None, *ids)
    second = client.list_memories(cube, limit=2, after=first.next_cursor)
    assert [m.id for m in second.memories] == ids[2:] and second.next_after is None
    client.change_state(ids[0], "activated")
    assert [m.id for m in client.list_memories(cube, state="activated").memories] == [ids[0]]
    assert client.list_memories(cube, as_of=first.as_of).as_of == first.as_of
    with pytest.raises(NotFound):
        client.list_memories(fresh("unknown"))


def test_list_memories_with_a_filter(client):
    cube = fresh()
    ids = [client.add(cube=cube, text=f"note {i}", metadata={"user_id": f"u{i % 2}", "n": i}).id for i in range(5)]
    page = client.list_memories(cube, where={"user_id": "u0", "n": {"$gte": 1}}, limit=1)
    assert [m.id for m in page.memories] == [ids[2]] and page.next_cursor is not None
    rest = client.list_memories(cube, where={"user_id": "u0", "n": {"$gte": 1}}, limit=1, after=page.next_cursor)
    assert [m.id for m in rest.memories] == [ids[4]] and rest.next_cursor is None
    with pytest.raises(StateError, match="another filter"):  # a cursor conflicting with the request: 409
        client.list_memories(cube, where={"user_id": "u1"}, limit=1, after=page.next_cursor)
    with pytest.raises(StateError, match="bad cursor"):
        client.list_memories(cube, after="not-a-cursor")
    with pytest.raises(InvalidRequest, match="unknown operator"):
        client.list_memories(cube, where={"n": {"$regex": "x"}})
    reads = client.audit(cube=cube, types=["memory.read"])
    assert reads and reads[-1]["details"]["operation"] == "list"


def test_search_with_where_and_min_score(client):
    cube = fresh()
    a = client.add(cube=cube, text="Alice likes green tea", metadata={"user_id": "alice", "agent_id": "a1"})
    client.add(cube=cube, text="Bob likes green tea too", metadata={"user_id": "bob", "agent_id": "a1"})
    hits = client.search("green tea", cubes=[cube], k=1, where={"user_id": {"$in": ["alice"]}})
    assert [h.id for h in hits] == [a.id]
    both = client.search("green tea", cubes=[cube], where={"agent_id": "a1"})
    assert len(both) == 2
    assert client.search("green tea", cubes=[cube], min_score=1e5) == []
    assert len(client.search("green tea", cubes=[cube], min_score=min(h.score for h in both))) == 2
    with pytest.raises(InvalidRequest):
        client.search("green tea", cubes=[cube], where={"$or": []})


def test_branches_create_write_search_diff_merge(client):
    cube = fresh()
    w = client.add(cube=cube, text="Alice lives in Lisbon")
    name = fresh("what-if")
    info = client.create_branch(name)
    assert info["name"] == name and info["fork_offset"] == head(client) - 1
    assert name in [b["name"] for b in client.branches()]
    client.update(w.id, "Alice moved to Porto", branch=name)
    added = client.add(cube=cube, text="Alice bought a bike", branch=name)
    assert client.get(w.id, branch=name).text == "Alice moved to Porto"
    assert client.get(w.id).text == "Alice lives in Lisbon"
    on_branch = client.search("Porto", cubes=[cube], branch=name)
    assert [h.id for h in on_branch] == [w.id] and on_branch[0].from_branch
    assert client.search("Porto", cubes=[cube]) == []
    listed = client.list_memories(cube, branch=name)
    assert {m.id: m.text for m in listed.memories} == {w.id: "Alice moved to Porto", added.id: "Alice bought a bike"}
    assert [m.id for m in client.list_memories(cube, branch=name, where={"tags": {"$contains": "x"}}).memories] == []
    assert [m.id for m in client.list_memories(cube).memories] == [w.id]
    with pytest.raises(NotFound):
        client.list_memories(cube, branch=fresh("missing"))
    changes = {c["id"]: c["change"] for c in client.branch_diff(name)}
    assert changes == {w.id: "changed", added.id: "added"}
    result = client.merge_branch(name)
    assert result["branch"] == name
    assert client.get(w.id).text == "Alice moved to Porto"
    with pytest.raises(NotFound):
        client.branch_diff(fresh("missing"))
    with pytest.raises(StateError):
        client.create_branch(name)


def test_branch_merge_conflict_is_a_merge_conflict(client):
    cube = fresh()
    w = client.add(cube=cube, text="one")
    name = fresh("b")
    client.create_branch(name)
    client.update(w.id, "two on the branch", branch=name)
    client.update(w.id, "two on main")
    with pytest.raises(MergeConflict):
        client.merge_branch(name, strict=True)
    dropped = client.drop_branch(name)
    assert dropped["name"] == name and name not in [b["name"] for b in client.branches()]


def test_grants_and_revocations(client):
    cube = fresh()
    client.create_cube(cube, metadata={"team": "x"})
    g = client.grant(cube, "bob", "reader")
    assert g["changed"] is True and client.grant(cube, "bob", "reader")["changed"] is False
    assert client.grants(cube)["grants"]["bob"] == ["reader"]
    client.revoke(cube, "bob", "reader")
    assert "bob" not in client.grants(cube)["grants"]
    with pytest.raises(StateError):
        client.create_cube(cube)  # the name is taken
    with pytest.raises(NotFound):
        client.grant(cube, "nobody-such", "reader")


def test_export_is_the_verifiable_cube_export(client):
    cube = fresh()
    client.add(cube=cube, text="a")
    client.add(cube=cube, text="b")
    records = client.export(cube)
    header, events = records[0], [r for r in records[1:] if "event" in r]
    assert header["cube"] == cube and header["events"] == len(events) == 3
    assert [r["event"]["type"] for r in events] == ["cube.created", "memory.added", "memory.added"]
    assert all(isinstance(r["proof"], list) for r in events)


def test_log_events_from_an_offset(client):
    cube = fresh()
    w = client.add(cube=cube, text="streamed")
    events = list(client.events(start=w.offset - 1, limit=2))
    assert [(e["offset"], e["type"]) for e in events] == [(w.offset - 1, "cube.created"), (w.offset, "memory.added")]
    assert events[1]["payload"]["memory_id"] == w.id and events[1]["actor"] == "alice"
    tail = list(client.events(start=head(client) + 1))
    assert tail == []
    with pytest.raises(NotFound):
        list(client.events(start=head(client) + 5))


def test_ingest_messages_then_their_facts_are_found(client):
    import time

    cube = fresh()
    chat = [
        {"role": "user", "content": "I live in Porto.", "name": "Cy", "timestamp": "2026-11-02T09:00:00Z"},
        {"role": "assistant", "content": "Noted, Cy."},
    ]
    said = client.ingest(cube, chat, user_id="cy", batch_id="batch-1")
    assert said["count"] == 2 and said["cube"] == cube and not said["duplicate"]
    again = client.ingest(cube, chat, user_id="cy", batch_id="batch-1")  # a retry writes nothing new
    assert again["duplicate"] and again["offsets"] == said["offsets"]
    before = head(client)
    with pytest.raises(InvalidRequest):
        client.ingest(cube, [{"role": "narrator", "content": "Once upon a time"}])
    # the refusal wrote nothing (a server's extractor may be writing the facts of the first batch meanwhile)
    assert [e for e in client.events(start=before + 1) if e["type"] == "message.added"] == []
    hits: list[Any] = []
    deadline = time.monotonic() + 120  # extraction is a consumer of the log; not a timing assertion
    while not hits and time.monotonic() < deadline:
        hits = client.search("where does Cy live", cubes=[cube], where={"user_id": "cy"})
        time.sleep(0 if hits else 0.1)
    assert [(h.text, h.metadata["observed_at"]) for h in hits] == [("Cy lives in Porto.", "2026-11-02T09:00:00Z")]
    assert said["message_ids"][0] in str(client.lineage(hits[0].id))
    status = client.messages_status(cube)
    assert status["pending"] == 0 and status["checkpoint"] >= said["offsets"][-1]
    with pytest.raises(NotFound):
        client.messages_status(fresh())
