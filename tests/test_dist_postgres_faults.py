"""PostgreSQL going away and coming back (issue 16 defects 2 and 8), on a private server of the test's own.

Appends in flight during a shutdown and appends to a stopped server fail as one ``BackendUnavailable``;
writers and consumers resume after the restart with nothing acknowledged lost; ``consume`` exits 0 on
SIGTERM.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ledger.backends.postgres_log import PostgresLog
from ledger.errors import BackendUnavailable
from tests.cli_helpers import cli_env, cli_process
from tests.dist_counting import CountingProjection
from tests.dist_private import private_postgres  # noqa: F401 - fixture
from tests.log_contract import added

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class _Writer(threading.Thread):
    """Appends small batches until stopped; remembers what was acknowledged and every error raised."""

    def __init__(self, log: PostgresLog):
        super().__init__(daemon=True)
        self.log = log
        self.acked: list[str] = []
        self.errors: list[BaseException] = []
        self.stop = threading.Event()

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            batch = [added(f"c{j % 3}", f"m{i}-{j}", "x", event_id=f"e{i}-{j}") for j in range(5)]
            try:
                self.log.append(batch)
                self.acked.extend(e.event_id for e in batch)
                i += 1
            except Exception as exc:  # noqa: BLE001 - the test inspects every error
                self.errors.append(exc)
                time.sleep(0.05)


def test_shutdown_mid_append_is_backend_unavailable_and_loses_nothing(private_postgres):  # noqa: F811
    log = PostgresLog(private_postgres.endpoint, schema="faults", connect_timeout=1)
    writer = _Writer(log)
    writer.start()
    try:
        while len(writer.acked) < 200:
            time.sleep(0.02)
        private_postgres.ctl("stop")  # fast shutdown: appends in flight get AdminShutdown
        failed_while_down = len(writer.errors)
        deadline = time.monotonic() + 30
        while len(writer.errors) == failed_while_down and time.monotonic() < deadline:
            time.sleep(0.05)
        private_postgres.ctl("start")
        acked_before = len(writer.acked)
        deadline = time.monotonic() + 60
        while len(writer.acked) < acked_before + 100 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        writer.stop.set()
        writer.join(30)
    assert writer.errors, "the writer never noticed the server was down"
    kinds = {type(e).__name__ for e in writer.errors}
    assert all(isinstance(e, BackendUnavailable) for e in writer.errors), kinds
    assert len(writer.acked) >= acked_before + 100, "appends did not resume after the restart"
    stored = {e.event_id for e in log.read()}
    assert set(writer.acked) <= stored  # nothing acknowledged was lost
    assert log.verify().ok
    log.close()


def test_cli_on_a_stopped_server_is_exit_2_and_http_503(private_postgres, tmp_path):  # noqa: F811
    from tests.service_support import make_service

    data = tmp_path / "data"
    data.mkdir()
    (data / "memledger.toml").write_text(
        f'[log]\nbackend = "postgres"\ndsn = "{private_postgres.endpoint}"\nschema = "cli"\nconnect_timeout = 1\n'
    )
    env = cli_env()
    cmd = [sys.executable, "-m", "ledger", "--data", str(data)]
    ok = subprocess.run([*cmd, "head"], env=env, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    private_postgres.ctl("stop")
    down = subprocess.run([*cmd, "head"], env=env, capture_output=True, text=True, timeout=120)
    assert down.returncode == 2 and down.stderr.startswith("error: ") and "unavailable" in down.stderr, down.stderr
    assert "Traceback" not in down.stderr and len(down.stderr.strip().splitlines()) == 1
    private_postgres.ctl("start")
    config = (data / "memledger.toml").read_text()
    service = make_service(tmp_path / "svc", config=config)
    assert service.client.get("/v1/head", headers=service.h("alice")).status_code == 200
    private_postgres.ctl("stop")
    r = service.client.get("/v1/head", headers=service.h("alice"))
    assert r.status_code == 503 and "unavailable" in r.text, r.text
    private_postgres.ctl("start")


def _consume(data: Path) -> subprocess.Popen:
    args = ["consume", "--view", "counter", "--batch-size", "20", "--report-every", "0.5", "--poll-interval", "0.05"]
    return cli_process(data, *args)


def test_consumers_recover_after_a_server_restart_and_exit_0_on_sigterm(private_postgres, tmp_path):  # noqa: F811
    data = tmp_path / "data"
    data.mkdir()
    (data / "memledger.toml").write_text(
        f'[log]\nbackend = "postgres"\ndsn = "{private_postgres.endpoint}"\nschema = "cons"\nconnect_timeout = 2\n\n'
        '[consumers.views.counter]\nfactory = "tests.dist_counting:build"\n'
    )
    log = PostgresLog(private_postgres.endpoint, schema="cons", connect_timeout=2)
    for i in range(10):
        log.append([added("c", f"a{i}-{j}", "x") for j in range(10)])
    # the view's file exists (in WAL mode) before the consumers open it: three connections creating
    # one SQLite file at once can get an immediate "database is locked" while it is still in rollback mode
    view = CountingProjection(data / "counter.sqlite")
    active, standby = _consume(data), _consume(data)
    try:
        deadline = time.monotonic() + 60
        while view.checkpoint() < 99 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert view.checkpoint() == 99, active.stderr.read() if active.poll() is not None else "no progress"
        private_postgres.ctl("restart")
        back = time.monotonic()
        for i in range(10):
            log.append([added("c", f"b{i}-{j}", "x") for j in range(10)])
        deadline = time.monotonic() + 60
        while view.checkpoint() < 199 and time.monotonic() < deadline:
            time.sleep(0.05)
        print(f"consumer caught up {time.monotonic() - back:.2f} s after PostgreSQL was back")
        assert view.checkpoint() == 199, "the consumers did not recover after the restart"
        counts = view.counts()
        assert sorted(counts) == list(range(200)) and set(counts.values()) == {1}
    finally:
        for p in (active, standby):
            p.send_signal(signal.SIGTERM)
        results = [p.communicate(timeout=60) for p in (active, standby)]
        view.close()
        log.close()
    for p, (_, err) in zip((active, standby), results, strict=True):
        assert p.returncode == 0, err[-2000:]
        assert "Traceback" not in err, err[-2000:]
