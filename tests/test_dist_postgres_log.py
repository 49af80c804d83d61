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


def _index_entries_read_by_one_append(log: PostgresLog, streams: list[str]) -> int:
    """Index entries of ``(stream, version)`` the real append path reads, counted by PostgreSQL itself
    (``pg_stat_get_xact_tuples_returned`` of the index inside an enclosing transaction, rolled back afterwards)."""
    from ledger.chain import prepare

    conn = psycopg.connect(log.dsn, autocommit=True)
    try:
        with conn.transaction(force_rollback=True):
            prepared = prepare(log.registry, [added(s, f"probe-{s}", "x") for s in streams])
            log._append(conn, prepared, {s: log.stream_version(s) for s in streams})
            row = conn.execute(
                "SELECT pg_stat_get_xact_tuples_returned(%s::regclass)", (f"{log.schema}.events_stream_version_key",)
            ).fetchone()
    finally:
        conn.close()
    return int(row[0])


def test_append_looks_up_stream_versions_without_reading_the_whole_cube(log):
    """Issue 16 defect 1: the version lookup under the head lock is one index probe per stream, so
    its cost does not grow with the cubes (it used to read every index entry of each cube)."""
    for _ in range(3):
        log.append([added(f"c{i % 2}", f"m{_}-{i}", "x") for i in range(1000)])
    small = _index_entries_read_by_one_append(log, ["c0", "c1"])
    log.append([added(f"c{i % 2}", f"n{i}", "x") for i in range(1000)])
    large = _index_entries_read_by_one_append(log, ["c0", "c1"])
    print(f"(stream, version) index entries read by one append: {small} at 3,000 events, {large} at 4,000")
    assert large <= 4 and large == small
    assert log.head() == 3999 and log.verify().ok  # the probes were rolled back
