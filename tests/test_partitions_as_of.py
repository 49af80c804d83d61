"""Reading a partitioned ledger at a partition vector: from a time (``vector_at``) or a checkpoint."""

from __future__ import annotations

import pytest

from ledger.errors import InvalidRequest
from ledger.partitions.as_of import check_vector, read_at, read_stream_at
from ledger.partitions.sqlite_partitions import open_sqlite_partitions
from tests.log_contract import added


@pytest.fixture
def plog(tmp_path):
    p = open_sqlite_partitions(tmp_path, 3, synchronous="OFF")
    yield p
    p.close()


def _stream_in(plog, k: int) -> str:
    return next(s for s in (f"c{i}" for i in range(1000)) if plog.partition_of(s) == k)


def test_reading_at_the_vector_of_a_time(plog):
    written = []
    for n, k in enumerate([0, 2, 2, 1, 0, 2]):
        written.append((k, plog.append([added(_stream_in(plog, k), f"m{n}", f"t{n}")])[0]))
    mid = written[3][1]
    vec = plog.vector_at(mid.ts_us)
    assert vec == (0, 0, 1)  # every event stamped up to the fourth one, in every partition
    got = list(read_at(plog, vec))
    assert [(pe.partition, pe.event.event_id) for pe in got] == [(k, e.event_id) for k, e in written[:4]]
    assert [pe.event.ts_us for pe in got] == sorted(pe.event.ts_us for pe in got)
    assert plog.vector_at(written[0][1].ts_us - 1) == (-1, -1, -1)
    assert [pe.event.event_id for pe in read_at(plog, plog.heads())] == [e.event_id for _, e in written]
    s2 = _stream_in(plog, 2)
    assert [e.payload["memory_id"] for e in read_stream_at(plog, s2, vec)] == ["m1", "m2"]
    assert [e.payload["memory_id"] for e in read_stream_at(plog, s2, plog.heads())] == ["m1", "m2", "m5"]
    assert list(read_stream_at(plog, _stream_in(plog, 1), (0, -1, 0))) == []


@pytest.mark.parametrize("bad", [(0, 0), (0, 0, 0, 0), (0, 5, 0), (-2, 0, 0), (0, "0", 0), (True, 0, 0)])
def test_vectors_outside_the_ledger_are_refused(plog, bad):
    for k in range(3):
        plog.append([added(_stream_in(plog, k), f"m{k}", "x")])
    with pytest.raises(InvalidRequest):
        check_vector(plog, bad)
    with pytest.raises(InvalidRequest):
        list(read_at(plog, bad))
