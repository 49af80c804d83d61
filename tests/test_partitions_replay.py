"""Replay property, on SQLite files and PostgreSQL schemas: a partitioned ledger holds, stream by
stream, exactly what one single log holds after the same appends (spanning batches refused,
conflicts alike), and each partition replays on its own: gap-free offsets, dense stream versions,
an intact chain, the same events from a new handle."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.backends.sqlite_log import SqliteLog
from ledger.errors import ConcurrencyConflict, InvalidRequest, LedgerError
from ledger.partitions.postgres_partitions import drop_postgres_partitions, open_postgres_partitions
from ledger.partitions.sqlite_partitions import open_sqlite_partitions
from tests.dist_env import endpoint, unique_name
from tests.log_contract import added

STREAMS = ["_system", "a", "b", "c", "d", "e", "f", "g"]
batch = st.tuples(
    st.lists(st.sampled_from(STREAMS), min_size=1, max_size=4),
    st.one_of(st.none(), st.tuples(st.sampled_from(STREAMS), st.integers(0, 3))),
)


def _append(log, streams: list[str], expect: tuple[str, int] | None, n: int) -> str:
    events = [added(s, f"m{n}-{i}", f"text {n} {i}") for i, s in enumerate(streams)]
    try:
        log.append(events, dict([expect]) if expect else None)
    except ConcurrencyConflict:
        return "conflict"
    except InvalidRequest as exc:
        return f"refused: {exc}"
    except LedgerError as exc:  # pragma: no cover - reported by the assertion
        return f"error: {exc}"
    return "ok"


def _fold(events) -> dict[str, list[tuple[int, str]]]:
    out: dict[str, list[tuple[int, str]]] = {}
    for e in events:
        out.setdefault(e.stream, []).append((e.version, e.payload["memory_id"]))
    return out


def _replay_matches_one_log(open_parts, single, batches, count) -> None:
    plog = open_parts(count)
    for n, (streams, expect) in enumerate(batches):
        homes = {plog.partition_of(s) for s in streams} | ({plog.partition_of(expect[0])} if expect else set())
        got = _append(plog, streams, expect, n)
        if len(homes) > 1:
            assert got.startswith("refused: a batch must stay within one partition"), got
            continue
        assert got == _append(single, streams, expect, n)
    merged: dict[str, list[tuple[int, str]]] = {}
    for k in range(count):
        part = plog.partition(k)
        events = list(part.read())
        assert [e.offset for e in events] == list(range(len(events)))
        assert part.verify().ok
        folded = _fold(events)
        assert all(plog.partition_of(s) == k for s in folded)
        for versions in folded.values():
            assert [v for v, _ in versions] == list(range(1, len(versions) + 1))
        merged.update(folded)
    assert merged == _fold(single.read())
    heads = plog.heads()
    hashes = [list(plog.partition(k).hashes()) for k in range(count)]
    plog.close()
    again = open_parts(count)
    assert again.heads() == heads
    assert [list(again.partition(k).hashes()) for k in range(count)] == hashes
    again.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=st.lists(batch, max_size=25), count=st.sampled_from([1, 3, 4]))
def test_sqlite_partitions_replay_to_what_one_log_holds(batches, count):
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        single = SqliteLog(root / "single.sqlite", synchronous="OFF")
        try:
            _replay_matches_one_log(
                lambda n: open_sqlite_partitions(root / "parts", n, synchronous="OFF"), single, batches, count
            )
        finally:
            single.close()


@pytest.mark.integration
@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(batches=st.lists(batch, max_size=15), count=st.sampled_from([1, 4]))
def test_postgres_partitions_replay_to_what_one_log_holds(pg_dsn, batches, count):
    schema = unique_name("part_replay")
    with tempfile.TemporaryDirectory() as d:
        single = SqliteLog(Path(d) / "single.sqlite", synchronous="OFF")
        try:
            _replay_matches_one_log(lambda n: open_postgres_partitions(pg_dsn, n, schema), single, batches, count)
        finally:
            single.close()
            drop_postgres_partitions(pg_dsn, schema)


@pytest.fixture
def pg_dsn():
    return endpoint("postgres")
