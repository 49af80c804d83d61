"""The PostgreSQL partitioned ledger on the real server: every partition meets the Log contract,
N=1 is today's single schema, N>1 a schema per partition with its own head row, a changed count
is refused, and writer processes on different partitions share nothing but the database."""

from __future__ import annotations

import multiprocessing as mp

import psycopg
import pytest

from ledger.backends.postgres_log import PostgresLog
from ledger.errors import InvalidRequest
from ledger.partitions.postgres_partitions import drop_postgres_partitions, open_postgres_partitions
from ledger.partitions.settings import PartitionCountMismatch
from tests.dist_env import endpoint, unique_name
from tests.log_contract import LogContract, added

pytestmark = pytest.mark.integration
LAYOUTS = [(1, 0), (4, 0), (4, 1), (4, 2), (4, 3)]


@pytest.fixture
def dsn():
    return endpoint("postgres")


@pytest.fixture
def schema(dsn):
    name = unique_name("part_pg")
    yield name
    drop_postgres_partitions(dsn, name)


@pytest.fixture(params=LAYOUTS, ids=[f"n{n}-p{k}" for n, k in LAYOUTS])
def log(request, dsn, schema):
    count, index = request.param
    plog = open_postgres_partitions(dsn, count, schema)
    yield plog.partition(index)
    plog.close()


class TestPostgresPartition(LogContract):
    pass


def _schemas(dsn: str, schema: str) -> set[str]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE %s", (f"{schema}%",)).fetchall()
    return {r[0] for r in rows}


def _tables(dsn: str, schema: str) -> set[str]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,)).fetchall()
    return {r[0] for r in rows}


def _stream_in(plog, k: int, n: int = 0) -> str:
    return [s for s in (f"c{i}" for i in range(10_000)) if plog.partition_of(s) == k][n]


def test_one_partition_is_todays_single_schema(dsn, schema):
    plog = open_postgres_partitions(dsn, 1, schema)
    plog.append([added("c", "m1", "x")])
    plog.close()
    assert _schemas(dsn, schema) == {schema}
    assert _tables(dsn, schema) == {"events", "refs", "head"}
    single = PostgresLog(dsn, schema)
    assert single.head() == 0 and single.verify().ok
    single.close()


def test_partitions_are_schemas_with_their_own_head_rows(dsn, schema):
    plog = open_postgres_partitions(dsn, 4, schema)
    for k in range(4):
        plog.append([added(_stream_in(plog, k), f"m{k}", "x")])
    plog.append([added("_system", "m-sys", "x")])
    assert plog.heads() == (1, 0, 0, 0)
    assert _schemas(dsn, schema) == {schema} | {f"{schema}_p{k}" for k in range(4)}
    assert _tables(dsn, schema) == {"partitions"}
    for k in range(4):
        assert {"events", "refs", "head"} <= _tables(dsn, f"{schema}_p{k}")
        assert plog.partition(k).verify().ok
    plog.close()


def test_a_batch_spanning_two_partitions_writes_nothing(dsn, schema):
    plog = open_postgres_partitions(dsn, 4, schema)
    a, b = _stream_in(plog, 0), _stream_in(plog, 2)
    with pytest.raises(InvalidRequest, match="within one partition"):
        plog.append([added(a, "m1", "x"), added(b, "m2", "y")])
    assert plog.heads() == (-1, -1, -1, -1)
    plog.close()


def test_another_count_is_refused_and_creates_nothing(dsn, schema):
    plog = open_postgres_partitions(dsn, 4, schema)
    plog.append([added(_stream_in(plog, 3), "m1", "x")])
    plog.close()
    before = _schemas(dsn, schema)
    for other in (1, 2, 8):
        with pytest.raises(PartitionCountMismatch, match="holds a ledger of 4 partitions, but"):
            open_postgres_partitions(dsn, other, schema)
    assert _schemas(dsn, schema) == before and _tables(dsn, schema) == {"partitions"}
    again = open_postgres_partitions(dsn, 4, schema)
    assert again.heads() == (-1, -1, -1, 0)
    again.close()


def test_a_single_schema_ledger_is_not_reopened_as_partitions(dsn, schema):
    single = open_postgres_partitions(dsn, 1, schema)
    single.append([added("c", "m1", "x")])
    single.close()
    with pytest.raises(PartitionCountMismatch, match="of 1 partition, but 4 were configured"):
        open_postgres_partitions(dsn, 4, schema)
    assert _schemas(dsn, schema) == {schema}


def _partition_writer(dsn: str, schema: str, stream: str, count: int) -> None:
    plog = open_postgres_partitions(dsn, 4, schema)
    for i in range(count):
        plog.append([added(stream, f"{stream}-{i}", "x"), added(stream, f"{stream}-{i}b", "y")])
    plog.close()


def test_writer_processes_on_every_partition_keep_each_chain_whole(dsn, schema):
    plog = open_postgres_partitions(dsn, 4, schema)
    streams = [_stream_in(plog, k, n) for k in range(4) for n in range(2)]  # two writers per partition
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_partition_writer, args=(dsn, schema, s, 10)) for s in streams]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert all(p.exitcode == 0 for p in procs)
    assert plog.heads() == (39, 39, 39, 39)
    for k in range(4):
        part = plog.partition(k)
        assert part.verify().ok
        assert [e.offset for e in part.read()] == list(range(40))
        ts = [e.ts_us for e in part.read()]
        assert all(a <= b for a, b in zip(ts, ts[1:], strict=False))
    plog.close()


def test_global_checkpoint_finds_an_edit_in_any_partition_schema(dsn, schema, tmp_path):
    from ledger.governance.checkpoints import CheckpointSigner
    from ledger.partitions.global_checkpoint import verify_global_inclusion
    from ledger.partitions.global_checkpoint_store import GlobalCheckpointStore
    from ledger.partitions.global_checkpoints import GlobalCheckpoints

    plog = open_postgres_partitions(dsn, 4, schema)
    for k in range(4):
        s = _stream_in(plog, k)
        plog.append([added(s, f"m{k}-{i}", f"text {k} {i}") for i in range(3)])
    cps = GlobalCheckpoints(CheckpointSigner(tmp_path / "k.key"), GlobalCheckpointStore(tmp_path / "g.jsonl"))
    cp = cps.create(plog)
    assert cps.verify(plog).ok
    e = next(plog.partition(2).read(1, 1))
    assert verify_global_inclusion(cps.inclusion_proof(plog, cp, 2, 1), e.hash, cp, cps.signer.public_key())
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            f"UPDATE {schema}_p1.events SET payload = convert_to(replace(convert_from(payload, 'UTF8'),"
            " 'text 1 2', 'TEXT 1 2'), 'UTF8') WHERE offset_ = 2"
        )
    report = cps.verify(plog)
    assert not report.ok and report.partition == 1 and "offset 2" in report.problem
    plog.close()


def test_a_subscriber_of_a_partition_wakes_on_its_notifications(dsn, schema):
    import threading

    plog = open_postgres_partitions(dsn, 2, schema)
    part = plog.partition(1)
    stream = _stream_in(plog, 1)
    stop, seen = threading.Event(), []

    def consume():  # polls once a minute: events arriving one by one sooner came through NOTIFY
        for ev in part.subscribe(0, poll_interval=60, stop=stop):
            seen.append(ev.offset)
            if len(seen) == 5:
                stop.set()

    t = threading.Thread(target=consume, daemon=True)
    t.start()
    for i in range(50):  # one event at a time, until five have reached the subscriber
        plog.append([added(stream, f"m{i}", "x")])
        if stop.wait(0.3):
            break
    assert seen == [0, 1, 2, 3, 4]
    stop.set()
    plog.close()


def test_a_writer_holding_one_partitions_head_does_not_stop_another_partition(dsn, schema):
    import threading

    plog = open_postgres_partitions(dsn, 2, schema)
    a, b = _stream_in(plog, 0), _stream_in(plog, 1)
    done: list[int] = []
    with psycopg.connect(dsn) as holder:  # a transaction in flight on partition 0 holds its head row
        holder.execute(f"SELECT head FROM {schema}_p0.head WHERE id = 1 FOR UPDATE")
        t0 = threading.Thread(target=lambda: done.append(plog.append([added(a, "m0", "x")])[0].offset), daemon=True)
        t0.start()
        out = plog.append([added(b, "m1", "y")])  # partition 1 goes ahead while partition 0 waits
        assert out[0].offset == 0 and plog.partition(1).head() == 0
        assert done == [] and plog.partition(0).head() == -1
        holder.rollback()
    t0.join(60)
    assert done == [0] and plog.heads() == (0, 0)
    plog.close()


def test_open_partitioned_log_from_the_configuration(dsn, schema, tmp_path, monkeypatch):
    from ledger.config import load_config
    from ledger.factory import open_partitioned_log

    monkeypatch.delenv("MEMLEDGER_PG_DSN", raising=False)
    monkeypatch.delenv("MEMLEDGER_LOG_BACKEND", raising=False)

    def config(n: int):
        (tmp_path / "memledger.toml").write_text(
            f'[log]\nbackend = "postgres"\ndsn = "{dsn}"\nschema = "{schema}"\npartitions = {n}\n'
        )
        return load_config(tmp_path)

    plog = open_partitioned_log(config(4))
    assert plog.count == 4 and plog.heads() == (-1, -1, -1, -1)
    plog.close()
    with pytest.raises(PartitionCountMismatch):
        open_partitioned_log(config(1))
