"""The PostgreSQL log backend against the shared Log contract, plus what only a shared server shows."""

from __future__ import annotations

import multiprocessing as mp

import psycopg
import pytest

from ledger.backends.postgres_log import PostgresLog
from ledger.errors import BackendUnavailable, InvalidRequest
from tests.dist_env import endpoint, unique_name
from tests.log_contract import LogContract, added

pytestmark = pytest.mark.integration


@pytest.fixture
def dsn():
    return endpoint("postgres")


@pytest.fixture
def log(dsn):
    lg = PostgresLog(dsn, schema=unique_name("mlpg"))
    yield lg
    lg.drop()
    lg.close()


class TestPostgresLog(LogContract):
    pass


def _writer(dsn: str, schema: str, n: int, count: int) -> None:
    lg = PostgresLog(dsn, schema=schema)
    for i in range(count):
        lg.append([added(f"c{n % 2}", f"m{n}-{i}", "x"), added(f"c{n % 2}", f"m{n}-{i}b", "y")])
    lg.close()


def test_processes_share_one_chain_without_gaps(log, dsn):
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(dsn, log.schema, n, 15)) for n in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert all(p.exitcode == 0 for p in procs)
    events = list(log.read())
    assert [e.offset for e in events] == list(range(90))
    assert log.verify().ok
    # per-stream versions are dense too
    for stream in ("c0", "c1"):
        versions = [e.version for e in log.read_stream(stream)]
        assert versions == list(range(1, len(versions) + 1))


def test_second_handle_sees_the_same_ledger(log, dsn):
    log.append([added("c", "m1", "x")])
    other = PostgresLog(dsn, schema=log.schema)
    try:
        assert other.head() == 0 and other.head_hash() == log.head_hash()
        other.append([added("c", "m2", "y")], {"c": 1})
        assert [e.offset for e in log.read()] == [0, 1]
    finally:
        other.close()


def test_tampering_in_the_database_is_found(log, dsn):
    log.append([added("c", f"m{i}", f"t{i}") for i in range(5)])
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            f"UPDATE {log.schema}.events SET payload = convert_to(replace(convert_from(payload, 'UTF8'),"
            " 't3', 'T3'), 'UTF8') WHERE offset_ = 3"
        )
    result = log.verify()
    assert not result.ok and result.first_bad_offset == 3


def test_a_deleted_event_is_found(log, dsn):
    log.append([added("c", f"m{i}", f"t{i}") for i in range(5)])
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DELETE FROM {log.schema}.events WHERE offset_ = 4")
    assert not log.verify().ok


def test_bad_schema_name_and_unreachable_server_fail_clearly(dsn):
    with pytest.raises(InvalidRequest, match="schema name"):
        PostgresLog(dsn, schema="Robert'); DROP TABLE x;--")
    with pytest.raises(BackendUnavailable, match="unavailable") as info:
        PostgresLog("postgresql://nobody:secret@127.0.0.1:1/none", connect_timeout=2)
    assert "secret" not in str(info.value)


def test_large_reads_page_through(log):
    log.append([added("c", f"m{i}", "x") for i in range(4500)])
    assert sum(1 for _ in log.read()) == 4500
    assert [e.version for e in log.read_stream("c", start_version=4499)] == [4499, 4500]
    assert log.verify().checked == 4500


def test_hashes_match_the_events(log):
    out = log.append([added("c", f"m{i}", "x") for i in range(7)])
    assert list(log.hashes()) == [e.hash for e in out]
    assert list(log.hashes(2, 4)) == [e.hash for e in out[2:5]]
