"""The Kafka log backend against the shared Log contract, plus what only a partitioned log shows."""

from __future__ import annotations

import threading

import pytest

from ledger.backends.kafka_log import KafkaLog, partition_of
from tests.dist_env import endpoint, unique_name
from tests.log_contract import LogContract, added

pytestmark = pytest.mark.integration


@pytest.fixture
def servers():
    return endpoint("kafka")


@pytest.fixture
def log(servers):
    lg = KafkaLog(servers, topic=unique_name("ml"), partitions=3)
    yield lg
    lg.close()
    lg.drop()


class TestKafkaLog(LogContract):
    pass


def test_cubes_map_to_partitions_and_positions_are_kafka_offsets(log):
    out = log.append([added(f"cube{i}", f"m{i}", "x") for i in range(12)])
    for e in out:
        p, off = log.position(e.offset)
        assert p == partition_of(e.stream, 3) and off >= 0
    assert len({log.position(e.offset)[0] for e in out}) > 1  # spread over partitions
    assert log.verify().ok


def test_a_read_sees_every_append_another_handle_had_acknowledged(log, servers):
    """A strict read waits for a sequencer fetch sent after it began: before, the high watermark
    kafka-python keeps (the last fetch answer's) could predate other writers' commits, and an idle
    handle read 0 of 60 acknowledged events (seen in CI under load)."""
    writer = KafkaLog(servers, topic=log.topic, partitions=3)
    try:
        for i in range(15):
            writer.append([added("c", f"m{i}", "x")])
            assert log.head() == i and [e.payload["memory_id"] for e in log.read(i)] == [f"m{i}"]
    finally:
        writer.close()


def test_independent_handles_agree_on_one_global_order(log, servers):
    """Writers in separate handles race on the sequencer; losers reseal; nobody forks the chain."""
    handles = [KafkaLog(servers, topic=log.topic, partitions=3) for _ in range(3)]
    errors: list[BaseException] = []

    def writer(h: KafkaLog, n: int) -> None:
        try:
            for i in range(10):
                h.append([added(f"c{n}", f"m{n}-{i}", "x"), added("shared", f"s{n}-{i}", "y")])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(h, n)) for n, h in enumerate(handles)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    try:
        assert not errors
        orders = [[e.event_id for e in h.read()] for h in [*handles, log]]
        assert len(orders[0]) == 60 and all(o == orders[0] for o in orders)
        assert [e.version for e in log.read_stream("shared")] == list(range(1, 31))
        assert log.verify().ok
    finally:
        for h in handles:
            h.close()


def test_expected_version_conflict_across_handles(log, servers):
    other = KafkaLog(servers, topic=log.topic, partitions=3)
    try:
        log.append([added("c", "m1", "x")], {"c": 0})
        from ledger.errors import ConcurrencyConflict

        with pytest.raises(ConcurrencyConflict):
            other.append([added("c", "m2", "y")], {"c": 0})
        assert other.head() == 0 and log.head() == 0
    finally:
        other.close()


def test_orphaned_data_records_stay_invisible(log):
    """A writer that dies between its data records and its commit leaves no trace in the ledger."""
    log.append([added("c", "m1", "x")])
    sealed_orphan = KafkaLog(log.bootstrap_servers, topic=log.topic, partitions=3)
    try:
        # produce data records for offset 1 but never commit them
        from ledger.chain import prepare, seal

        prepared = prepare(sealed_orphan.registry, [added("c", "ghost", "boo")])
        sealed = seal(prepared, 0, log.head_hash(), 0, {"c": 1})
        for e, pb in sealed:
            from ledger.backends.kafka_log import _encode_event

            sealed_orphan._producer.send(log.topic, _encode_event(e, pb), partition=partition_of("c", 3))
        sealed_orphan._producer.flush()
    finally:
        sealed_orphan.close()
    log.append([added("c", "m2", "y")])
    assert [e.payload["memory_id"] for e in log.read()] == ["m1", "m2"]
    assert log.verify().ok


def test_unreachable_broker_fails_clearly():
    from ledger.backends.kafka_log import KafkaLogError

    with pytest.raises(KafkaLogError, match="cannot reach Kafka at 127.0.0.1:1"):
        KafkaLog("127.0.0.1:1", topic="nowhere", connect_timeout=1.0)
