"""Issue 12, retention and derived scope: the scheduler expires memories by rule (delete or erase),
skips held ones and records the refusal once, and its decisions replay identically from the log; a
scheduler merge inherits its sources' scope, so a scoped search still finds it."""

from __future__ import annotations

import time

import pytest

from ledger.errors import InvalidRequest
from ledger.governance.holds import HOLDS_STREAM, place_hold
from ledger.memory_state import fold
from ledger.memos.retention import RetentionRule, parse_duration
from ledger.memos.scheduler import run, verify_replay
from ledger.memos.scheduler_policy import SchedulerPolicy
from projections.view_set import ViewSet

QUIET = {"tick_every_s": 0, "promote_min_reads": 99, "merge_threshold": 1.0, "archive_after_s": 10**9}


def _policy(**kw) -> SchedulerPolicy:
    return SchedulerPolicy.from_dict({**QUIET, **kw})


def test_retention_deletes_and_erases_by_rule_and_replays(data_dir_ledger):
    led = data_dir_ledger
    rules = [
        {"cube": "c", "where": {"user_id": "u1"}, "after": "0.2s", "action": "delete"},
        {"cube": "c", "where": {"user_id": "u2"}, "after": 0.2, "action": "erase"},
    ]
    policy = _policy(retention=rules)
    old1 = led.add("c", "u1 said something old", "agent", metadata={"user_id": "u1"})
    old2 = led.add("c", "u2 said something old", "agent", metadata={"user_id": "u2"})
    other = led.add("c", "u3 is not covered", "agent", metadata={"user_id": "u3"})
    held = led.add("c", "u1 said something held", "agent", metadata={"user_id": "u1"})
    hold = place_hold(led.log, "legal", "case 9", memory_id=held.id)
    assert run(led, policy, tick=False).plan.decisions == []  # too young yet
    time.sleep(0.3)
    result = run(led, policy)
    kinds = {(d.kind, d.action, d.memory_ids) for d in result.plan.decisions}
    assert kinds == {("expire", "delete", (old1.id,)), ("expire", "erase", (old2.id,)), ("hold", None, (held.id,))}
    assert result.problems == []
    states = led.cube_memories("c")
    assert set(states) == {other.id, held.id}
    assert all(v.text is None for v in led.history(old2.id))  # erased: no version readable
    assert led.get(old1.id, as_of=old1.offset).text == "u1 said something old"  # deleted: the past still reads
    refused = [e for e in led.log.read_stream(HOLDS_STREAM) if e.type == "hold.refused"]
    assert len(refused) == 1 and refused[0].payload["operation"] == "retention"
    assert refused[0].payload["hold_ids"] == [hold.hold_id] and refused[0].actor == "scheduler"
    again = run(led, policy)
    assert again.plan.decisions == []  # the refusal is recorded once per hold, not every run
    # the decisions recompute from the log prefix and the recorded policy: the same, both times
    same, recorded, recomputed = verify_replay(led, result.plan.basis_offset)
    assert same and recorded == recomputed and len(recorded) == 3
    # and a fresh fold of the whole log gives the same memories as the ledger serves
    fresh = {k: v for k, v in fold(led.events(), led.opener).items() if v.exists and v.cube == "c"}
    assert set(fresh) == set(states)


def test_retention_rules_are_checked():
    with pytest.raises(InvalidRequest, match="duration"):
        parse_duration("ninety days")
    with pytest.raises(InvalidRequest, match="action"):
        RetentionRule(10, "shred")
    with pytest.raises(InvalidRequest, match="unknown retention rule"):
        SchedulerPolicy.from_dict({"retention": [{"after": "1d", "when": "x"}]})
    with pytest.raises(InvalidRequest, match="unknown operator"):
        SchedulerPolicy.from_dict({"retention": [{"after": "1d", "where": {"a": {"$like": 1}}}]})
    with pytest.raises(InvalidRequest, match="could not be replayed"):
        RetentionRule(10, "delete", where={"$or": [{"user_id": "u"}, {"topic": "x"}]})
    p = SchedulerPolicy.from_dict({"retention": [{"after": "2w", "cube": "c"}]})
    assert p.retention[0].after_s == 14 * 86400 and SchedulerPolicy.from_dict(p.to_dict()) == p


def test_a_scheduler_merge_inherits_its_sources_scope_and_scoped_search_finds_it(data_dir_ledger):
    led = data_dir_ledger
    a = led.add("c", "the user prefers window seats on long flights", "agent", metadata={"user_id": "u1", "topic": "t"})
    b = led.add(  # a near duplicate (add refuses one by default): what the scheduler's merge exists for
        "c",
        "the user prefers window seats on long flights!",
        "agent",
        metadata={"user_id": "u1", "run": 1},
        allow_duplicate=True,
    )
    led.add("c", "someone else likes aisle seats", "agent", metadata={"user_id": "u2"})
    result = run(led, _policy(merge_threshold=0.8))
    [merge] = [d for d in result.plan.decisions if d.kind == "merge"]
    merged = led.get(merge.merged_into)
    assert merged.metadata == {"user_id": "u1", "topic": "t", "run": 1}
    assert merged.sealed and sorted(merged.derived_from) == sorted([a.id, b.id])
    source_keys = {k["key_id"] for m in (a.id, b.id) for k in led.get(m).keys if k["scope"] == "memory"}
    assert source_keys <= {k["key_id"] for k in merged.keys}  # erasing either source erases the merge
    with ViewSet.open(led, kinds=["keyword", "graph"]) as views:
        hits = views.search("window seats", cube="c", metadata={"user_id": "u1"})
    assert [h.memory_id for h in hits] == [merged.memory_id]
