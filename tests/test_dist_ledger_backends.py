"""The Ledger behaviour suite (tests/test_ledger_api.py) re-run on the PostgreSQL and Kafka logs,
plus replay equivalence: every backend folds the same operations into the same memory states.

The test functions are imported from the embedded suite, so both stay one suite; only the
``ledger`` fixture differs.
"""

from __future__ import annotations

import pytest

from ledger.api import Ledger
from ledger.memory_state import fold
from tests.dist_backends import open_log
from tests.test_ledger_api import *  # noqa: F403 - the shared behaviour suite

pytestmark = pytest.mark.integration


@pytest.fixture(params=["postgres", "kafka"])
def ledger(request, tmp_path):  # noqa: F811 - overrides the embedded suite's fixture
    log, drop = open_log(request.param, tmp_path)
    lg = Ledger(log)
    yield lg
    log.close()
    drop()


def _script(lg: Ledger) -> None:
    a = lg.add("work", "Caroline adopted a puppy", "alice", tags=["pets"])
    b = lg.add("work", "Budget review on Friday", "bob")
    lg.update(a.id, "Caroline adopted a kitten", "alice")
    lg.change_state(b.id, "activated", "bob")
    c = lg.add("work", "Bought a bicycle", "carol")
    lg.add("home", "Garden needs watering", "carol")
    lg.merge([a.id, c.id], "Caroline has a kitten and a bicycle", "alice")
    lg.link(b.id, c.id, "related", "bob")
    lg.get(a.id, actor="auditor")  # recorded read


@pytest.mark.parametrize("backend", ["postgres", "kafka"])
def test_replay_equivalence_with_the_embedded_log(backend, tmp_path):
    """Same operations on SQLite and on a distributed log: same states at every offset, same audit trail."""
    import ledger.api as api

    original = api.new_memory_id
    logs = []
    try:
        ledgers = []
        for name in ("sqlite", backend):
            ids = iter(f"mem_{i:04d}" for i in range(100))  # same memory ids on both sides
            api.new_memory_id = ids.__next__
            log, drop = open_log(name, tmp_path)
            logs.append((log, drop))
            lg = Ledger(log)
            _script(lg)
            ledgers.append(lg)
    finally:
        api.new_memory_id = original
    base, other = ledgers
    assert base.head() == other.head()
    shape = [(e.offset, e.stream, e.version, e.type, e.actor, e.payload) for e in base.events()]
    assert shape == [(e.offset, e.stream, e.version, e.type, e.actor, e.payload) for e in other.events()]
    for n in range(-1, base.head() + 1):
        want = {k: _comparable(v) for k, v in fold(base.events(0, n)).items()}
        got = {k: _comparable(v) for k, v in fold(other.events(0, n)).items()}
        assert got == want, f"states differ as of offset {n}"
    reads = [e for e in other.events() if e.type == "memory.read"]
    assert reads and reads[0].actor == "auditor"
    assert other.log.verify().ok
    for log, drop in logs:
        log.close()
        drop()


def _comparable(state) -> dict:
    d = state.to_dict()
    for k in ("created_at", "updated_at"):
        d.pop(k)
    return d
