"""Audit queries and as-of reads (tests/test_time_audit.py, tests/test_time_asof.py,
tests/test_time_provenance.py) over the PostgreSQL and Kafka logs."""

from __future__ import annotations

import pytest

import tests.test_time_asof as asof_suite
import tests.test_time_provenance as provenance_suite
from tests.dist_backends import BACKENDS, drop_tests, ledger_on
from tests.test_time_audit import *  # noqa: F403 - the shared behaviour suite

pytestmark = pytest.mark.integration

# as-of and provenance tests that take only the ledger fixture
for _suite in (asof_suite, provenance_suite):
    for _name in dir(_suite):
        if _name.startswith("test_") and not _name.startswith("test_cli"):
            globals()[f"{_name}__{_suite.__name__.rsplit('_', 1)[-1]}"] = getattr(_suite, _name)
# the CLI tests build their own SQLite data directories; tampering edits the SQLite file
drop_tests(globals(), "test_cli_audit", "test_tampered_event_is_flagged__provenance")


@pytest.fixture(params=BACKENDS)
def ledger(request, tmp_path):  # noqa: F811 - overrides the embedded suite's fixture
    yield from ledger_on(request.param, tmp_path)
