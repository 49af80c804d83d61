"""The Kafka log's acceptance rule: which commits of the sequencer topic extend the ledger.

A pure function of the broker's order, with no I/O, so every reader in every process applies it to
the same records and derives the same ledger. A commit (``base``, ``prev``, event ``ids``, data
record locations) is accepted exactly when

1. it claims the next global offset (``base == head + 1``) and chains onto the accepted head
   (``prev == head hash``): otherwise it lost a race and is ignored;
2. every data record it names is present and holds the event it names: the next offsets in order,
   the ids in order and never seen before, each event's ``prev_hash`` the hash before it, each
   record's ``pprev`` the partition's last accepted hash, and each event's hash the chain hash of
   its own content (so a forged record is refused).

``KafkaLog`` fetches the records and applies the verdicts; ``tests/test_kafka_acceptance.py``
checks the rule with property tests that need no broker.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import orjson

from ledger.canonical import GENESIS_HASH, canonical_bytes, chain_hash
from ledger.events import Event


@dataclass(frozen=True, slots=True)
class Commit:
    """One sequencer record: a batch's claim on the next offsets."""

    base: int
    prev: str
    ids: tuple[str, ...]
    locs: tuple[tuple[int, int], ...]  # (data partition, Kafka offset) of each event's record


@dataclass(frozen=True, slots=True)
class DataRecord:
    """One decoded data record: the event, its canonical payload bytes and the partition chain link."""

    event: Event
    payload_bytes: bytes
    pprev: str


@dataclass(slots=True)
class Head:
    """What the accepted ledger looks like so far (what the rule needs of it)."""

    offset: int = -1
    hash: str = GENESIS_HASH
    part_hash: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a commit was accepted; when it was, the partition hashes after it; else why not."""

    accepted: bool
    part_hash: dict[int, str] = field(default_factory=dict)
    problem: str | None = None  # set when a commit that claimed the next offset was refused


def parse_commit(value: bytes) -> Commit | None:
    """The commit a sequencer record holds, or None when it is not one."""
    try:
        d = orjson.loads(value)
        return Commit(
            int(d["base"]),
            str(d["prev"]),
            tuple(str(i) for i in d.get("ids", [])),
            tuple((int(p), int(o)) for p, o in d["loc"]),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def claims_next(head: Head, commit: Commit) -> bool:
    """Rule 1: the commit claims exactly the next offset and chains onto the accepted head."""
    return commit.base == head.offset + 1 and commit.prev == head.hash


def hash_ok(e: Event, payload_bytes: bytes) -> bool:
    """True when the record's hash is the chain hash of its own content (rogue records are refused)."""
    return canonical_bytes(e.payload) == payload_bytes and e.hash == chain_hash(
        e.prev_hash,
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
        payload_bytes,
    )


def judge(head: Head, commit: Commit, records: Sequence[DataRecord | None], seen: Callable[[str], bool]) -> Verdict:
    """Rules 1 and 2 for one commit. ``records[i]`` is the decoded record at ``commit.locs[i]`` (None:
    missing or not an event); ``seen(event_id)`` tells whether an id is already accepted."""
    if not claims_next(head, commit):
        return Verdict(False)
    if (
        len(records) != len(commit.locs)
        or len(commit.ids) != len(commit.locs)
        or not commit.locs
        or len(set(commit.ids)) != len(commit.ids)
    ):
        return Verdict(False, problem="the commit's ids and record locations do not match")
    prev = head.hash
    part_hash = dict(head.part_hash)
    for i, ((p, off), rec) in enumerate(zip(commit.locs, records, strict=True)):
        if rec is None:
            return Verdict(False, problem=f"data record [{p}]@{off} is missing or not an event")
        e = rec.event
        if (
            e.offset != head.offset + 1 + i
            or e.prev_hash != prev
            or e.event_id != commit.ids[i]
            or seen(e.event_id)
            or rec.pprev != part_hash.get(p, GENESIS_HASH)
            or not hash_ok(e, rec.payload_bytes)
        ):
            return Verdict(False, problem=f"data record [{p}]@{off} does not match")
        part_hash[p] = e.hash
        prev = e.hash
    return Verdict(True, part_hash)
