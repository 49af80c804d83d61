"""The memory API on a PostgreSQL partitioned ledger (a schema per partition, real server): two app
processes write cubes of different partitions at once, each cube's memories are exact, every
partition verifies, and a subject forgotten through one handle is unreadable through the other."""

from __future__ import annotations

import multiprocessing as mp

import pytest

from ledger.config import init_data_dir
from ledger.factory import open_partitioned_memory
from ledger.partitions.partitioned_forget import forget_partitioned
from ledger.partitions.postgres_partitions import drop_postgres_partitions
from tests.dist_env import endpoint, unique_name
from tests.log_contract import added

pytestmark = pytest.mark.integration


@pytest.fixture
def data(tmp_path):
    dsn = endpoint("postgres")
    schema = unique_name("pmem")
    text = f'[log]\nbackend = "postgres"\ndsn = "{dsn}"\nschema = "{schema}"\npartitions = 4\n'
    path, _ = init_data_dir(tmp_path / "data", text)
    path.joinpath("schema").write_text(schema)
    yield path
    drop_postgres_partitions(dsn, schema)


def _writer(path: str, cubes: list[str], n: int) -> None:
    pledger = open_partitioned_memory(path)
    try:
        for i in range(n):
            for c in cubes:
                pledger.add(c, f"{c} fact {i}", "writer", subject="hana" if i % 5 == 0 else None)
    finally:
        pledger.close()


def test_two_writers_on_different_partitions_then_a_forget_seen_by_both(data):
    probe = open_partitioned_memory(data)
    by_part: dict[int, list[str]] = {}
    for i in range(40):
        by_part.setdefault(probe.partition_of(f"cube{i}"), []).append(f"cube{i}")
    (_, first), (_, second) = sorted(by_part.items())[:2]
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(data), cubes[:2], 20)) for cubes in (first, second)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    for cube in first[:2] + second[:2]:
        texts = sorted(m.text for m in probe.cube_memories(cube).values())
        assert texts == sorted(f"{cube} fact {i}" for i in range(20))
    for led in probe.ledgers:
        assert led.log.verify().ok
    report = forget_partitioned(probe, "hana", "admin")
    assert report.complete and len(report.memory_ids) == 16
    other = open_partitioned_memory(data)  # another app server's handle on the same schemas
    try:
        for cube in first[:2] + second[:2]:
            states = other.cube_memories(cube).values()
            assert sum(m.text is None for m in states) == 4  # facts 0, 5, 10, 15 were hana's
    finally:
        other.close()
        probe.close()


def test_a_partition_reset_on_the_server_takes_no_writes(data):
    """Defect 4 on a partitioned ledger: the schemas dropped and re-created empty under a data
    directory that saw events must not silently start again at offset 0."""
    from ledger.log_guard import LogReset

    pledger = open_partitioned_memory(data)
    home = pledger.partition_of("cube-r")
    pledger.add("cube-r", "before the reset", "writer")
    pledger.close()
    drop_postgres_partitions(endpoint("postgres"), (data / "schema").read_text())
    again = open_partitioned_memory(data)  # the server's schemas are new and empty now
    try:
        with pytest.raises(LogReset):
            again.add("cube-r", "after the reset", "writer")
        assert again.heads()[home] == -1  # nothing written
    finally:
        again.close()


def test_two_app_servers_share_keys_and_global_checkpoints(tmp_path):
    """Defect 10 on a partitioned ledger: with ``[keys] backend = "postgres"`` a forget on one app
    server's data directory holds on another's, and a global checkpoint signed on one is listed and
    verified on the other (keys and checkpoints live in partition 0's schema, not in a data dir)."""
    from ledger.partitions.global_checkpoints import GlobalCheckpoints

    dsn = endpoint("postgres")
    schema = unique_name("pshared")
    text = (
        f'[log]\nbackend = "postgres"\ndsn = "{dsn}"\nschema = "{schema}"\npartitions = 4\n'
        '[keys]\nbackend = "postgres"\n'
    )
    one, _ = init_data_dir(tmp_path / "one", text)
    two, _ = init_data_dir(tmp_path / "two", text)
    a, b = open_partitioned_memory(one), open_partitioned_memory(two)
    try:
        ids = [a.add(f"cube{i}", f"mona's note {i}", "writer", subject="mona").id for i in range(6)]
        assert len({a.home_of(m) for m in ids}) > 1
        assert b.get(ids[3]).text == "mona's note 3"  # the other server opens the same keys
        cp = GlobalCheckpoints.for_config(a.config, a.plog).create(a.plog)
        theirs = GlobalCheckpoints.for_config(b.config, b.plog)
        assert [c.seq for c in theirs.list()] == [cp.seq]
        assert theirs.verify(b.plog).ok and theirs.verify(b.plog).checked == 1
        assert not (one / "global-checkpoints.jsonl").exists()
        assert forget_partitioned(a, "mona", "admin").complete
        assert all(b.get(m).text is None for m in ids)  # the key is gone for every server
    finally:
        a.close()
        b.close()
        drop_postgres_partitions(dsn, schema)


def test_a_partition_consumer_stops_on_a_reset_partition(data):
    """Defect 4 for consumer groups: a partition's consumer (the loop a group member runs) over the
    configured partitioned log refuses a partition that was reset and written again past its view's
    checkpoint, instead of folding the new events onto the old view."""
    from consumers.partition_feed import PartitionFeed
    from consumers.runner import ProjectionConsumer
    from ledger.config import load_config
    from ledger.factory import open_partitioned_log
    from ledger.log_guard import LogReset
    from tests.dist_counting import CountingProjection

    pledger = open_partitioned_memory(data)
    home = pledger.partition_of("cube-c")
    for i in range(3):
        pledger.add("cube-c", f"note {i}", "writer")
    pledger.close()
    plog = open_partitioned_log(load_config(data))
    view = CountingProjection(data / "counter.sqlite")
    consumer = ProjectionConsumer(PartitionFeed(plog.partition(home), home), view, batch_size=100)
    while consumer.step():
        pass
    assert view.checkpoint() == plog.partition(home).head() == 3
    plog.close()
    drop_postgres_partitions(endpoint("postgres"), (data / "schema").read_text())
    writer = open_partitioned_log(load_config(data))
    writer.partition(home).inner.reset_guard = None  # a writer elsewhere, that never saw the old log
    for i in range(6):
        writer.append([added("cube-c", f"m{i}", "x")])
    writer.close()
    again = open_partitioned_log(load_config(data))
    consumer = ProjectionConsumer(PartitionFeed(again.partition(home), home), view, batch_size=100)
    try:
        with pytest.raises(LogReset):
            consumer.step()
        assert view.checkpoint() == 3  # nothing folded
    finally:
        again.close()
