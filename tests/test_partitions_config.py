"""``[log] partitions`` and ``open_partitioned_log``; routing shared with the Kafka data topic."""

from __future__ import annotations

import zlib

import pytest

from ledger.backends.kafka_log import partition_of as kafka_partition_of
from ledger.backends.sqlite_log import SqliteLog
from ledger.config import load_config
from ledger.errors import InvalidRequest
from ledger.factory import open_partitioned_log
from ledger.partitions.routing import crc_partition, partition_of
from ledger.partitions.settings import PartitionCountMismatch
from tests.log_contract import added


def _config(tmp_path, text: str):
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "memledger.toml").write_text(text)
    return load_config(tmp_path)


def test_the_default_is_one_partition_on_todays_log(tmp_path):
    plog = open_partitioned_log(load_config(tmp_path))
    assert plog.count == 1
    plog.append([added("c", "m1", "x")])
    plog.close()
    log = SqliteLog(tmp_path / "log.sqlite")
    assert log.head() == 0
    log.close()


def test_configured_partitions_are_files_in_the_data_directory(tmp_path):
    config = _config(tmp_path, '[log]\nbackend = "sqlite"\npartitions = 4\nsynchronous = "OFF"\n')
    plog = open_partitioned_log(config)
    assert plog.count == 4 and plog.heads() == (-1, -1, -1, -1)
    plog.close()
    assert sorted(p.name for p in tmp_path.glob("log*.sqlite")) == [f"log.p{k}.sqlite" for k in range(4)]
    for other in ("partitions = 2", "partitions = 1", ""):  # one partition (the default) is refused too
        with pytest.raises(PartitionCountMismatch):
            open_partitioned_log(_config(tmp_path, f"[log]\n{other}\n"))
    assert not (tmp_path / "log.sqlite").exists()


@pytest.mark.parametrize("bad", ["0", "-3", "257", "2.5", '"4"', "true"])
def test_bad_partition_settings_are_refused(tmp_path, bad):
    config = _config(tmp_path, f"[log]\npartitions = {bad}\n")
    with pytest.raises(InvalidRequest, match=r"\[log\] partitions must be a whole number from 1 to 256"):
        open_partitioned_log(config)
    assert not list(tmp_path.glob("*.sqlite"))


def test_kafka_partitions_are_the_data_topics_and_the_ledger_is_one_partition(tmp_path):
    """On Kafka, ``[log] partitions`` has always set the data topic's partitions: the Kafka ledger
    (one sequencer) is one ledger partition, so the memory API opens it (before: every Kafka data
    directory with ``partitions = 4`` was refused as a partitioned ledger)."""
    from ledger.partitions.settings import partition_count

    config = _config(tmp_path, '[log]\nbackend = "kafka"\npartitions = 4\n')
    assert partition_count(config) == 1
    config = _config(tmp_path, '[log]\nbackend = "kafka"\npartitions = 4\nledger_partitions = 3\n')
    assert partition_count(config) == 3  # a Kafka ledger of several partitions names the count apart
    config = _config(tmp_path, '[log]\nbackend = "kafka"\nledger_partitions = "3"\n')
    with pytest.raises(InvalidRequest, match=r"\[log\] ledger_partitions must be a whole number"):
        partition_count(config)


def test_routing_is_crc32_with_system_in_partition_zero():
    names = [f"cube-{i}" for i in range(500)] + ["_system", "ünïcode", "c"]
    for n in (1, 2, 4, 8, 256):
        for s in names:
            want = 0 if s == "_system" or n == 1 else zlib.crc32(s.encode()) % n
            assert partition_of(s, n) == want
    assert {partition_of(f"cube-{i}", 8) for i in range(500)} == set(range(8))
    with pytest.raises(ValueError):
        partition_of("c", 0)


def test_the_kafka_data_topic_keeps_its_partitions():
    for s in [f"cube-{i}" for i in range(200)] + ["_system"]:
        assert kafka_partition_of(s, 3) == crc_partition(s, 3) == zlib.crc32(s.encode()) % 3


def test_the_memory_commands_write_to_the_partitions_not_beside_them(tmp_path, capsys):
    """Before: `memledger add` on a data directory with ``[log] partitions = 4`` opened (and wrote to)
    a fresh single ``log.sqlite`` beside the partitions, so the memory was in no partition. Now the
    memory commands run on the partitioned ledger; commands that need one log refuse in one line."""
    from tests.cli_helpers import init_data, run

    data = init_data(tmp_path, capsys)
    toml = open(f"{data}/memledger.toml").read().replace("# partitions = 1 ", "partitions = 4 ")
    assert "partitions = 4" in toml
    open(f"{data}/memledger.toml", "w").write(toml)
    code, out, err = run(capsys, "--data", data, "add", "--cube", "c", "--actor", "a", "Alice lives in Oslo")
    assert code == 0, err
    plog = open_partitioned_log(load_config(data))
    home = plog.partition(plog.partition_of("c"))
    assert [e.type for e in home.read()] == ["cube.created", "memory.added"]
    plog.close()
    single = SqliteLog(tmp_path / "data" / "log.sqlite")
    assert single.head() == -1  # nothing beside the partitions
    single.close()
    before = sorted(p.name for p in (tmp_path / "data").iterdir() if not p.name.endswith(("-wal", "-shm")))
    code, out, err = run(capsys, "--data", data, "restore", "--cube", "c", "--to", "0", "--actor", "a")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "4 partitions" in err and "consume --view V --group G" in err
    after = sorted(p.name for p in (tmp_path / "data").iterdir() if not p.name.endswith(("-wal", "-shm")))
    plog = open_partitioned_log(load_config(data))
    assert after == before and plog.heads()[plog.partition_of("c")] == 1  # nothing written
    plog.close()


def test_a_ledger_of_one_partition_with_events_is_not_reopened_as_several(tmp_path, capsys):
    from tests.cli_helpers import init_data, run

    data = init_data(tmp_path, capsys)
    assert run(capsys, "--data", data, "add", "--cube", "c", "--actor", "a", "Alice lives in Oslo")[0] == 0
    toml = open(f"{data}/memledger.toml").read().replace("# partitions = 1 ", "partitions = 4 ")
    open(f"{data}/memledger.toml", "w").write(toml)
    before = sorted(p.name for p in (tmp_path / "data").iterdir())
    code, out, err = run(capsys, "--data", data, "add", "--cube", "d", "--actor", "a", "Bob lives in Rome")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "holds a ledger of 1 partition, but 4 were configured" in err
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == before


def test_a_ledger_stored_with_four_partitions_is_not_opened_as_one(tmp_path, capsys):
    from tests.cli_helpers import init_data, run

    data = init_data(tmp_path, capsys)
    toml = open(f"{data}/memledger.toml").read().replace("# partitions = 1 ", "partitions = 4 ")
    open(f"{data}/memledger.toml", "w").write(toml)
    # a ledger stored with 4 partitions and opened with the count left out is refused too
    open_partitioned_log(load_config(data)).close()
    text = open(f"{data}/memledger.toml").read().replace("partitions = 4", "partitions = 1")
    open(f"{data}/memledger.toml", "w").write(text)
    code, _, err = run(capsys, "--data", data, "search", "Oslo")
    assert code == 2 and "holds a ledger of 4 partitions, but 1 was configured" in err
