"""Stream consumers: restart (kill -9) and broker restart without loss or double application."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from consumers.runner import ProjectionConsumer, measure_lag
from ledger.api import Ledger
from ledger.backends.file_lease import FileLease
from ledger.backends.kafka_log import KafkaLog
from ledger.backends.postgres_lease import PostgresAdvisoryLease
from ledger.factory import open_ledger
from tests.dist_counting import CountingProjection
from tests.dist_env import endpoint, skip_or_fail, unique_name
from tests.log_contract import added

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parent.parent


def _config(data: Path, log_section: str, delay: float = 0.0) -> None:
    data.mkdir(parents=True, exist_ok=True)
    (data / "memledger.toml").write_text(
        f'{log_section}\n\n[consumers.views.counter]\nfactory = "tests.dist_counting:build"\ndelay = {delay}\n'
    )


def _kafka_data(tmp_path: Path, delay: float = 0.0) -> Path:
    servers = endpoint("kafka")
    data = tmp_path / "data"
    _config(
        data,
        f'[log]\nbackend = "kafka"\nbootstrap_servers = "{servers}"\ntopic = "{unique_name("cons")}"\npartitions = 2',
        delay,
    )
    return data


def _pg_data(tmp_path: Path, delay: float = 0.0) -> Path:
    dsn = endpoint("postgres")
    data = tmp_path / "data"
    _config(data, f'[log]\nbackend = "postgres"\ndsn = "{dsn}"\nschema = "{unique_name("cons")}"', delay)
    return data


def _append(ledger: Ledger, n: int, start: int = 0) -> None:
    for i in range(start, start + n, 10):
        ledger.append([added(f"cube{j % 3}", f"m{j}", f"text {j}") for j in range(i, min(i + 10, start + n))])


def _consume(data: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ledger",
            "--data",
            str(data),
            "consume",
            "--view",
            "counter",
            "--batch-size",
            "7",
            "--report-every",
            "0.2",
            "--poll-interval",
            "0.05",
            *extra,
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["kafka", "postgres"])
def test_consumer_killed_mid_run_resumes_exactly_once(tmp_path, backend):
    data = (_kafka_data if backend == "kafka" else _pg_data)(tmp_path, delay=0.02)
    ledger = open_ledger(data)
    _append(ledger, 200)
    proc = _consume(data)
    view = CountingProjection(data / "counter.sqlite")
    deadline = time.monotonic() + 60
    while view.checkpoint() < 40 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    killed_at = view.checkpoint()
    assert 40 <= killed_at < ledger.head(), f"consumer did not get going: {proc.stderr.read()[-2000:]}"
    _append(ledger, 50, start=200)
    proc = _consume(data, "--once", "--max-seconds", "90")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    assert view.checkpoint() == ledger.head() == 249
    counts = view.counts()
    assert sorted(counts) == list(range(ledger.head() + 1)) and set(counts.values()) == {1}
    assert '"lag_events": 0' in out.replace('"lag_events":0', '"lag_events": 0')
    view.close()
    ledger.log.close()


def test_lag_is_reported_and_reaches_zero(tmp_path):
    data = _pg_data(tmp_path)
    ledger = open_ledger(data)
    _append(ledger, 30)
    view = CountingProjection(data / "counter.sqlite")
    lag = measure_lag(ledger, view)
    assert lag.events == 30 and lag.checkpoint == -1 and lag.seconds >= 0
    reports = []
    consumer = ProjectionConsumer(ledger, view, batch_size=8, report=reports.append, report_every=0)
    final = consumer.run(until_caught_up=True, max_seconds=30)
    assert final.events == 0 and final.checkpoint == 29 and consumer.applied == 30
    assert [r.checkpoint for r in reports][-1] == 29 and len(reports) >= 4
    view.close()
    ledger.log.close()


def test_one_active_consumer_per_view(tmp_path):
    dsn = endpoint("postgres")
    a, b = PostgresAdvisoryLease(dsn, "s1", "v"), PostgresAdvisoryLease(dsn, "s1", "v")
    other_view = PostgresAdvisoryLease(dsn, "s1", "w")
    try:
        assert a.poll() and not b.poll() and other_view.poll()
        a.release()
        assert b.poll()
    finally:
        b.release()
        other_view.release()
    f1, f2 = FileLease(tmp_path, "v"), FileLease(tmp_path, "v")
    assert f1.poll() and not f2.poll()
    f1.release()
    assert f2.poll()
    f2.release()


# -- broker restart -------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def durable_broker(tmp_path):
    """A private Kafka-API broker whose data survives a restart (infra/kafka.sh, noida engine)."""
    endpoint("kafka")  # the shared broker being up means infra/ works here
    if shutil.which("bash") is None:
        pytest.skip("bash is needed to run infra/kafka.sh")
    port = _free_port()
    venvs = os.environ.get("MEMLEDGER_INFRA_VENVS") or str(ROOT / "infra" / "run" / "venvs")
    env = {
        **os.environ,
        "MEMLEDGER_INFRA_RUN": str(tmp_path / "infra"),
        "MEMLEDGER_INFRA_VENVS": venvs,
        "MEMLEDGER_KAFKA_ENGINE": "noida",
        "MEMLEDGER_KAFKA_PORT": str(port),
    }

    def ctl(action: str) -> None:
        r = subprocess.run(
            ["bash", str(ROOT / "infra" / "kafka.sh"), action], env=env, capture_output=True, text=True, timeout=600
        )
        if r.returncode != 0:
            if action == "start":
                skip_or_fail(f"durable Kafka-API broker did not start: {r.stderr[-500:]}")
            raise AssertionError(f"kafka.sh {action} failed: {r.stderr[-1000:]}")

    ctl("start")
    yield f"127.0.0.1:{port}", ctl
    ctl("stop")


def _retrying(fn, seconds: float = 60):
    deadline = time.monotonic() + seconds
    while True:
        try:
            return fn()
        except Exception:  # noqa: BLE001 - the broker is coming back
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@pytest.mark.slow
def test_broker_restart_loses_nothing_and_applies_once(tmp_path, durable_broker):
    servers, ctl = durable_broker
    topic = unique_name("restart")
    log = KafkaLog(servers, topic=topic, partitions=2)
    ledger = Ledger(log, record_reads=False)
    batches = [[added(f"c{j % 2}", f"m{i}-{j}", "x", event_id=f"e{i}-{j}") for j in range(5)] for i in range(20)]
    for b in batches[:10]:
        ledger.append(b)
    view = CountingProjection(tmp_path / "counter.sqlite")
    stop = threading.Event()
    consumer = ProjectionConsumer(ledger, view, batch_size=4, poll_interval=0.05, retry_backoff=0.2)
    t = threading.Thread(target=consumer.run, args=(stop,))
    t.start()
    try:
        ctl("restart")  # the broker goes away while the consumer is running
        for b in batches[10:]:
            _retrying(lambda b=b: ledger.append(b))  # a retry after a lost ack is idempotent
        deadline = time.monotonic() + 60
        while view.checkpoint() < 99 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        t.join(30)
    assert log.head() == 99
    counts = view.counts()
    assert sorted(counts) == list(range(100)) and set(counts.values()) == {1}
    fresh = KafkaLog(servers, topic=topic, partitions=2)
    try:
        assert [e.event_id for e in fresh.read()] == [e.event_id for b in batches for e in b]
        assert fresh.verify().ok
    finally:
        fresh.close()
        log.close()
        view.close()


def test_cli_consume_keeps_the_elasticsearch_view_current(tmp_path, capsys):
    from ledger.cli.app import main
    from projections.es_views import ElasticsearchView

    url = endpoint("elasticsearch")
    pg = endpoint("postgres")
    prefix = unique_name("cli").lower()
    data = tmp_path / "data"
    data.mkdir()
    (data / "memledger.toml").write_text(
        f'[log]\nbackend = "postgres"\ndsn = "{pg}"\nschema = "{unique_name("cli")}"\n\n'
        f'[views.elasticsearch]\nurl = "{url}"\nindex_prefix = "{prefix}"\nembedder = "none"\n'
    )
    ledger = open_ledger(data)
    w = ledger.add("notes", "The offsite is in Lisbon in May", "alice")
    assert main(["--data", str(data), "consume", "--view", "elasticsearch", "--once", "--max-seconds", "60"]) == 0
    assert main(["--data", str(data), "lag", "--view", "elasticsearch", "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert '"lag_events":0' in out[-1]
    view = ElasticsearchView(url, ledger, index_prefix=prefix)
    try:
        assert [m for m, _ in view.keyword_search("Lisbon", 3)] == [w.id]
        assert main(["--data", str(data), "consume", "--view", "nope", "--once"]) == 2
    finally:
        view.reset()
        view.es.options(ignore_status=404).indices.delete(index=[view.versions_index, view.meta_index])
        view.close()
        ledger.log.drop()
        ledger.log.close()


def test_cli_consume_runs_the_embedded_views_out_of_process(tmp_path, capsys):
    """`consume --view keyword|graph` keeps the view set's own views current from a shared log."""
    from ledger.cli.app import main
    from projections.view_set import ViewSet

    data = _pg_data(tmp_path)
    ledger = open_ledger(data)
    w = ledger.add("notes", "Caroline moved to Lisbon", "alice")
    for kind in ("keyword", "graph"):
        assert main(["--data", str(data), "consume", "--view", kind, "--once", "--max-seconds", "60"]) == 0
    views = ViewSet.open(ledger, kinds=["keyword", "graph"])
    try:
        assert views.status() == {"keyword": ledger.head(), "graph": ledger.head()}  # nothing left to catch up
        assert views.search("Lisbon", k=1, record_read=False)[0].memory_id == w.id
    finally:
        views.close()
        ledger.log.drop()
        ledger.log.close()


def test_rebuild_on_a_standby_waits_for_the_lease(tmp_path, capsys):
    """Issue 16 defect 5: `consume --rebuild` resets the view only once it holds the view's lease, so a
    standby started with --rebuild never wipes the view the active consumer serves."""
    from ledger.cli.app import main

    data = _pg_data(tmp_path)
    ledger = open_ledger(data)
    _append(ledger, 30)
    argv = ["--data", str(data), "consume", "--view", "counter", "--report-every", "60"]
    assert main([*argv, "--once", "--max-seconds", "60"]) == 0
    view = CountingProjection(data / "counter.sqlite")
    assert view.checkpoint() == 29
    active = ledger.log.lease("counter", data)  # the active consumer's lease
    try:
        assert active.poll()
        assert main([*argv, "--rebuild", "--max-seconds", "1.5"]) == 0
        assert view.checkpoint() == 29 and set(view.counts().values()) == {1}  # untouched
    finally:
        active.release()
    _append(ledger, 10, start=30)
    assert main([*argv, "--rebuild", "--once", "--max-seconds", "60"]) == 0
    counts = view.counts()
    assert view.checkpoint() == 39 and sorted(counts) == list(range(40)) and set(counts.values()) == {1}
    capsys.readouterr()
    view.close()
    ledger.log.drop()
    ledger.log.close()
