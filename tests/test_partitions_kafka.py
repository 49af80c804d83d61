"""The Kafka partitioned ledger on the broker from ``infra/``: a partition meets the Log contract,
each partition has its own topics and sequencer (no ledger-wide one), the count is recorded once
and another count is refused, and the memory API runs on it."""

from __future__ import annotations

import multiprocessing as mp

import pytest

from ledger.config import init_data_dir
from ledger.errors import InvalidRequest
from ledger.partitions.kafka_partitions import drop_kafka_partitions, open_kafka_partitions, partition_topic
from ledger.partitions.settings import PartitionCountMismatch
from tests.dist_env import endpoint, unique_name
from tests.log_contract import LogContract, added

pytestmark = pytest.mark.integration


@pytest.fixture
def servers():
    return endpoint("kafka")


@pytest.fixture
def topic(servers):
    name = unique_name("kpart")
    yield name
    drop_kafka_partitions(servers, name)


@pytest.fixture
def log(servers, topic):
    plog = open_kafka_partitions(servers, 3, topic)
    yield plog.partition(1)
    plog.close()


class TestKafkaPartition(LogContract):
    pass


def _stream_in(plog, k: int, n: int = 0) -> str:
    return [s for s in (f"c{i}" for i in range(10_000)) if plog.partition_of(s) == k][n]


def _topics(servers: str, prefix: str) -> set[str]:
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=servers)
    try:
        return {t for t in admin.list_topics() if t.startswith(prefix)}
    finally:
        admin.close()


def test_each_partition_has_its_own_topics_and_sequencer(servers, topic):
    plog = open_kafka_partitions(servers, 3, topic)
    for k in range(3):
        plog.append([added(_stream_in(plog, k), f"m{k}", "x")])
    plog.append([added("_system", "m-sys", "x")])
    assert plog.heads() == (1, 0, 0)
    want = {f"{topic}.partitions"} | {partition_topic(topic, k) for k in range(3)}
    want |= {f"{partition_topic(topic, k)}.seq" for k in range(3)}
    assert _topics(servers, topic) == want  # no ledger-wide sequencer topic
    with pytest.raises(InvalidRequest, match="within one partition"):
        plog.append([added(_stream_in(plog, 0), "m8", "x"), added(_stream_in(plog, 2), "m9", "y")])
    assert plog.heads() == (1, 0, 0)
    for k in range(3):
        assert plog.partition(k).verify().ok
    plog.close()


def test_another_count_is_refused_and_a_single_ledger_is_not_reopened_as_partitions(servers, topic):
    plog = open_kafka_partitions(servers, 3, topic)
    plog.append([added(_stream_in(plog, 2), "m1", "x")])
    plog.close()
    for other in (1, 2, 4):
        with pytest.raises(PartitionCountMismatch, match="holds a ledger of 3 partitions, but"):
            open_kafka_partitions(servers, other, topic)
    again = open_kafka_partitions(servers, 3, topic)
    assert again.heads() == (-1, -1, 0)
    again.close()
    single_topic = unique_name("ksingle")
    try:
        single = open_kafka_partitions(servers, 1, single_topic)
        single.append([added("c", "m1", "x")])
        single.close()
        with pytest.raises(PartitionCountMismatch, match="of 1 partition, but 4 were configured"):
            open_kafka_partitions(servers, 4, single_topic)
    finally:
        drop_kafka_partitions(servers, single_topic)


def _writer(servers: str, topic: str, stream: str, count: int) -> None:
    plog = open_kafka_partitions(servers, 3, topic)
    for i in range(count):
        plog.append([added(stream, f"{stream}-{i}", "x")])
    plog.close()


def test_writer_processes_on_different_partitions_keep_each_chain_whole(servers, topic):
    plog = open_kafka_partitions(servers, 3, topic)
    streams = [_stream_in(plog, k) for k in range(3)]
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(servers, topic, s, 25)) for s in streams]
    for p in procs:
        p.start()
    for p in procs:
        p.join(180)
        assert p.exitcode == 0
    assert plog.heads() == (24, 24, 24)
    for k, s in enumerate(streams):
        part = plog.partition(k)
        assert part.verify().ok and part.stream_version(s) == 25
    plog.close()


def test_the_memory_api_on_a_kafka_partitioned_ledger(servers, topic, tmp_path):
    from ledger.factory import open_log, open_partitioned_memory
    from ledger.partitions.partitioned_forget import forget_partitioned

    text = f'[log]\nbackend = "kafka"\nbootstrap_servers = "{servers}"\ntopic = "{topic}"\nledger_partitions = 3\n'
    path, _ = init_data_dir(tmp_path / "data", text)
    pledger = open_partitioned_memory(path)
    try:
        ids = {c: pledger.add(c, f"ivy's {c} lives in Lima", "ivy", subject="ivy").id for c in ("c1", "c2", "c3")}
        assert len({pledger.partition_of(c) for c in ids}) > 1
        assert pledger.get(ids["c2"]).text == "ivy's c2 lives in Lima"
        report = forget_partitioned(pledger, "ivy", "admin")
        assert report.complete and set(report.offsets) == {0, 1, 2}
        assert all(pledger.get(m).text is None for m in ids.values())
    finally:
        pledger.close()
    from ledger.config import load_config

    with pytest.raises(InvalidRequest, match="3 partitions"):
        open_log(load_config(path))
