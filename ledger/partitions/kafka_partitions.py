"""Kafka partitioned ledger: a topic pair per partition, and no ledger-wide sequencer.

A Kafka ledger of one partition is today's ``KafkaLog``: a data topic partitioned by cube and one
single-partition sequencer topic that orders every commit of the ledger, so every writer races
every other writer for it. A ledger of N partitions gives partition k a ``KafkaLog`` of its own on
topics ``<topic>.p<k>`` and ``<topic>.p<k>.seq``: its own gap-free offsets, hash chain, sequencer
and local state (``kafka-<topic>.p<k>.state.sqlite`` in the data directory). Writers to cubes of
different partitions never race each other; within a partition the sequencer's acceptance rule
(``ledger.backends.kafka_acceptance``) is unchanged.

The count is recorded once in topic ``<topic>.partitions`` (its first record wins, so two
processes creating the ledger at once agree). Opening with another count, N>1 over a single
ledger that holds events, or N=1 over a partitioned one is refused (``PartitionCountMismatch``).

Configuration: ``[log] ledger_partitions = N`` (on Kafka, ``[log] partitions`` has always been the
data topic's partition count; it still is, for each partition's data topic).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from ledger.backends.kafka_log import KafkaLog, KafkaLogError, state_file
from ledger.errors import InvalidRequest, LedgerError
from ledger.partitions.composite import CompositePartitionedLog
from ledger.partitions.settings import PartitionCountMismatch, check_count
from ledger.schema_registry import SchemaRegistry

READ_WAIT_S = 10.0


def partition_topic(topic: str, index: int) -> str:
    """The data topic of partition ``index`` of a Kafka ledger of several partitions."""
    return f"{topic}.p{index}"


def layout_topic(topic: str) -> str:
    """The topic that records a partitioned Kafka ledger's partition count."""
    return f"{topic}.partitions"


def _first_record(servers: str, name: str, opts: Mapping[str, Any]) -> bytes | None:
    """The value of the first record of topic ``name`` (partition 0), or None when it has none."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False, **opts)
    try:
        tp = TopicPartition(name, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        end = consumer.end_offsets([tp]).get(tp, 0)
        if not end:
            return None
        deadline = time.monotonic() + READ_WAIT_S
        while time.monotonic() < deadline:
            for r in consumer.poll(timeout_ms=200).get(tp, []):
                return bytes(r.value)
        raise KafkaLogError(f"timed out reading the first record of {name} from {servers}")
    finally:
        consumer.close()


def _seq_has_events(servers: str, topic: str, opts: Mapping[str, Any]) -> bool:
    """Whether the single-ledger sequencer topic ``<topic>.seq`` holds any commit record."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False, **opts)
    try:
        tp = TopicPartition(f"{topic}.seq", 0)
        return bool(consumer.end_offsets([tp]).get(tp, 0))
    finally:
        consumer.close()


def _parse_count(value: bytes, where: str) -> int:
    try:
        count = orjson.loads(value)["partitions"]
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise InvalidRequest(f"{where} does not record a partition count: {exc}") from None
    return check_count(count)


def check_layout(
    servers: str,
    topic: str,
    count: int,
    replication_factor: int = 1,
    opts: Mapping[str, Any] | None = None,
    connect_timeout: float = 10.0,
) -> None:
    """Refuse (``PartitionCountMismatch``) a stored ledger of another count; record the count of a new
    ledger of several partitions."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    options = dict(opts or {})
    where = f"Kafka topic {topic!r}"
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=servers, **{"bootstrap_timeout_ms": int(connect_timeout * 1000), **options}
        )
        try:
            existing = set(admin.list_topics())
            meta = layout_topic(topic)
            if count == 1:
                if meta in existing and (value := _first_record(servers, meta, options)) is not None:
                    raise PartitionCountMismatch(where, _parse_count(value, meta), 1)
                return
            if meta not in existing or _first_record(servers, meta, options) is None:
                if f"{topic}.seq" in existing and _seq_has_events(servers, topic, options):
                    raise PartitionCountMismatch(where, 1, count)
                if meta not in existing:
                    try:
                        admin.create_topics([NewTopic(meta, 1, replication_factor)])
                    except TopicAlreadyExistsError:
                        pass  # another process created it first
                _record_count(servers, meta, count, options)
        finally:
            admin.close()
        value = _first_record(servers, meta, options)
    except LedgerError:
        raise
    except Exception as exc:  # kafka-python raises many unrelated types for "no broker"
        raise KafkaLogError(f"cannot reach Kafka at {servers}: {exc!r}") from None
    stored = _parse_count(value, meta) if value is not None else None
    if stored != count:
        raise PartitionCountMismatch(where, stored or 1, count)


def _record_count(servers: str, meta: str, count: int, opts: Mapping[str, Any]) -> None:
    """Append the count record (only the first record of the topic counts)."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=servers, acks="all", **opts)
    try:
        producer.send(meta, orjson.dumps({"partitions": count}), partition=0).get(timeout=READ_WAIT_S)
        producer.flush()
    finally:
        producer.close(timeout=1)


def open_kafka_partitions(
    servers: str,
    count: int,
    topic: str = "memledger",
    data_dir: str | Path | None = None,
    topic_partitions: int = 1,
    replication_factor: int = 1,
    connect_timeout: float = 10.0,
    registry: SchemaRegistry | None = None,
) -> CompositePartitionedLog:
    """The Kafka ledger ``topic`` with ``count`` partitions (created when absent; see the module
    docstring). Each partition's handle keeps its local state in ``data_dir`` when one is given."""
    count = check_count(count)
    check_layout(servers, topic, count, replication_factor, connect_timeout=connect_timeout)
    names = [topic] if count == 1 else [partition_topic(topic, k) for k in range(count)]
    logs: list[KafkaLog] = []
    try:
        for name in names:
            logs.append(
                KafkaLog(
                    servers,
                    topic=name,
                    partitions=topic_partitions,
                    replication_factor=replication_factor,
                    registry=registry,
                    connect_timeout=connect_timeout,
                    state_path=state_file(data_dir, name) if data_dir is not None else None,
                )
            )
    except BaseException:
        for log in logs:
            log.close()
        raise
    return CompositePartitionedLog(logs)


def drop_kafka_partitions(servers: str, topic: str) -> None:
    """Delete a Kafka ledger's topics and every partition's (tests and tear-down only)."""
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=servers)
    try:
        prefix = (f"{topic}.p", f"{topic}.seq", f"{topic}.partitions")
        names = [t for t in admin.list_topics() if t == topic or t.startswith(prefix)]
        if names:
            admin.delete_topics(names)
    finally:
        admin.close()
