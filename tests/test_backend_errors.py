"""Issue 15, one error vocabulary: a server that cannot be reached is one ``BackendUnavailable`` (CLI
exit 2 and one line, HTTP 503), never an ``InvalidRequest``, a 400 or a traceback."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from ledger.errors import BackendUnavailable, LedgerError
from ledger.governance.merkle import MerkleError, MerkleTree
from tests.cli_helpers import init_data, run


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


def _one_line_exit_2(code: int, err: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "unavailable" in lines[0], err
    assert "Traceback" not in err


def test_unreachable_postgres_log_is_exit_2_with_one_line(tmp_path, capsys):
    data = init_data(tmp_path, capsys)
    dsn = f"postgresql://u:secret@127.0.0.1:{_closed_port()}/x"
    (Path(data) / "memledger.toml").write_text(f'[log]\nbackend = "postgres"\ndsn = "{dsn}"\nconnect_timeout = 1\n')
    code, _, err = run(capsys, "--data", data, "head")
    _one_line_exit_2(code, err)
    assert "secret" not in err


def test_unreachable_neo4j_graph_view_is_exit_2_with_one_line(tmp_path, capsys):
    data = init_data(tmp_path, capsys)
    run(capsys, "--data", data, "add", "--cube", "c", "--actor", "a", "Ada lives in Lisbon")
    (Path(data) / "memledger.toml").write_text(
        f'[views]\nvector = "none"\n\n[views.graph]\nadapter = "neo4j"\nurl = "bolt://u:p@127.0.0.1:{_closed_port()}"\n'
    )
    code, _, err = run(capsys, "--data", data, "search", "--cube", "c", "Lisbon")
    _one_line_exit_2(code, err)


def test_unreachable_elasticsearch_view_is_exit_2_with_one_line(tmp_path, capsys):
    data = init_data(tmp_path, capsys)
    run(capsys, "--data", data, "add", "--cube", "c", "--actor", "a", "Ada lives in Lisbon")
    (Path(data) / "memledger.toml").write_text(
        f'[views]\ngraph = "none"\n\n[views.vector]\nadapter = "elasticsearch"\n'
        f'url = "http://127.0.0.1:{_closed_port()}"\nembedder = "hashing"\n'
    )
    code, _, err = run(capsys, "--data", data, "search", "--cube", "c", "Lisbon")
    _one_line_exit_2(code, err)


def test_unreachable_kafka_is_backend_unavailable():
    from ledger.backends.kafka_log import KafkaLog

    with pytest.raises(BackendUnavailable):
        KafkaLog(
            f"127.0.0.1:{_closed_port()}",
            topic="nowhere",
            connect_timeout=1,
            client_options={"request_timeout_ms": 2000, "api_version_auto_timeout_ms": 1000},
        )


def test_every_error_is_a_ledger_error():
    with pytest.raises(LedgerError):
        MerkleTree([]).root(5)
    assert issubclass(MerkleError, LedgerError)
