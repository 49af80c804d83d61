"""The embedded client and the stdio MCP server on a partitioned data directory: each call on its
cube's (or memory's) partition, search/cubes/holds/forget over every partition, branches and the
event stream refused in one line."""

from __future__ import annotations

import anyio
import pytest

from ledger.client import EmbeddedClient, PartitionedEmbeddedClient, open_embedded_client
from ledger.config import init_data_dir
from ledger.errors import InvalidRequest, LegalHold
from ledger.principals import PrincipalStore
from tests.mcp_support import call, memledger_stdio, refused

CONFIG = '[log]\nbackend = "sqlite"\nsynchronous = "NORMAL"\npartitions = 4\n[views]\nvector = "none"\n'


@pytest.fixture
def data(tmp_path):
    path, _ = init_data_dir(tmp_path / "data", CONFIG)
    PrincipalStore(path).create("root", admin=True)
    return path


def test_open_embedded_client_picks_the_partitioned_client(data, tmp_path):
    with open_embedded_client(data, "alice") as client:
        assert isinstance(client, PartitionedEmbeddedClient)
    single, _ = init_data_dir(tmp_path / "single")
    with open_embedded_client(single, "alice") as client:
        assert isinstance(client, EmbeddedClient)
    with pytest.raises(InvalidRequest, match="4 partitions"):
        EmbeddedClient(data, "alice")


def test_the_client_api_on_a_partitioned_ledger(data):
    with open_embedded_client(data, "root") as c:
        assert isinstance(c, PartitionedEmbeddedClient)
        tea = c.add("cube0", "Olga drinks rooibos", subject="olga")
        bike = c.add("cube1", "Olga's bike is orange", subject="olga")
        assert c.pledger.home_of(tea.id) != c.pledger.home_of(bike.id)
        c.update(bike.id, "Olga's bike is teal")
        assert c.get(bike.id).text == "Olga's bike is teal"
        assert [v.text for v in c.history(bike.id)] == ["Olga's bike is orange", "Olga's bike is teal"]
        assert [m.id for m in c.list_memories("cube0").memories] == [tea.id]
        assert {h.id for h in c.search("Olga")} == {tea.id, bike.id}
        with pytest.raises(InvalidRequest, match="ISO-8601"):
            c.search("Olga", cubes=["cube0", "cube1"], as_of=1)
        assert [x["cube"] for x in c.cubes()] == ["cube0", "cube1"]
        assert len(c.head()["heads"]) == 4
        hold = c.place_hold("case 5", subject="olga")
        assert [h["partitions"] for h in c.holds()] == [[0, 1, 2, 3]]
        with pytest.raises(LegalHold):
            c.forget("olga")
        c.release_hold(hold["hold_id"], "closed")
        assert c.forget("olga", "request")["complete"]
        assert c.get(tea.id).text is None and c.get(bike.id).text is None
        assert c.audit(memory=tea.id)  # a memory's trail comes from its partition
        for refused_call in (
            c.branches,
            lambda: c.events(),
            lambda: c.audit(),
            lambda: c.add("cube0", "x", branch="b"),
        ):
            with pytest.raises(InvalidRequest, match="one partition"):
                refused_call()


def test_stdio_mcp_on_a_partitioned_ledger(data):
    from mcp import Client

    async def run() -> tuple[dict, dict, list, str]:
        async with Client(memledger_stdio(data, "--cube", "cube0", "--actor", "agent-3")) as client:
            one = await call(client, "add_memory", text="Pia keeps bees")
            two = await call(client, "add_memory", text="Pia's bees make honey", cube="cube1")
            hits = (await call(client, "search_memories", query="bees", cubes=["cube0", "cube1"]))["hits"]
            message = await refused(client, "list_branches")
            return one, two, hits, message

    one, two, hits, message = anyio.run(run)
    assert {h["id"] for h in hits} == {one["id"], two["id"]}
    assert "one partition" in message
    from ledger.factory import open_partitioned_memory

    pledger = open_partitioned_memory(data)
    try:
        assert pledger.home_of(one["id"]) == pledger.partition_of("cube0") != pledger.home_of(two["id"])
        reads = [e for led in pledger.ledgers for e in led.events() if e.type == "memory.read"]
        assert reads and {e.actor for e in reads} == {"agent-3"}
    finally:
        pledger.close()
