"""kafka-python vs confluent-kafka on the operations the Kafka log uses: produce + flush round
trips (an append waits for its acks) and bulk consumption (catch-up reads).

Run: MEMLEDGER_TEST_KAFKA=127.0.0.1:19092 python -m bench.kafka_client_probe
(confluent-kafka is not a project dependency; install it in a scratch venv to compare.)
"""

from __future__ import annotations

import os
import time

VALUE = b"x" * 400


def _topic(servers: str) -> str:
    from kafka.admin import KafkaAdminClient, NewTopic

    name = "probe_" + os.urandom(3).hex()
    admin = KafkaAdminClient(bootstrap_servers=servers)
    admin.create_topics([NewTopic(name, 1, 1)])
    admin.close()
    return name


def kafka_python_produce(servers: str, topic: str) -> tuple[float, float]:
    from kafka import KafkaProducer

    p = KafkaProducer(bootstrap_servers=servers, acks="all", enable_idempotence=True, linger_ms=0)
    p.send(topic, VALUE).get(10)
    t0 = time.perf_counter()
    for _ in range(300):
        p.send(topic, VALUE)
        p.flush()
    single = 300 / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for _ in range(100):
        for _ in range(50):
            p.send(topic, VALUE)
        p.flush()
    batched = 5000 / (time.perf_counter() - t0)
    p.close()
    return single, batched


def confluent_produce(servers: str, topic: str) -> tuple[float, float]:
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": servers, "acks": "all", "enable.idempotence": True, "linger.ms": 0})
    p.produce(topic, VALUE)
    p.flush(10)
    t0 = time.perf_counter()
    for _ in range(300):
        p.produce(topic, VALUE)
        p.flush(10)
    single = 300 / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for _ in range(100):
        for _ in range(50):
            p.produce(topic, VALUE)
        p.flush(10)
    return single, 5000 / (time.perf_counter() - t0)


def kafka_python_consume(servers: str, topic: str, n: int) -> float:
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False, fetch_max_wait_ms=5, max_poll_records=5000)
    c.assign([TopicPartition(topic, 0)])
    c.seek_to_beginning()
    got, t0 = 0, time.perf_counter()
    while got < n:
        got += sum(len(v) for v in c.poll(100).values())
    c.close()
    return got / (time.perf_counter() - t0)


def confluent_consume(servers: str, topic: str, n: int) -> float:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer(
        {
            "bootstrap.servers": servers,
            "group.id": "probe" + os.urandom(3).hex(),
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 5,
        }
    )
    c.assign([TopicPartition(topic, 0, 0)])
    got, t0 = 0, time.perf_counter()
    while got < n:
        got += len([m for m in c.consume(5000, 0.1) if not m.error()])
    c.close()
    return got / (time.perf_counter() - t0)


def main() -> None:
    servers = os.environ.get("MEMLEDGER_TEST_KAFKA", "127.0.0.1:19092")
    topic = _topic(servers)
    try:
        import confluent_kafka  # noqa: F401

        have_confluent = True
    except ImportError:
        have_confluent = False
    print(f"{'client':<16} {'produce+flush b=1 msg/s':>24} {'b=50 msg/s':>11} {'consume msg/s':>14}")
    rows = [("kafka-python", kafka_python_produce)]
    if have_confluent:
        rows.append(("confluent-kafka", confluent_produce))
    results = {name: fn(servers, topic) for name, fn in rows}
    n = len(results) * 5301
    consume = {"kafka-python": kafka_python_consume(servers, topic, n)}
    if have_confluent:
        consume["confluent-kafka"] = confluent_consume(servers, topic, n)
    for name, (single, batched) in results.items():
        print(f"{name:<16} {single:>24,.0f} {batched:>11,.0f} {consume[name]:>14,.0f}")
    if not have_confluent:
        print("confluent-kafka   not installed: pip install confluent-kafka (in a scratch venv) to compare")


if __name__ == "__main__":
    main()
