"""The embedded partitioned ledger: every partition meets the Log contract; layout, routing and
refusals of the SQLite files (N=1 is today's ``log.sqlite``)."""

from __future__ import annotations

import sqlite3

import pytest

from ledger.backends.sqlite_log import SqliteLog
from ledger.errors import InvalidRequest
from ledger.partitions.base import PartitionedLog
from ledger.partitions.settings import PartitionCountMismatch
from ledger.partitions.sqlite_partitions import open_sqlite_partitions, partition_path
from tests.log_contract import LogContract, added

LAYOUTS = [(1, 0), (4, 0), (4, 1), (4, 2), (4, 3)]


@pytest.fixture(params=LAYOUTS, ids=[f"n{n}-p{k}" for n, k in LAYOUTS])
def log(request, tmp_path):
    count, index = request.param
    plog = open_sqlite_partitions(tmp_path, count, synchronous="NORMAL")
    yield plog.partition(index)
    plog.close()


class TestSqlitePartition(LogContract):
    pass


def _stream_in(plog, k: int, n: int = 0) -> str:
    """The ``n``-th stream name ``c<i>`` that routes to partition ``k``."""
    names = (f"c{i}" for i in range(10_000))
    return [s for s in names if plog.partition_of(s) == k][n]


def test_one_partition_is_todays_log_file(tmp_path):
    plog = open_sqlite_partitions(tmp_path, 1)
    assert isinstance(plog, PartitionedLog) and plog.count == 1
    plog.append([added("c", "m1", "x")])
    plog.close()
    assert sorted(p.name for p in tmp_path.glob("*.sqlite")) == ["log.sqlite"]
    single = SqliteLog(tmp_path / "log.sqlite")
    assert single.head() == 0 and single.verify().ok
    tables = {r[0] for r in sqlite3.connect(tmp_path / "log.sqlite").execute("SELECT name FROM sqlite_master")}
    assert "ledger_partition" not in tables
    single.close()


def test_batches_go_to_their_streams_partition(tmp_path):
    plog = open_sqlite_partitions(tmp_path, 4)
    for k in range(4):
        s = _stream_in(plog, k)
        out = plog.append([added(s, f"m{k}", "x"), added(s, f"m{k}b", "y")])
        assert [e.offset for e in out] == [0, 1]
        assert plog.partition(k).head() == 1
    plog.append([added("_system", "m-sys", "x")])
    assert plog.heads() == (2, 1, 1, 1)
    assert all(plog.partition(k).verify().ok for k in range(4))
    assert sorted(p.name for p in tmp_path.glob("log*.sqlite")) == [f"log.p{k}.sqlite" for k in range(4)]
    plog.close()


def test_a_batch_spanning_two_partitions_writes_nothing(tmp_path):
    plog = open_sqlite_partitions(tmp_path, 4)
    a, b = _stream_in(plog, 1), _stream_in(plog, 3)
    with pytest.raises(InvalidRequest, match="within one partition") as err:
        plog.append([added(a, "m1", "x"), added(b, "m2", "y")])
    assert f"{b!r} in partition 3" in str(err.value)
    with pytest.raises(InvalidRequest, match="within one partition"):
        plog.append([added(a, "m1", "x")], {b: 0})  # an expected version elsewhere spans too
    assert plog.heads() == (-1, -1, -1, -1)
    plog.close()


def test_reopening_with_another_count_is_refused(tmp_path):
    plog = open_sqlite_partitions(tmp_path, 4)
    plog.append([added(_stream_in(plog, 2), "m1", "x")])
    plog.close()
    for other in (1, 2, 8):
        with pytest.raises(PartitionCountMismatch, match="holds a ledger of 4 partitions, but"):
            open_sqlite_partitions(tmp_path, other)
    assert not partition_path(tmp_path, 4).exists()  # the refusal created nothing
    again = open_sqlite_partitions(tmp_path, 4)
    assert again.heads() == (-1, -1, 0, -1)
    again.close()


def test_a_single_partition_ledger_is_not_reopened_as_several(tmp_path):
    plog = open_sqlite_partitions(tmp_path, 1)
    plog.append([added("c", "m1", "x")])
    plog.close()
    with pytest.raises(PartitionCountMismatch, match="of 1 partition, but 4 were configured"):
        open_sqlite_partitions(tmp_path, 4)
    assert not partition_path(tmp_path, 0).exists()


def test_an_empty_log_file_left_by_init_does_not_block_partitions(tmp_path):
    SqliteLog(tmp_path / "log.sqlite").close()
    plog = open_sqlite_partitions(tmp_path, 2)
    assert plog.count == 2
    plog.close()


@pytest.mark.parametrize("bad", [0, -1, 257, 2.0, "4", True])
def test_bad_partition_counts_are_refused(tmp_path, bad):
    with pytest.raises(InvalidRequest, match="partitions must be a whole number from 1 to 256"):
        open_sqlite_partitions(tmp_path, bad)
    assert list(tmp_path.iterdir()) == []


def test_partition_indexes_out_of_range_are_refused(tmp_path):
    plog = open_sqlite_partitions(tmp_path, 2)
    for bad in (-1, 2, True):
        with pytest.raises(InvalidRequest, match="does not exist"):
            plog.partition(bad)
    plog.close()
