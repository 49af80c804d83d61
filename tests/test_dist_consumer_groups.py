"""Consumer groups on the real PostgreSQL: members divide a view's partitions, exactly once per partition.

Each partition of the counting view has its own file and checkpoint; after every scenario each
partition's view must hold each event of its partition exactly once, in offset order (a fresh
fold of that partition). Scenarios: 1, 2 and 4 members converging; kill -9 of a member
mid-catch-up (its partitions are finished by the others); a member joining (it takes partitions
from the one running); SIGTERM (the member leaves at once); a frozen member (its heartbeat
expires, its session is fenced off, and it rejoins when it thaws); a restart of PostgreSQL itself
(every member loses its session and locks, and the group re-forms once the server is back).
"""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import pytest

from consumers.group_member import GroupMember
from consumers.pg_group_coordinator import PostgresGroupCoordinator
from tests.cli_helpers import run
from tests.dist_counting import CountingProjection, partition_path
from tests.dist_env import endpoint, unique_name
from tests.dist_private import private_postgres  # noqa: F401 - fixture
from tests.group_partitions import postgres_partitions
from tests.group_scenarios import (
    PARTITIONS,
    ExclusiveViews,
    assert_exactly_once,
    assert_group_converged,
    checkpoints,
    member,
    stop_all,
    stop_group,
    wait_for,
    write,
)

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parent.parent
VIEW = "counter"
SPLIT = {k: "a" if k < 4 else "b" for k in range(PARTITIONS)}  # the range assignment of members a and b


@pytest.fixture
def setup(tmp_path):
    """(dsn, schema, partitioned log, data dir) with the counting view's files created up front."""
    dsn = endpoint("postgres")
    schema = unique_name("group_t")
    plog = postgres_partitions(dsn, schema, PARTITIONS)
    data = tmp_path / "data"
    data.mkdir()
    for k in range(PARTITIONS):  # created before several processes open them (see test_dist_consumers)
        CountingProjection(partition_path(data, k)).close()
    yield dsn, schema, plog, data
    plog.drop()
    plog.close()
    coordinator = PostgresGroupCoordinator(dsn, schema, "cleanup", VIEW, "cleanup")
    coordinator.heartbeat()
    coordinator._connection().execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    coordinator.leave()


# -- in process: 1, 2 and 4 members ---------------------------------------------------------------


@pytest.mark.parametrize(("members", "strategy"), [(1, "range"), (2, "range"), (4, "range"), (3, "rendezvous")])
def test_members_divide_the_partitions_and_converge_exactly_once(setup, members, strategy):
    dsn, schema, plog, data = setup
    write(plog, 40)
    stop = threading.Event()
    views = ExclusiveViews(data)
    group: list[GroupMember] = []
    for i in range(members):
        coordinator = PostgresGroupCoordinator(dsn, schema, "g", VIEW, f"m{i}", heartbeat_timeout=30)
        own_log = postgres_partitions(dsn, schema, PARTITIONS)
        group.append(
            GroupMember(
                own_log,
                views.factory(f"m{i}"),
                coordinator,
                "g",
                VIEW,
                strategy=strategy,
                batch_size=7,
                poll_interval=0.05,
                heartbeat_interval=0.2,
            )
        )
    threads = [threading.Thread(target=m.run, args=(stop,)) for m in group]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: checkpoints(data) == list(plog.heads()), "the first catch-up")
        write(plog, 25, tag="b")  # while they run
        wait_for(lambda: checkpoints(data) == list(plog.heads()), "the second catch-up")
        coordinator = group[0].coordinator

        def settled() -> bool:  # a partition in hand-over is briefly held by nobody: wait it out
            holders = coordinator.lock_holders()  # type: ignore[attr-defined]
            return sorted(holders) == list(range(PARTITIONS)) and len(set(holders.values())) == members

        wait_for(settled, "every partition held, and every member holding a share")
    finally:
        stop_group(stop, threads)
    assert_group_converged(group, plog, data, views)


def test_a_partition_lock_is_held_by_one_member_and_leave_frees_it(setup):
    dsn, schema, _, _ = setup
    a = PostgresGroupCoordinator(dsn, schema, "g", VIEW, "a")
    b = PostgresGroupCoordinator(dsn, schema, "g", VIEW, "b")
    other_group = PostgresGroupCoordinator(dsn, schema, "h", VIEW, "c")
    try:
        assert a.heartbeat() == ["a"] and b.heartbeat() == ["a", "b"]
        assert a.acquire(3) and not b.acquire(3) and b.acquire(4)
        assert other_group.acquire(3)  # another group's view stores are its own
        assert a.lock_holders() == {3: "a", 4: "b"}
        a.leave()
        assert b.heartbeat() == ["b"] and b.acquire(3) and b.held() == {3, 4}
    finally:
        for c in (a, b, other_group):
            c.leave()


def test_a_closed_session_is_a_dead_member_at_once_and_a_frozen_one_is_fenced(setup):
    dsn, schema, _, _ = setup
    a = PostgresGroupCoordinator(dsn, schema, "g", VIEW, "a", heartbeat_timeout=60)
    b = PostgresGroupCoordinator(dsn, schema, "g", VIEW, "b", heartbeat_timeout=60)
    c = PostgresGroupCoordinator(dsn, schema, "g", VIEW, "c", heartbeat_timeout=0.5)
    try:
        assert a.heartbeat() == ["a"] and b.heartbeat() == ["a", "b"] and b.acquire(1)
        b._conn.close()  # as kill -9 does: the session ends, the row stays
        assert a.heartbeat() == ["a"]  # long before its 60 s heartbeat timeout
        assert a.acquire(1)
        a.release(1)
        assert c.heartbeat() == ["a", "c"]
        time.sleep(1.0)  # a's heartbeat is now older than c's 0.5 s timeout, its session still open
        assert c.heartbeat() == ["c"]
        assert not a.check() and a.held() == frozenset()  # a was fenced off: its session was ended
        assert a.heartbeat() == ["a", "c"]  # and it rejoins on a new session
    finally:
        for x in (a, b, c):
            x.leave()


# -- member processes ------------------------------------------------------------------------------


def write_config(data: Path, dsn: str, schema: str, delay: float, detect_closed: bool = True) -> None:
    (data / "memledger.toml").write_text(
        f'[log]\nbackend = "postgres"\ndsn = "{dsn}"\nschema = "{schema}"\n\n'
        f'[consumers.views.counter]\nfactory = "tests.dist_counting:build"\ndelay = {delay}\n\n'
        f'[consumers.group]\npartitioned_log = "tests.group_partitions:from_config"\npartitions = {PARTITIONS}\n'
        f"detect_closed_sessions = {str(detect_closed).lower()}\n"
    )


def holders(dsn: str, schema: str) -> dict[int, str]:
    probe = PostgresGroupCoordinator(dsn, schema, "g", VIEW, "probe")
    try:
        return probe.lock_holders()
    finally:
        probe.leave()


@pytest.mark.slow
def test_kill_9_mid_catch_up_its_partitions_are_finished_by_the_others_exactly_once(setup):
    dsn, schema, plog, data = setup
    write_config(data, dsn, schema, delay=0.05)
    write(plog, 100)
    # a 60 s heartbeat timeout: the takeover below can only come from noticing the closed session
    a, b = member(data, "a", "--heartbeat-timeout", "60"), member(data, "b", "--heartbeat-timeout", "60")
    try:
        wait_for(lambda: holders(dsn, schema) == SPLIT, "the split", procs=(a, b))
        wait_for(lambda: min(checkpoints(data)[:4]) >= 10, "a's progress", procs=(a, b))
        a.send_signal(signal.SIGKILL)
        a.wait(10)
        at_kill = checkpoints(data)[:4]
        assert max(at_kill) < 99, f"a finished before it was killed: {at_kill}"
        wait_for(lambda: holders(dsn, schema) == {k: "b" for k in range(8)}, "b taking a's partitions", 30, (b,))
        wait_for(lambda: checkpoints(data) == list(plog.heads()), "convergence", procs=(b,))
    finally:
        (_, err_b), _ = stop_all(b, a)
    assert b.returncode == 0, err_b[-2000:]
    assert_exactly_once(plog, data)


@pytest.mark.slow
def test_a_joining_member_takes_partitions_from_the_running_one(setup):
    dsn, schema, plog, data = setup
    write_config(data, dsn, schema, delay=0.05)
    write(plog, 100)
    a = member(data, "a")
    b = None
    try:
        wait_for(lambda: holders(dsn, schema) == {k: "a" for k in range(8)}, "a holding all", procs=(a,))
        wait_for(lambda: min(checkpoints(data)) >= 5, "a's progress", procs=(a,))
        b = member(data, "b")
        wait_for(lambda: holders(dsn, schema) == SPLIT, "the split", 60, (a, b))
        assert min(checkpoints(data)[4:]) < 99, "a finished b's share before b joined"
        wait_for(lambda: checkpoints(data) == list(plog.heads()), "convergence", procs=(a, b))
    finally:
        results = stop_all(*(p for p in (a, b) if p is not None))
    for p, (_, err) in zip((a, b), results, strict=False):
        assert p is not None and p.returncode == 0, err[-2000:]
    assert_exactly_once(plog, data)


@pytest.mark.slow
def test_sigterm_leaves_the_group_at_once(setup, capsys):
    dsn, schema, plog, data = setup
    # neither a closed session nor an expired heartbeat counts here: only leaving the group can move b's share
    write_config(data, dsn, schema, delay=0.0, detect_closed=False)
    write(plog, 20)
    a, b = member(data, "a", "--heartbeat-timeout", "60"), member(data, "b", "--heartbeat-timeout", "60")
    try:
        wait_for(lambda: holders(dsn, schema) == SPLIT, "the split", procs=(a, b))
        code, out, err = run(capsys, "--data", str(data), "lag", "--view", VIEW, "--group", "g", "--json")
        assert code == 0, err
        assert {p["partition"]: p["holder"] for p in json.loads(out)["partitions"]} == SPLIT
        b.send_signal(signal.SIGTERM)
        _, err = b.communicate(timeout=30)
        assert b.returncode == 0, err[-2000:]
        gone = holders(dsn, schema)
        assert "b" not in gone.values() and all(not m.startswith("pid:") for m in gone.values()), gone
        # and a takes b's partitions long before b's 60 s heartbeat would have expired
        wait_for(lambda: holders(dsn, schema) == {k: "a" for k in range(8)}, "a taking b's partitions", 30, (a,))
        write(plog, 15, tag="b")
        wait_for(lambda: checkpoints(data) == list(plog.heads()), "convergence", procs=(a,))
    finally:
        stop_all(a, b)
    assert_exactly_once(plog, data)


@pytest.mark.slow
def test_a_frozen_member_is_fenced_off_and_rejoins_when_it_thaws(setup):
    dsn, schema, plog, data = setup
    write_config(data, dsn, schema, delay=0.05)
    write(plog, 100)
    a, b = member(data, "a", "--heartbeat-timeout", "1.5"), member(data, "b", "--heartbeat-timeout", "1.5")
    try:
        wait_for(lambda: holders(dsn, schema) == SPLIT, "the split", procs=(a, b))
        wait_for(lambda: min(checkpoints(data)[4:]) >= 5, "b's progress", procs=(a, b))
        b.send_signal(signal.SIGSTOP)  # alive, its session open, but silent
        wait_for(lambda: holders(dsn, schema) == {k: "a" for k in range(8)}, "a taking b's partitions", 60, (a,))
        b.send_signal(signal.SIGCONT)
        wait_for(lambda: checkpoints(data) == list(plog.heads()), "convergence", procs=(a, b))
        wait_for(lambda: holders(dsn, schema) == SPLIT, "b back", 60, (a, b))
    finally:
        b.send_signal(signal.SIGCONT)
        results = stop_all(a, b)
    for p, (_, err) in zip((a, b), results, strict=True):
        assert p.returncode == 0, err[-2000:]
    assert_exactly_once(plog, data)


@pytest.mark.slow
def test_the_group_re_forms_and_finishes_exactly_once_after_a_postgres_restart(private_postgres, tmp_path):  # noqa: F811
    dsn, schema = private_postgres.endpoint, "group_restart"
    plog = postgres_partitions(dsn, schema, PARTITIONS)
    data = tmp_path / "data"
    data.mkdir()
    for k in range(PARTITIONS):
        CountingProjection(partition_path(data, k)).close()
    write_config(data, dsn, schema, delay=0.0)
    write(plog, 30)
    a, b = member(data, "a"), member(data, "b")
    try:
        wait_for(lambda: checkpoints(data) == list(plog.heads()), "the first catch-up", procs=(a, b))
        private_postgres.ctl("restart")
        back = time.monotonic()
        write(plog, 20, tag="b")
        wait_for(lambda: checkpoints(data) == list(plog.heads()), "catch-up after the restart", procs=(a, b))
        print(f"every partition caught up {time.monotonic() - back:.2f} s after PostgreSQL was back")
        wait_for(lambda: holders(dsn, schema) == SPLIT, "the group re-formed", procs=(a, b))
    finally:
        results = stop_all(a, b)
        plog.close()
    for p, (_, err) in zip((a, b), results, strict=True):
        assert p.returncode == 0, err[-2000:]
    assert_exactly_once(plog, data)


@pytest.mark.slow
def test_a_member_started_while_postgres_is_down_joins_once_it_is_back(private_postgres, tmp_path):  # noqa: F811
    dsn, schema = private_postgres.endpoint, "group_late"
    plog = postgres_partitions(dsn, schema, PARTITIONS)
    data = tmp_path / "data"
    data.mkdir()
    for k in range(PARTITIONS):
        CountingProjection(partition_path(data, k)).close()
    (data / "memledger.toml").write_text(
        f'[log]\nbackend = "postgres"\ndsn = "{dsn}"\nschema = "{schema}"\nconnect_timeout = 1\n\n'
        '[consumers.views.counter]\nfactory = "tests.dist_counting:build"\n\n'
        f'[consumers.group]\npartitioned_log = "tests.group_partitions:from_config"\npartitions = {PARTITIONS}\n'
    )
    write(plog, 10)
    plog.close()
    private_postgres.ctl("stop")
    a = member(data, "a")
    try:
        time.sleep(2)  # let it meet the outage (not a timing claim: it must simply not have given up)
        assert a.poll() is None, a.communicate()[1][-2000:]
        private_postgres.ctl("start")
        wait_for(lambda: checkpoints(data) == list(plog.heads()), "catch-up once PostgreSQL is back", procs=(a,))
    finally:
        ((_, err),) = stop_all(a)
    assert a.returncode == 0, err[-2000:]
    assert "retrying" in err
    assert_exactly_once(plog, data)
