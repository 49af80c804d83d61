"""Counterfactual branches (tests/test_time_branches.py) over the PostgreSQL and Kafka logs."""

from __future__ import annotations

import pytest

from tests.dist_backends import BACKENDS, ledger_on
from tests.test_time_branches import *  # noqa: F403 - the shared behaviour suite

pytestmark = pytest.mark.integration


@pytest.fixture(params=BACKENDS)
def main_ledger(request, tmp_path):  # noqa: F811 - overrides the embedded suite's fixture
    yield from ledger_on(request.param, tmp_path)
