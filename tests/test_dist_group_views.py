"""Consumer groups over the built-in Elasticsearch and Neo4j views (real PostgreSQL, Elasticsearch, Neo4j).

Four PostgreSQL partitions; each partition's view instance keeps its own checkpoint, all rows share
one index / graph. After every scenario the stored versions must equal a fresh fold of every
partition (each version once, tagged with its partition, closed at the right partition-local
offset), each partition's checkpoint must equal its head, and a query over the whole view must
find memories of every partition. Scenarios: two in-process members converging while events keep
arriving; a member stopped mid-way (the other finishes); ``kill -9`` of a member process mid-way;
reset of one partition's instance (the others' rows stay); as-of queries (restricted to one
partition, refused on the whole view).
"""

from __future__ import annotations

import signal
import subprocess
import threading
from pathlib import Path

import pytest

from consumers.group_member import GroupMember
from consumers.group_setup import partition_view_factory
from consumers.pg_group_coordinator import PostgresGroupCoordinator
from ledger.errors import InvalidRequest
from projections.base import OPEN, catch_up
from tests.cli_helpers import cli_process
from tests.dist_env import endpoint, unique_name
from tests.group_partitions import postgres_partitions
from tests.group_scenarios import wait_for
from tests.group_views import Probe, expected_versions, handle, write_config, write_memories

pytestmark = pytest.mark.integration
PARTITIONS = 4


@pytest.fixture
def pg(tmp_path):
    """(dsn, schema, 4 PostgreSQL partitions, data dir configured for both views)."""
    dsn = endpoint("postgres")
    es_url, neo4j_url = endpoint("elasticsearch"), endpoint("neo4j")
    schema = unique_name("pviews")
    plog = postgres_partitions(dsn, schema, PARTITIONS)
    data = tmp_path / "data"
    data.mkdir()
    write_config(data, dsn, schema, PARTITIONS, es_url, neo4j_url)
    yield dsn, schema, plog, data
    plog.drop()
    plog.close()
    cleanup = PostgresGroupCoordinator(dsn, schema, "cleanup", "cleanup", "cleanup")
    cleanup.heartbeat()
    cleanup._connection().execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    cleanup.leave()


@pytest.fixture(params=["elasticsearch", "neo4j"])
def target(request, pg):
    """(view name, dsn, schema, partitions, data dir, probe)."""
    dsn, schema, plog, data = pg
    probe = Probe(request.param, data, plog)
    yield request.param, dsn, schema, plog, data, probe
    probe.drop()
    probe.close()


def assert_converged(probe: Probe, plog, where: dict[str, int]) -> None:
    """Rows equal a fresh fold of every partition, checkpoints equal heads, a query finds every partition."""
    rows = probe.rows()
    ids = [vid for vid, _, _ in rows]
    assert len(ids) == len(set(ids)), "a version is stored twice"
    assert {vid: (p, to) for vid, p, to in rows} == expected_versions(plog)
    assert probe.checkpoints() == list(plog.heads())
    open_versions = sorted(vid.split("@")[0] for vid, _, to in rows if to == OPEN)
    assert open_versions == sorted(where), "every memory of every partition has exactly one current version"
    seed = next(m for m, k in where.items() if k == 0 and m.endswith("x0"))
    found = probe.found(seed)
    assert {where[m] for m in found if m in where} == set(range(PARTITIONS)), found


def members(view: str, dsn: str, schema: str, data: Path, names: list[str]) -> list[GroupMember]:
    """In-process members, each with its own partition connections and coordinator session."""
    from ledger.config import load_config

    config = load_config(data)
    out = []
    for name in names:
        own = postgres_partitions(dsn, schema, PARTITIONS)
        coordinator = PostgresGroupCoordinator(dsn, schema, "g", view, name, heartbeat_timeout=30)
        make = partition_view_factory(view, config, handle(), own)
        out.append(
            GroupMember(own, make, coordinator, "g", view, batch_size=4, poll_interval=0.05, heartbeat_interval=0.2)
        )
    return out


def test_two_members_converge_exactly_once_while_events_arrive(target):
    view, dsn, schema, plog, data, probe = target
    where = write_memories(plog, 12)
    group = members(view, dsn, schema, data, ["a", "b"])
    stop = threading.Event()
    threads = [threading.Thread(target=m.run, args=(stop,)) for m in group]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: probe.checkpoints() == list(plog.heads()), "the first catch-up")
        where.update(write_memories(plog, 6, tag="b"))  # while they run
        wait_for(lambda: probe.checkpoints() == list(plog.heads()), "the second catch-up")
        holders = group[0].coordinator.lock_holders()  # type: ignore[attr-defined]
        assert sorted(holders) == list(range(PARTITIONS)) and set(holders.values()) == {"a", "b"}
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert all(m.errors == 0 for m in group), [m.last_error for m in group]
    assert sum(m.applied for m in group) == sum(h + 1 for h in plog.heads())
    assert_converged(probe, plog, where)
    for m in group:
        m.partitions.close()


class _StopAfter:
    """Wraps a partition view: sets ``stop`` once ``limit`` batches were applied through any wrapper."""

    def __init__(self, inner, stop: threading.Event, counter: list[int], limit: int):
        self.inner, self.stop, self.counter, self.limit = inner, stop, counter, limit
        self.name = inner.name

    def checkpoint(self) -> int:
        return self.inner.checkpoint()

    def apply_batch(self, events) -> None:
        self.inner.apply_batch(events)
        self.counter[0] += 1
        if self.counter[0] >= self.limit:
            self.stop.set()

    def reset(self) -> None:
        self.inner.reset()

    def close(self) -> None:
        self.inner.close()


def test_a_member_stopped_mid_way_leaves_the_rest_to_the_other(target):
    view, dsn, schema, plog, data, probe = target
    where = write_memories(plog, 20)
    a, b = members(view, dsn, schema, data, ["a", "b"])
    stop_a, stop_b, applied = threading.Event(), threading.Event(), [0]
    make_a = a.make_view
    a.make_view = lambda k: _StopAfter(make_a(k), stop_a, applied, 3)  # a leaves after its 3rd batch
    run_a, run_b = threading.Thread(target=a.run, args=(stop_a,)), threading.Thread(target=b.run, args=(stop_b,))
    run_a.start()
    try:
        run_a.join(120)
        # a alone holds every partition; it stops at the end of the round (one batch per partition)
        assert not run_a.is_alive() and 3 <= applied[0] <= PARTITIONS, a.last_error
        assert probe.checkpoints() != list(plog.heads()), "a finished everything before it stopped"
        run_b.start()
        wait_for(lambda: probe.checkpoints() == list(plog.heads()), "b finishing")
    finally:
        stop_a.set()
        stop_b.set()
        run_a.join(60)
        if run_b.is_alive():
            run_b.join(60)
    assert a.applied + b.applied == sum(h + 1 for h in plog.heads()), "an event was applied twice or never"
    assert_converged(probe, plog, where)
    for m in (a, b):
        m.partitions.close()


def _member_process(data: Path, view: str, name: str) -> subprocess.Popen:
    args = ["consume", "--view", view, "--group", "g", "--member", name, "--batch-size", "2", "--poll-interval", "0.05"]
    args += ["--report-every", "0.5", "--heartbeat-interval", "0.2", "--heartbeat-timeout", "60"]
    return cli_process(data, *args)


def _holders(dsn: str, schema: str, view: str) -> dict[int, str]:
    probe = PostgresGroupCoordinator(dsn, schema, "g", view, "probe")
    try:
        return probe.lock_holders()
    finally:
        probe.leave()


@pytest.mark.slow
def test_kill_9_of_a_member_process_mid_way_the_other_finishes_exactly_once(target):
    view, dsn, schema, plog, data, probe = target
    where = write_memories(plog, 40)
    split = {0: "a", 1: "a", 2: "b", 3: "b"}  # the range assignment of members a and b
    a, b = _member_process(data, view, "a"), _member_process(data, view, "b")
    try:
        wait_for(lambda: _holders(dsn, schema, view) == split, "the split", procs=(a, b))
        wait_for(lambda: min(probe.checkpoints()[:2]) >= 4, "a's progress", procs=(a, b))
        a.send_signal(signal.SIGKILL)
        a.wait(10)
        at_kill = probe.checkpoints()[:2]
        assert at_kill != list(plog.heads())[:2], f"a finished before it was killed: {at_kill}"
        wait_for(lambda: _holders(dsn, schema, view) == dict.fromkeys(range(4), "b"), "b taking over", 30, (b,))
        wait_for(lambda: probe.checkpoints() == list(plog.heads()), "convergence", procs=(b,))
    finally:
        for p in (a, b):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        _, err_b = b.communicate(timeout=60)
        a.communicate(timeout=60)
    assert b.returncode == 0, err_b[-2000:]
    assert_converged(probe, plog, where)


def test_reset_of_one_partition_keeps_the_others_rows_and_as_of_stays_in_a_partition(target):
    view, _, _, plog, _, probe = target
    where = write_memories(plog, 6)
    for k, part in enumerate(probe.parts):
        catch_up(_feed(plog, k), part, batch_size=5)
    assert_converged(probe, plog, where)
    before = {vid: (p, to) for vid, p, to in probe.rows()}

    probe.parts[1].reset()
    assert probe.checkpoints()[1] == -1
    after = {vid: (p, to) for vid, p, to in probe.rows()}
    assert after == {vid: row for vid, row in before.items() if row[0] != 1}  # only partition 1's rows went
    catch_up(_feed(plog, 1), probe.parts[1], batch_size=5)
    assert_converged(probe, plog, where)

    # as of offset 0 of partition 2: only that partition's first memory (offsets are partition-local)
    first = next(e.payload["memory_id"] for e in plog.partition(2).read())
    if view == "elasticsearch":
        got = {m for m, _ in probe.parts[2].keyword_search("harbour", 100, as_of=0)}
        assert got == {first}
        with pytest.raises(InvalidRequest, match="partition-local"):
            probe.whole.keyword_search("harbour", 10, as_of=0)
    else:
        live = probe.parts[2].entity_names(list(where), as_of=0)
        assert set(live) == {first}  # the only version current at partition 2's offset 0 with entities
        with pytest.raises(InvalidRequest, match="partition-local"):
            probe.whole.entity_names(list(where), as_of=0)


def _feed(plog, k: int):
    """``catch_up``'s event source over partition ``k`` (upcast events)."""
    from ledger.schema_registry import SchemaRegistry

    registry = SchemaRegistry()
    return lambda start, end: (registry.upcast(e) for e in plog.partition(k).read(start, end))
