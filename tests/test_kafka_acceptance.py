"""The Kafka log's acceptance rule as a pure function: property tests over simulated writers, racing
commits, forged and orphaned records, with no broker (``ledger/backends/kafka_acceptance.py``)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.backends.kafka_acceptance import Commit, DataRecord, Head, claims_next, judge, parse_commit
from ledger.canonical import GENESIS_HASH
from ledger.chain import prepare, seal, verify_rows
from ledger.events import Event, NewEvent
from ledger.schema_registry import default_registry

PARTITIONS = 3


def _partition(stream: str) -> int:
    return sum(stream.encode()) % PARTITIONS


@dataclass
class Ledger:
    """What a reader derives: accepted events and the head the rule needs."""

    head: Head = field(default_factory=Head)
    events: list[Event] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)
    versions: dict[str, int] = field(default_factory=dict)

    def apply(self, commit: Commit, records: list[DataRecord | None]) -> bool:
        ids = {e.event_id for e in self.events}
        verdict = judge(self.head, commit, records, ids.__contains__)
        if verdict.accepted:
            for r in records:
                assert r is not None
                self.events.append(r.event)
                self.raw.append(r.payload_bytes)
                self.versions[r.event.stream] = r.event.version
            self.head = Head(self.events[-1].offset, self.events[-1].hash, verdict.part_hash)
        return verdict.accepted


@dataclass
class Writer:
    """A writer with a (possibly stale) copy of the accepted ledger."""

    name: str
    seen: Ledger = field(default_factory=Ledger)
    n: int = 0

    def sync(self, truth: Ledger) -> None:
        self.seen = Ledger(
            replace(truth.head, part_hash=dict(truth.head.part_hash)),
            list(truth.events),
            list(truth.raw),
            dict(truth.versions),
        )

    def batch(self, size: int, streams: list[str]) -> tuple[Commit, list[DataRecord]]:
        news = []
        for i in range(size):
            self.n += 1
            news.append(
                NewEvent(
                    streams[i % len(streams)],
                    "memory.added",
                    {"memory_id": f"{self.name}-{self.n}", "text": f"memory {self.name} {self.n}"},
                    self.name,
                    event_id=f"{self.name}-{self.n:06d}",
                )
            )
        prepared = prepare(default_registry(), news)
        head = self.seen.head
        last_ts = self.seen.events[-1].ts_us if self.seen.events else 0
        sealed = seal(prepared, head.offset, head.hash, last_ts, dict(self.seen.versions))
        part_hash = dict(head.part_hash)
        records = []
        for e, pb in sealed:
            p = _partition(e.stream)
            records.append(DataRecord(e, pb, part_hash.get(p, GENESIS_HASH)))
            part_hash[p] = e.hash
        locs = tuple((_partition(e.stream), hash(e.event_id) & 0xFFFF) for e, _ in sealed)
        return Commit(head.offset + 1, head.hash, tuple(e.event_id for e, _ in sealed), locs), records


step = st.tuples(st.sampled_from(["sync", "commit"]), st.integers(0, 2), st.integers(1, 4))


@settings(max_examples=150, deadline=None)
@given(st.lists(step, min_size=1, max_size=40))
def test_racing_writers_yield_one_gap_free_verifiable_chain(steps):
    truth, other = Ledger(), Ledger()  # two readers of the same broker order
    writers = [Writer(f"w{i}") for i in range(3)]
    for action, who, size in steps:
        w = writers[who]
        if action == "sync":
            w.sync(truth)
            continue
        commit, records = w.batch(size, ["alice", "bob", "carol"])
        expected = commit.base == truth.head.offset + 1 and commit.prev == truth.head.hash
        assert claims_next(truth.head, commit) is expected
        accepted = truth.apply(commit, list(records))
        assert accepted is expected  # honest records: accepted exactly when the claim is the next one
        assert other.apply(commit, list(records)) is accepted  # every reader derives the same ledger
        if accepted:
            w.sync(truth)
    assert [e.offset for e in truth.events] == list(range(len(truth.events)))
    assert [e.hash for e in truth.events] == [e.hash for e in other.events]
    rows = [
        (
            e.offset,
            e.stream,
            e.version,
            e.event_id,
            e.type,
            e.schema_version,
            e.ts_us,
            e.actor,
            e.causation_id,
            e.correlation_id,
            pb,
            e.prev_hash,
            e.hash,
        )
        for e, pb in zip(truth.events, truth.raw, strict=True)
    ]
    assert verify_rows(rows).ok
    for stream in {e.stream for e in truth.events}:  # stream versions are gap-free too
        assert [e.version for e in truth.events if e.stream == stream] == list(
            range(1, 1 + sum(1 for e in truth.events if e.stream == stream))
        )


def _forgeries(records: list[DataRecord], commit: Commit):
    first = records[0]
    yield (
        "payload edited",
        commit,
        [replace(first, payload_bytes=first.payload_bytes.replace(b"memory", b"memorY")), *records[1:]],
    )
    yield "hash forged", commit, [replace(first, event=replace(first.event, hash="ab" * 32)), *records[1:]]
    yield "wrong partition link", commit, [replace(first, pprev="cd" * 32), *records[1:]]
    yield "record missing", commit, [None, *records[1:]]
    yield "ids reordered", replace(commit, ids=tuple(reversed(commit.ids))), records
    yield "id repeated", replace(commit, ids=(commit.ids[0],) * len(commit.ids)), records
    yield "fewer locations", replace(commit, locs=commit.locs[:-1]), records[:-1]
    yield "chains onto another head", replace(commit, prev="ef" * 32), records


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 5))
def test_forged_or_incomplete_commits_that_claim_the_next_offset_are_refused(size):
    truth = Ledger()
    w = Writer("w")
    commit, records = w.batch(size, ["alice", "bob"])
    for why, bad_commit, bad_records in _forgeries(records, commit):
        assert truth.apply(bad_commit, list(bad_records)) is False, why
        assert truth.events == []
    assert truth.apply(commit, list(records)) is True
    again = Ledger(truth.head, list(truth.events))
    assert again.apply(commit, list(records)) is False  # a replayed commit no longer claims the next offset


def test_parse_commit_refuses_what_is_not_a_commit():
    good = orjson.dumps({"base": 0, "prev": GENESIS_HASH, "ids": ["a"], "loc": [[0, 5]]})
    assert parse_commit(good) == Commit(0, GENESIS_HASH, ("a",), ((0, 5),))
    for bad in (
        b"not json",
        b"[]",
        orjson.dumps({"base": 0}),
        orjson.dumps({"base": "x", "prev": "", "loc": []}),
        orjson.dumps({"base": 0, "prev": "", "loc": [[0]]}),
    ):
        assert parse_commit(bad) is None
