"""Restore (compensating events) from tests/test_time_restore.py over the PostgreSQL and Kafka logs."""

from __future__ import annotations

import pytest

from tests.dist_backends import BACKENDS, drop_tests, ledger_on
from tests.test_time_restore import *  # noqa: F403 - the shared behaviour suite
from tests.test_time_restore import FakeSealer

pytestmark = pytest.mark.integration

# these build their own SQLite data directories through the CLI
drop_tests(globals(), "test_cli_restore", "test_restore_and_branches_with_the_real_cipher_respect_forgetting")


@pytest.fixture(params=BACKENDS)
def ledger(request, tmp_path):  # noqa: F811 - overrides the embedded suite's fixture
    sealer = FakeSealer()
    yield from ledger_on(request.param, tmp_path, sealer=sealer, opener=sealer.open)
