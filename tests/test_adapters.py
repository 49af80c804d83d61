"""The LangGraph store and the LangChain retriever (issue 14), with the real libraries, on the
embedded client and on ``MemledgerClient`` against a real ``memledger serve``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TypedDict

import anyio
import pytest
from langgraph.graph import END, START, StateGraph
from langgraph.store.base import BaseStore, PutOp

from ledger.adapters.langchain_retriever import MemledgerRetriever
from ledger.adapters.langgraph_store import MemledgerStore
from tests.client_fixtures import embedded, fresh, served


@pytest.fixture(scope="module", params=["embedded", "http"])
def client(request, tmp_path_factory) -> Iterator[Any]:
    tmp = tmp_path_factory.mktemp(request.param)
    yield from (embedded(tmp) if request.param == "embedded" else served(tmp, "http"))


def test_put_get_update_delete(client):
    cube = fresh("lg")
    store = MemledgerStore(client)
    ns = (cube, "alice")
    assert store.get(ns, "drink") is None
    store.put(ns, "drink", {"text": "Alice prefers green tea", "kind": "preference"})
    item = store.get(ns, "drink")
    assert item is not None and item.value == {"text": "Alice prefers green tea", "kind": "preference"}
    assert (item.namespace, item.key) == (ns, "drink")
    store.put(ns, "drink", {"text": "Alice prefers black coffee", "kind": "preference"})
    again = store.get(ns, "drink")
    assert again is not None and again.value["text"] == "Alice prefers black coffee"
    assert again.created_at == item.created_at and again.updated_at > item.updated_at
    memory = client.list_memories(cube).memories
    assert len(memory) == 1 and [v.text for v in client.history(memory[0].id)] == [
        "Alice prefers green tea",
        "Alice prefers black coffee",
    ]
    assert MemledgerStore(client).get(ns, "drink") is not None  # a fresh store finds it through the listing
    store.delete(ns, "drink")
    assert store.get(ns, "drink") is None and MemledgerStore(client).get(ns, "drink") is None
    deleted = client.audit(memory=memory[0].id, types=["memory.deleted", "memory.state_changed"])
    assert [(e["type"], e["actor"]) for e in deleted] == [("memory.deleted", "alice")]  # a tombstone, not archived
    assert client.list_memories(cube).memories == [] and client.search("coffee", cubes=[cube], all_states=True) == []
    assert client.get(memory[0].id, as_of=deleted[0]["offset"] - 1).text == "Alice prefers black coffee"
    store.put(ns, "drink", {"text": "Alice prefers water"})
    assert store.get(ns, "drink").value == {"text": "Alice prefers water"}  # type: ignore[union-attr]
    assert {e["actor"] for e in client.audit(cube=cube)} == {"alice"}


def test_ttl_is_refused_before_anything_is_written(client):
    cube = fresh("lg")
    store = MemledgerStore(client)
    before = client.head()["offset"]
    with pytest.raises(NotImplementedError, match="TTL is not supported"):  # BaseStore.put reads supports_ttl
        store.put((cube, "u"), "k", {"text": "expires"}, ttl=5)
    with pytest.raises(NotImplementedError, match="retention"):
        store.batch([PutOp((cube, "u"), "k", {"text": "expires"}, ttl=5)])  # the op itself, past BaseStore.put
    assert client.head()["offset"] == before and store.get((cube, "u"), "k") is None
    store.put((cube, "u"), "k", {"text": "kept"}, ttl=None)  # ttl=None: no expiry, accepted
    assert store.get((cube, "u"), "k").value == {"text": "kept"}  # type: ignore[union-attr]


def test_search_by_query_prefix_filter_and_listing(client):
    cube = fresh("lg")
    store = MemledgerStore(client)
    store.put((cube, "alice"), "drink", {"text": "Alice prefers green tea", "topic": "food"})
    store.put((cube, "alice"), "home", {"text": "Alice lives in Lisbon", "topic": "place"})
    store.put((cube, "bob"), "drink", {"text": "Bob prefers green tea too", "topic": "food"})
    hits = store.search((cube, "alice"), query="green tea")
    assert [(h.namespace, h.key) for h in hits] == [((cube, "alice"), "drink")] and hits[0].score
    both = store.search((cube,), query="green tea")
    assert {h.namespace[1] for h in both} == {"alice", "bob"}
    food = store.search((cube,), filter={"topic": "food"})
    assert sorted(h.namespace[1] for h in food) == ["alice", "bob"] and all(h.score is None for h in food)
    assert [h.key for h in store.search((cube, "alice"), filter={"topic": {"$ne": "food"}})] == ["home"]
    listed = store.search((cube, "alice"))
    assert [h.key for h in listed] == ["home", "drink"]  # newest first
    assert [h.key for h in store.search((cube, "alice"), limit=1, offset=1)] == ["drink"]
    assert store.list_namespaces(prefix=(cube,)) == [(cube, "alice"), (cube, "bob")]
    assert store.list_namespaces(prefix=(cube,), max_depth=1) == [(cube,)]


def test_async_methods(client):
    cube = fresh("lg")
    store = MemledgerStore(client)

    async def run() -> Any:
        await store.aput((cube, "u"), "k", {"text": "async memory"})
        got = await store.aget((cube, "u"), "k")
        hits = await store.asearch((cube,), query="async memory")
        return got, hits

    got, hits = anyio.run(run)
    assert got.value == {"text": "async memory"} and [h.key for h in hits] == ["k"]


class Turn(TypedDict):
    user: str
    said: str
    recalled: list[str]


def test_a_langgraph_graph_remembers_across_runs_through_the_store(client):
    cube = fresh("lg")

    def remember(state: Turn, *, store: BaseStore) -> dict[str, Any]:
        ns = (cube, state["user"])
        if state["said"]:
            store.put(ns, f"fact-{len(store.search(ns)) + 1}", {"text": state["said"]})
        return {"recalled": [h.value["text"] for h in store.search(ns, query="what does the user drink")]}

    graph = StateGraph(Turn)
    graph.add_node("remember", remember)
    graph.add_edge(START, "remember")
    graph.add_edge("remember", END)
    app = graph.compile(store=MemledgerStore(client))
    app.invoke({"user": "alice", "said": "I drink green tea every morning", "recalled": []})
    out = app.invoke({"user": "alice", "said": "", "recalled": []})
    assert out["recalled"] == ["I drink green tea every morning"]
    assert app.invoke({"user": "bob", "said": "", "recalled": []})["recalled"] == []


def test_langchain_retriever_returns_memories_as_documents(client):
    cube = fresh("lc")
    tea = client.add(cube=cube, text="Alice prefers green tea", metadata={"user_id": "alice"})
    client.add(cube=cube, text="Bob prefers black coffee", metadata={"user_id": "bob"})
    retriever = MemledgerRetriever(client=client, cubes=[cube], k=3)
    docs = retriever.invoke("what does Alice drink? tea")
    assert docs[0].page_content == "Alice prefers green tea" and docs[0].metadata["id"] == tea.id
    scoped = MemledgerRetriever(client=client, cubes=[cube], metadata_filter={"user_id": "bob"})
    assert [d.page_content for d in scoped.invoke("prefers")] == ["Bob prefers black coffee"]
    chain = retriever | (lambda documents: [d.metadata["cube"] for d in documents])
    assert set(chain.invoke("green tea")) == {cube}
    assert [
        d.page_content for d in MemledgerRetriever(client=client, cubes=[cube], as_of=tea.offset - 1).invoke("tea")
    ] == []
