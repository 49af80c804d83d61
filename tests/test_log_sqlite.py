"""The embedded SQLite backend against the shared Log contract."""

from __future__ import annotations

import pytest

from ledger.backends.sqlite_log import SqliteLog
from tests.log_contract import LogContract


@pytest.fixture
def log(tmp_path):
    lg = SqliteLog(tmp_path / "log.sqlite")
    yield lg
    lg.close()


class TestSqliteLog(LogContract):
    pass
