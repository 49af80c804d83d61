"""A Kafka log handle keeps bounded local state and reopens from it (issue 16 defect 9).

Every handle used to hold the whole log in memory (2.0 KB RSS per event) and replay the whole
topic on open (20.6 s and 274 MB at 120k events). Now a handle keeps what it consumed in a SQLite
file (``state_path``, in the data directory), reopening reads only the tail since its last
position, and the file is a cache: missing or no longer matching the topics, it is rebuilt.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sized

import pytest

from ledger.backends import kafka_log, kafka_state
from ledger.backends.kafka_log import KafkaLog
from tests.dist_env import endpoint, unique_name
from tests.log_contract import added

pytestmark = pytest.mark.integration

EVENTS = 300


@pytest.fixture
def topic():
    name = unique_name("state")
    yield name
    h = KafkaLog(endpoint("kafka"), topic=name, partitions=2)
    h.close()
    h.drop()


def _fill(log: KafkaLog, n: int, prefix: str = "m") -> None:
    for start in range(0, n, 50):
        log.append([added(f"c{i % 5}", f"{prefix}{i}", "x") for i in range(start, min(n, start + 50))])


def _largest_container(*objs: object) -> int:
    sizes = [len(v) for o in objs for v in vars(o).values() if isinstance(v, Sized) and not isinstance(v, str | bytes)]
    return max(sizes)


def test_reopening_reads_only_the_tail_and_holds_no_per_event_objects(tmp_path, topic, monkeypatch):
    monkeypatch.setattr(kafka_state, "CACHE_EVENTS", 16)
    path = tmp_path / "kafka.state.sqlite"
    first = KafkaLog(endpoint("kafka"), topic=topic, partitions=2, state_path=path)
    _fill(first, EVENTS)
    assert first.stats()["opened_from"] == "topic"
    first.close()
    monkeypatch.setattr(kafka_log, "BUFFER_RECORDS", 20)  # a replay buffers at most 20 records per partition
    other = KafkaLog(endpoint("kafka"), topic=topic, partitions=2)  # no local state: replays everything
    assert other.stats()["records_fetched"] >= EVENTS
    other.append([added("c1", "tail1", "y"), added("c2", "tail2", "y")])  # the tail the reopened handle reads
    again = KafkaLog(endpoint("kafka"), topic=topic, partitions=2, state_path=path)
    try:
        stats = again.stats()
        assert stats["opened_from"] == "local state" and stats["head"] == EVENTS + 1
        # the head record it checks, two data records and one commit: not the 300 events before them
        assert stats["records_fetched"] <= 10, stats
        assert [e.event_id for e in again.read()] == [e.event_id for e in other.read()]
        assert again.stream_version("c1") == other.stream_version("c1") == EVENTS // 5 + 1
        assert [e.offset for e in again.read_refs("m7")] == [7]
        assert again.get_by_id(other.read(3, 3).__next__().event_id).offset == 3
        assert again.position(5) == other.position(5)
        # memory: a bounded cache and nothing per event, however long the log
        assert again.stats()["cached_events"] <= 16 and again.stats()["buffered_records"] == 0
        assert _largest_container(again, again._state) < 50
        assert _largest_container(other, other._state) < 50
        again.append([added("c3", "after", "z")], {"c3": EVENTS // 5})
        assert again.verify().ok
    finally:
        again.close()
        other.close()


def test_a_missing_or_mismatching_local_state_is_rebuilt_from_the_topics(tmp_path, topic):
    path = tmp_path / "kafka.state.sqlite"
    log = KafkaLog(endpoint("kafka"), topic=topic, partitions=2, state_path=path)
    _fill(log, 40)
    log.close()
    log.drop()  # the broker lost the topics; a different ledger appears under the same name
    fresh = KafkaLog(endpoint("kafka"), topic=topic, partitions=2)
    _fill(fresh, 60, prefix="n")
    reopened = KafkaLog(endpoint("kafka"), topic=topic, partitions=2, state_path=path)
    try:
        assert reopened.stats()["opened_from"] == "topic"  # head hash did not match: rebuilt
        assert [e.event_id for e in reopened.read()] == [e.event_id for e in fresh.read()]
    finally:
        reopened.close()
    for f in tmp_path.glob("kafka.state.sqlite*"):
        f.unlink()  # the cache may be deleted at any time
    rebuilt = KafkaLog(endpoint("kafka"), topic=topic, partitions=2, state_path=path)
    try:
        assert rebuilt.stats()["opened_from"] == "topic" and rebuilt.head() == 59
        assert rebuilt.read_stream("c0").__next__().payload["memory_id"] == "n0"
    finally:
        rebuilt.close()
        fresh.close()


def test_a_state_file_of_another_topic_or_unreadable_is_replaced(tmp_path, topic):
    path = tmp_path / "kafka.state.sqlite"
    log = KafkaLog(endpoint("kafka"), topic=topic, partitions=2, state_path=path)
    _fill(log, 20)
    log.close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = ? WHERE key = 'state'", (b"not json",))
    broken = KafkaLog(endpoint("kafka"), topic=topic, partitions=2, state_path=path)
    assert broken.stats()["opened_from"] == "topic" and broken.head() == 19
    broken.close()
    other_topic = unique_name("state")
    other = KafkaLog(endpoint("kafka"), topic=other_topic, partitions=2, state_path=path)
    try:
        assert other.stats()["opened_from"] == "topic" and other.head() == -1 and list(other.read()) == []
    finally:
        other.close()
        other.drop()


def test_two_handles_on_one_state_file_do_not_share_it(tmp_path, topic):
    path = tmp_path / "kafka.state.sqlite"
    a = KafkaLog(endpoint("kafka"), topic=topic, partitions=2, state_path=path)
    b = KafkaLog(endpoint("kafka"), topic=topic, partitions=2, state_path=path)
    try:
        assert a.stats()["state_path"] == str(path) and b.stats()["state_path"] != str(path)
        a.append([added("c", "m1", "x")])
        b.append([added("c", "m2", "x")])
        assert [e.payload["memory_id"] for e in a.read()] == ["m1", "m2"] == [e.payload["memory_id"] for e in b.read()]
    finally:
        temp = str(b.stats()["state_path"])
        a.close()
        b.close()
    assert not os.path.exists(temp)  # the private temporary state is deleted on close
