"""A shared log that was reset, truncated or replaced is noticed (issue 16 defect 4).

After the log's server lost its data, a new process used to start a fresh ledger at offset 0, a view
kept a checkpoint ahead of the log and ``lag`` reported a negative lag as normal. Now writes,
consumers and ``lag`` stop with one clear error instead.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.backends.kafka_log import KafkaLog
from ledger.backends.postgres_log import PostgresLog
from ledger.factory import open_ledger
from ledger.log_guard import SEEN_NAME, LogReset
from tests.cli_helpers import run
from tests.dist_counting import CountingProjection
from tests.dist_env import endpoint, unique_name
from tests.log_contract import added

pytestmark = pytest.mark.integration


def _data(tmp_path: Path, backend: str) -> tuple[Path, str]:
    name = unique_name("reset")
    if backend == "postgres":
        section = f'backend = "postgres"\ndsn = "{endpoint("postgres")}"\nschema = "{name}"'
    else:
        section = f'backend = "kafka"\nbootstrap_servers = "{endpoint("kafka")}"\ntopic = "{name}"\npartitions = 2'
    data = tmp_path / "data"
    data.mkdir()
    (data / "memledger.toml").write_text(
        f'[log]\n{section}\n\n[consumers.views.counter]\nfactory = "tests.dist_counting:build"\n'
    )
    return data, name


def _raw_log(backend: str, name: str):
    """A handle on the same shared log without any data directory (what the server holds)."""
    if backend == "postgres":
        return PostgresLog(endpoint("postgres"), schema=name)
    return KafkaLog(endpoint("kafka"), topic=name, partitions=2)


@pytest.mark.parametrize("backend", ["postgres", "kafka"])
def test_an_emptied_log_stops_writes_consumers_and_lag(tmp_path, capsys, backend):
    data, name = _data(tmp_path, backend)
    d = str(data)
    for i in range(4):
        assert run(capsys, "--data", d, "add", "--cube", "notes", "--actor", "alice", f"note {i}")[0] == 0
    assert run(capsys, "--data", d, "consume", "--view", "counter", "--once", "--max-seconds", "60")[0] == 0
    assert (data / SEEN_NAME).exists()
    raw = _raw_log(backend, name)
    seen = raw.head()
    assert seen == 4  # the cube's creation and four memories
    raw.drop()  # the server lost its data
    raw.close()
    raw = _raw_log(backend, name)  # and a fresh, empty ledger appears under the same name
    assert raw.head() == -1
    code, _, err = run(capsys, "--data", d, "add", "--cube", "notes", "--actor", "alice", "after the reset")
    assert code == 2 and "reset or truncated" in err and f"offset {seen}" in err, err
    assert raw.head() == -1  # nothing was written
    code, out, err = run(capsys, "--data", d, "lag", "--view", "counter", "--json")
    assert code == 2 and "reset or truncated" in err and "lag_events" not in out, (out, err)
    raw.append([added("notes", f"other{i}", "x") for i in range(2)])  # someone else writes to the new log
    code, _, err = run(capsys, "--data", d, "consume", "--view", "counter", "--once", "--max-seconds", "30")
    assert code == 2 and "reset or truncated" in err, err
    assert CountingProjection(data / "counter.sqlite").checkpoint() == seen  # nothing of the new log applied
    raw.drop()
    raw.close()


def test_a_replaced_log_with_more_events_is_noticed_by_the_hash(tmp_path, capsys):
    data, name = _data(tmp_path, "postgres")
    d = str(data)
    for i in range(3):
        assert run(capsys, "--data", d, "add", "--cube", "notes", "--actor", "alice", f"note {i}")[0] == 0
    assert run(capsys, "--data", d, "consume", "--view", "counter", "--once", "--max-seconds", "60")[0] == 0
    raw = _raw_log("postgres", name)
    raw.drop()
    raw.close()
    raw = _raw_log("postgres", name)
    raw.append([added("notes", f"other{i}", "x") for i in range(10)])  # longer than what we saw: offsets pass
    code, _, err = run(capsys, "--data", d, "consume", "--view", "counter", "--once", "--max-seconds", "30")
    assert code == 2 and "was replaced" in err, err
    assert CountingProjection(data / "counter.sqlite").checkpoint() == 3  # the cube and three memories
    ledger = open_ledger(data)
    with pytest.raises(LogReset, match="was replaced"):
        ledger.add("notes", "after the replacement", "alice")
    assert raw.head() == 9
    # pointing the data directory at the new ledger on purpose: delete log.seen and rebuild the views
    (data / SEEN_NAME).unlink()
    ledger.log.close()
    code, _, err = run(
        capsys, "--data", d, "consume", "--view", "counter", "--rebuild", "--once", "--max-seconds", "60"
    )
    assert code == 0, err
    assert CountingProjection(data / "counter.sqlite").checkpoint() == 9
    raw.drop()
    raw.close()


def test_an_in_process_consumer_notices_a_replacement_without_a_data_directory(tmp_path):
    from consumers.runner import ProjectionConsumer
    from ledger.api import Ledger

    name = unique_name("reset")
    log = _raw_log("postgres", name)
    log.append([added("c", f"m{i}", "x") for i in range(5)])
    view = CountingProjection(tmp_path / "counter.sqlite")
    consumer = ProjectionConsumer(Ledger(log, record_reads=False), view, batch_size=100)
    assert consumer.step() == 5
    log.drop()
    log.close()
    log = _raw_log("postgres", name)
    log.append([added("c", f"n{i}", "y") for i in range(8)])
    consumer.ledger = Ledger(log, record_reads=False)
    with pytest.raises(LogReset, match="was replaced"):
        consumer.run(max_seconds=10)
    assert view.checkpoint() == 4
    view.close()
    log.drop()
    log.close()
