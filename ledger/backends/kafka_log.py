"""Kafka log backend: one data topic per ledger partitioned by cube, plus a sequencer topic.

Topics (``[log] topic``, default ``memledger``):

* ``<topic>`` — the events, ``partitions`` partitions, the partition of an event chosen from
  its stream (cube) by CRC-32, so one cube's events stay in one partition, in order. Each
  record is one sealed event; its (partition, Kafka offset) is its *position*. Consumer
  groups over this topic scale projections by cube.
* ``<topic>.seq`` — one partition of small *commit* records. A commit names a batch: the
  global offset it claims for its first event (``base``), the hash it chains onto
  (``prev``), the event ids and the positions of their data records.

The ledger-wide sequence (the ``Log`` protocol's global offsets, 0-based and gap-free) is
the order of *accepted* commits on ``<topic>.seq``. A commit is accepted exactly when it
claims ``base == accepted head + 1`` and ``prev == accepted head hash`` and its data records
are present and match; otherwise it lost a race and every reader ignores it. The single
partition gives one broker-assigned order, and the acceptance rule is a pure function of
that order, so every reader in every process derives the same global offsets; a writer
learns whether it won by reading the sequencer up to its own commit. This is first-claim-wins
optimistic concurrency: a loser re-checks its expected stream versions against the new
head (``ConcurrencyConflict`` if they no longer hold), reseals and tries again.

A writer produces its data records first (idempotent producer, ``acks=all``, flushed) and
its commit record second. A crash between the two leaves data records no commit names:
they are invisible orphans, never gaps. Because a commit is accepted only if its writer had
read every earlier accepted commit before producing its data, accepted data records within
one partition appear in global order, so an orphan can be dropped as soon as a later record
of its partition is accepted.

Hash chains: each event's ``hash`` is the ledger-wide chain of ``ledger.chain`` (the same
bytes every backend hashes), and each data record also carries ``pprev``, the hash of the
previous accepted event in the same partition, so one partition can be verified on its own.

Reads are served from an in-process index that a handle builds by tailing both topics
(memory grows with the ledger; see docs/distributed.md). Kafka's ListOffsets "latest" is not
relied on (wrong on some brokers); freshness comes from the fetch high watermark.
"""

from __future__ import annotations

import bisect
import os
import random
import threading
import time
import zlib
from collections import OrderedDict, deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from ledger.backends.kafka_acceptance import Commit, DataRecord, Head, claims_next, judge, parse_commit
from ledger.backends.kafka_lease import KafkaGroupLease
from ledger.canonical import GENESIS_HASH, canonical_bytes
from ledger.chain import VerifyResult, check_expected, prepare, resolve_retry, seal, verify_rows
from ledger.config import Config
from ledger.errors import BackendUnavailable, InvalidRequest, LedgerError
from ledger.events import Event, NewEvent
from ledger.log import LogBase, refs_of
from ledger.schema_registry import SchemaRegistry, default_registry

MAX_ATTEMPTS = 50
FETCH_WAIT_MS = 5  # how long the broker may hold an empty fetch; bounds read staleness checks
DATA_WAIT_S = 30.0


class KafkaLogError(BackendUnavailable):
    """The Kafka cluster could not be reached, timed out, or is too contended to accept a commit."""


def partition_of(stream: str, partitions: int) -> int:
    """The data partition of a stream (cube): CRC-32 of its UTF-8 name modulo ``partitions``."""
    return zlib.crc32(stream.encode()) % partitions


@dataclass(slots=True)
class _State:
    """What one handle has derived from the sequencer and data topics so far."""

    events: list[Event] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)  # canonical payload bytes per offset
    positions: list[tuple[int, int]] = field(default_factory=list)  # (partition, kafka offset) per offset
    ts: list[int] = field(default_factory=list)
    by_id: dict[str, int] = field(default_factory=dict)
    by_stream: dict[str, list[int]] = field(default_factory=dict)
    by_ref: dict[str, list[int]] = field(default_factory=dict)
    part_hash: dict[int, str] = field(default_factory=dict)
    seq_pos: int = 0  # next sequencer offset to apply
    rejected: int = 0  # commits that lost the race
    problems: list[str] = field(default_factory=list)

    @property
    def head(self) -> int:
        return len(self.events) - 1

    @property
    def head_hash(self) -> str:
        return self.events[-1].hash if self.events else GENESIS_HASH

    def stream_version(self, stream: str) -> int:
        return len(self.by_stream.get(stream, ()))


def _encode_event(e: Event, payload_bytes: bytes) -> bytes:
    head = {k: v for k, v in e.to_dict().items() if k not in ("payload", "time")}
    return orjson.dumps(head) + b"\n" + payload_bytes


def _decode_event(value: bytes) -> tuple[Event, bytes]:
    head_bytes, _, payload_bytes = value.partition(b"\n")
    d = orjson.loads(head_bytes)
    d["payload"] = orjson.loads(payload_bytes)
    return Event.from_dict(d), payload_bytes


class KafkaLog(LogBase):
    """A ``Log`` on a Kafka cluster: cube-partitioned data topic, sequencer topic for global order."""

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str = "memledger",
        partitions: int = 4,
        replication_factor: int = 1,
        registry: SchemaRegistry | None = None,
        create_topics: bool = True,
        client_options: Mapping[str, object] | None = None,
        connect_timeout: float = 10.0,
    ):
        from kafka import KafkaConsumer, KafkaProducer, TopicPartition

        if not topic or len(topic) > 200 or not all(c.isalnum() or c in "._-" for c in topic):
            raise InvalidRequest(f"Kafka topic name {topic!r} may only hold letters, digits, '.', '_' and '-'")
        if partitions < 1:
            raise InvalidRequest("partitions must be at least 1")
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.seq_topic = f"{topic}.seq"
        self.registry = registry or default_registry()
        self.writer_id = os.urandom(8).hex()
        self._connect_timeout_ms = int(connect_timeout * 1000)
        opts = dict(client_options or {})
        try:
            if create_topics:
                self._ensure_topics(partitions, replication_factor, opts)
            self._producer = KafkaProducer(
                bootstrap_servers=bootstrap_servers,
                acks="all",
                enable_idempotence=True,
                linger_ms=0,
                max_in_flight_requests_per_connection=5,
                **opts,
            )
            self._consumer = KafkaConsumer(
                bootstrap_servers=bootstrap_servers,
                enable_auto_commit=False,
                fetch_max_wait_ms=FETCH_WAIT_MS,
                max_poll_records=5000,
                **opts,
            )
            self.partitions = len(self._consumer.partitions_for_topic(topic) or ()) or partitions
        except Exception as exc:  # kafka-python raises many unrelated types for "no broker"
            if isinstance(exc, LedgerError):
                raise
            raise KafkaLogError(f"cannot reach Kafka at {bootstrap_servers}: {exc!r}") from None
        self._seq_tp = TopicPartition(self.seq_topic, 0)
        self._data_tps = [TopicPartition(topic, p) for p in range(self.partitions)]
        self._consumer.assign([self._seq_tp, *self._data_tps])
        self._consumer.seek_to_beginning()
        self._lock = threading.RLock()
        self._state = _State()
        self._pending_seq: deque = deque()  # sequencer records fetched but not applied yet
        self._data: dict[int, OrderedDict[int, Any]] = {p: OrderedDict() for p in range(self.partitions)}
        self._sync()

    def _ensure_topics(self, partitions: int, replication_factor: int, opts: dict) -> None:
        from kafka.admin import KafkaAdminClient, NewTopic
        from kafka.errors import TopicAlreadyExistsError

        admin = KafkaAdminClient(
            bootstrap_servers=self.bootstrap_servers, **{"bootstrap_timeout_ms": self._connect_timeout_ms, **opts}
        )
        try:
            existing = set(admin.list_topics())
            wanted = [
                NewTopic(self.topic, partitions, replication_factor),
                NewTopic(self.seq_topic, 1, replication_factor),
            ]
            missing = [t for t in wanted if t.name not in existing]
            if missing:
                try:
                    admin.create_topics(missing)
                except TopicAlreadyExistsError:
                    pass  # another process created them first
        finally:
            admin.close()

    def close(self) -> None:
        if self.reset_guard is not None:
            self.reset_guard.flush()
        with self._lock:
            try:
                self._producer.close(timeout=10)
            finally:
                self._consumer.close()

    def drop(self) -> None:
        """Delete both topics of this ledger (tests and tear-down only)."""
        from kafka.admin import KafkaAdminClient

        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap_servers)
        try:
            admin.delete_topics([self.topic, self.seq_topic])
        except Exception:  # noqa: BLE001 - best effort clean-up
            pass
        finally:
            admin.close()

    # -- tailing the topics --------------------------------------------------------------
    def _poll(self, timeout_ms: int) -> int:
        got = self._consumer.poll(timeout_ms=timeout_ms)
        n = 0
        for tp, records in got.items():
            n += len(records)
            if tp.topic == self.seq_topic:
                self._pending_seq.extend(records)
            else:
                bucket = self._data[tp.partition]
                for r in records:
                    bucket[r.offset] = r
        return n

    def _caught_up(self) -> bool:
        for tp in (self._seq_tp,):
            hw = self._consumer.highwater(tp)
            if hw is None or self._consumer.position(tp) < hw:
                return False
        return True

    def _sync(self, until_seq: int | None = None, strict: bool = True, max_wait_s: float = DATA_WAIT_S) -> None:
        """Apply the sequencer records fetched so far.

        ``until_seq``: keep fetching until the commit at that sequencer offset is applied.
        ``strict``: keep fetching until a fetch made during this call came back empty at the high
        watermark, so everything committed before the call is visible (costs one fetch wait).
        Otherwise only what is already buffered is applied (appends: a stale view only costs a
        lost race, never a wrong answer).
        """
        with self._lock:
            deadline = time.monotonic() + max_wait_s
            self._poll(0)
            self._apply_pending(deadline)
            while True:
                if until_seq is not None:
                    if self._state.seq_pos > until_seq:
                        return
                elif not strict:
                    return
                n = self._poll(2 * FETCH_WAIT_MS)
                self._apply_pending(deadline)
                if until_seq is None and n == 0 and self._caught_up() and not self._pending_seq:
                    return
                if time.monotonic() > deadline:
                    raise KafkaLogError(f"timed out reading {self.seq_topic} from {self.bootstrap_servers}")

    def _apply_pending(self, deadline: float) -> None:
        while self._pending_seq:
            rec = self._pending_seq[0]
            if rec.offset < self._state.seq_pos:
                self._pending_seq.popleft()
                continue
            commit = parse_commit(rec.value)
            if commit is None:
                self._state.problems.append(f"{self.seq_topic}@{rec.offset}: not a commit record")
            elif not claims_next(self._head(), commit):
                self._state.rejected += 1
            else:
                if not self._await_data(list(commit.locs), deadline):
                    return  # retried after the next poll
                self._accept(rec.offset, commit)
            self._state.seq_pos = rec.offset + 1
            self._pending_seq.popleft()

    def _head(self) -> Head:
        st = self._state
        return Head(st.head, st.head_hash, st.part_hash)

    def _await_data(self, locs: list[tuple[int, int]], deadline: float) -> bool:
        for p, off in locs:
            if p >= self.partitions:
                return True  # reported as a problem in _accept
            while off not in self._data[p]:
                if time.monotonic() > deadline:
                    raise KafkaLogError(f"data record {self.topic}[{p}]@{off} named by a commit never arrived")
                pos = self._consumer.position(self._data_tps[p])
                if pos is not None and pos > off:
                    return True  # consumed already but absent: reported in _accept
                self._poll(50)
        return True

    def _accept(self, seq_offset: int, commit: Commit) -> None:
        st = self._state
        records = [self._record(p, off) for p, off in commit.locs]
        verdict = judge(self._head(), commit, records, st.by_id.__contains__)
        if not verdict.accepted:
            st.rejected += 1
            if verdict.problem is not None:
                st.problems.append(f"commit {self.seq_topic}@{seq_offset}: {verdict.problem}")
            return
        batch = [(r.event, r.payload_bytes, loc) for r, loc in zip(records, commit.locs, strict=True) if r is not None]
        for event, pb, (p, off) in batch:
            st.events.append(event)
            st.raw.append(pb)
            st.positions.append((p, off))
            st.ts.append(event.ts_us)
            st.by_id[event.event_id] = event.offset
            st.by_stream.setdefault(event.stream, []).append(event.offset)
            for ref in refs_of(event.payload):
                st.by_ref.setdefault(ref, []).append(event.offset)
            # orphans below an accepted record of the same partition can never be accepted later
            bucket = self._data[p]
            while bucket and next(iter(bucket)) <= off:
                bucket.popitem(last=False)
        st.part_hash = verdict.part_hash

    def _record(self, partition: int, offset: int) -> DataRecord | None:
        """The decoded data record at a location (None: missing or not an event)."""
        bucket = self._data.get(partition)
        rec = bucket.get(offset) if bucket is not None else None
        if rec is None:
            return None
        try:
            event, pb = _decode_event(rec.value)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None
        return DataRecord(event, pb, dict(rec.headers or ()).get("pprev", b"").decode())

    # -- writes ------------------------------------------------------------------------
    def append(self, events: Sequence[NewEvent], expected_versions: Mapping[str, int] | None = None) -> list[Event]:
        if not events:
            return []
        prepared = prepare(self.registry, events)
        if self.reset_guard is not None:
            self.reset_guard.before_append(self)  # a reset or replaced log takes no writes
        out = self._append_prepared(prepared, expected_versions)
        if self.reset_guard is not None:
            self.reset_guard.saw(out[-1].offset, out[-1].hash)
        return out

    def _append_prepared(self, prepared: list[Any], expected_versions: Mapping[str, int] | None) -> list[Event]:
        ids = [p.new.event_id for p in prepared]
        for attempt in range(MAX_ATTEMPTS):
            with self._lock:
                self._sync(strict=attempt > 0)
                st = self._state
                existing = {i: st.events[st.by_id[i]] for i in ids if i in st.by_id}
                retry = resolve_retry(prepared, existing)
                if retry is not None:
                    return retry
                streams = {p.new.stream for p in prepared} | set(expected_versions or ())
                versions = {s: st.stream_version(s) for s in streams}
                check_expected(expected_versions, versions)
                last_ts = st.ts[-1] if st.ts else 0
                sealed = seal(prepared, st.head, st.head_hash, last_ts, versions)
                part_hash = dict(st.part_hash)
                base, prev = st.head + 1, st.head_hash
            seq_offset = self._produce(sealed, part_hash, base, prev)
            with self._lock:
                self._sync(until_seq=seq_offset)
                st = self._state
                if (
                    all(i in st.by_id for i in ids)
                    and st.by_id[ids[0]] == base
                    and st.events[base].hash == sealed[0][0].hash
                ):
                    return [st.events[st.by_id[i]] for i in ids]
            time.sleep(random.uniform(0, 0.002 * (attempt + 1)))  # lost the race: back off, reseal
        raise KafkaLogError(
            f"append lost the sequencer race {MAX_ATTEMPTS} times in a row; the ledger is under heavy contention"
        )

    def _produce(self, sealed: list[tuple[Event, bytes]], part_hash: dict[int, str], base: int, prev: str) -> int:
        futures = []
        for e, pb in sealed:
            p = partition_of(e.stream, self.partitions)
            headers = [("pprev", part_hash.get(p, GENESIS_HASH).encode()), ("writer", self.writer_id.encode())]
            futures.append(
                self._producer.send(
                    self.topic, _encode_event(e, pb), key=e.stream.encode(), partition=p, headers=headers
                )
            )
            part_hash[p] = e.hash
        try:
            self._producer.flush(timeout=30)
            locs = [[m.partition, m.offset] for m in (f.get(timeout=30) for f in futures)]
            commit = {
                "base": base,
                "prev": prev,
                "ids": [e.event_id for e, _ in sealed],
                "loc": locs,
                "last": sealed[-1][0].hash,
                "writer": self.writer_id,
            }
            meta = self._producer.send(self.seq_topic, canonical_bytes(commit), partition=0).get(timeout=30)
        except Exception as exc:  # noqa: BLE001 - surfaced as a ledger error; a retry with the same ids is safe
            raise KafkaLogError(f"producing to {self.topic} failed: {exc!r}; retrying the same batch is safe") from None
        return int(meta.offset)

    # -- reads -------------------------------------------------------------------------
    def _snapshot(self) -> _State:
        self._sync()
        return self._state

    def read(self, start: int = 0, end: int | None = None) -> Iterator[Event]:
        with self._lock:
            st = self._held(end)  # a range this handle already holds needs no round trip
            stop = st.head if end is None else min(end, st.head)
            out = st.events[max(start, 0) : stop + 1]
        return iter(out)

    def _held(self, end: int | None) -> _State:
        """This handle's state if it already holds offsets up to ``end``, else a fresh snapshot."""
        return self._state if end is not None and end <= self._state.head else self._snapshot()

    def read_stream(self, stream: str, start_version: int = 1, end_offset: int | None = None) -> Iterator[Event]:
        with self._lock:
            st = self._held(end_offset)
            offs = st.by_stream.get(stream, [])[max(start_version, 1) - 1 :]
            out = [st.events[o] for o in offs if end_offset is None or o <= end_offset]
        return iter(out)

    def read_refs(self, ref: str, end_offset: int | None = None) -> Iterator[Event]:
        with self._lock:
            st = self._held(end_offset)
            out = [st.events[o] for o in st.by_ref.get(ref, []) if end_offset is None or o <= end_offset]
        return iter(out)

    def get_by_id(self, event_id: str) -> Event | None:
        with self._lock:
            st = self._snapshot()
            o = st.by_id.get(event_id)
            return None if o is None else st.events[o]

    def hashes(self, start: int = 0, end: int | None = None) -> Iterator[str]:
        """Hex hashes of events ``start..end`` in offset order (for Merkle trees)."""
        return (e.hash for e in self.read(start, end))

    def head(self) -> int:
        with self._lock:
            return self._snapshot().head

    def head_hash(self) -> str:
        with self._lock:
            return self._snapshot().head_hash

    def stream_version(self, stream: str) -> int:
        with self._lock:
            return self._snapshot().stream_version(stream)

    def stream_version_at(self, stream: str, offset: int) -> int:
        """Version of ``stream`` counting only events at or below ``offset`` (branch fork points)."""
        with self._lock:
            return bisect.bisect_right(self._held(offset).by_stream.get(stream, []), offset)

    def streams(self) -> list[str]:
        """Every stream (cube) that has events."""
        with self._lock:
            return sorted(self._snapshot().by_stream)

    def offset_at(self, ts_us: int) -> int:
        with self._lock:
            return bisect.bisect_right(self._snapshot().ts, ts_us) - 1

    def position(self, offset: int) -> tuple[int, int]:
        """The (partition, Kafka offset) of the data record holding global offset ``offset``."""
        with self._lock:
            st = self._snapshot()
            if not 0 <= offset <= st.head:
                raise InvalidRequest(f"offset {offset} is out of range (head is {st.head})")
            return st.positions[offset]

    def partition_heads(self) -> dict[int, int]:
        """For each data partition, the Kafka offset of its last accepted record (-1: none)."""
        with self._lock:
            st = self._snapshot()
            heads = {p: -1 for p in range(self.partitions)}
            for p, off in st.positions:
                heads[p] = max(heads[p], off)
            return heads

    def subscribe(self, start: int = 0, poll_interval: float = 0.2, stop: object = None) -> Iterator[Event]:
        nxt = start
        while stop is None or not stop.is_set():  # type: ignore[attr-defined]
            batch = list(self.read(nxt))
            for ev in batch:
                yield ev
                nxt = ev.offset + 1
                if stop is not None and stop.is_set():  # type: ignore[attr-defined]
                    return
            if not batch:
                time.sleep(poll_interval)

    def stats(self) -> dict[str, object]:
        """Sequencer position, lost races and problems seen while reading."""
        with self._lock:
            st = self._snapshot()
            return {
                "head": st.head,
                "seq_position": st.seq_pos,
                "rejected_commits": st.rejected,
                "problems": list(st.problems),
                "partitions": self.partitions,
            }

    def lease(self, view: str, data_dir: str | Path) -> KafkaGroupLease:
        """Membership of a consumer group on the sequencer topic: consumers on any machine share it."""
        return KafkaGroupLease(self.bootstrap_servers, self.topic, view)

    # -- verification ------------------------------------------------------------------
    def verify(self) -> VerifyResult:
        """Recompute the ledger-wide chain and every partition's ``pprev`` chain from the records.

        Records are re-read from the broker by a fresh handle, so the check covers what the
        cluster stores, not this handle's memory.
        """
        fresh = KafkaLog(self.bootstrap_servers, self.topic, create_topics=False, registry=self.registry)
        try:
            st = fresh._snapshot()
            rows = (
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
                for e, pb in zip(st.events, st.raw, strict=True)
            )
            result = verify_rows(rows)
            if result.ok and st.problems:
                return VerifyResult(
                    False, result.checked, result.head, result.head_hash, result.head + 1, "; ".join(st.problems[:5])
                )
            return result
        finally:
            fresh.close()


def from_config(config: Config) -> KafkaLog:
    """Factory used by ``ledger.factory``: ``[log] bootstrap_servers``, ``topic``, ``partitions``."""
    section = config.section("log")
    servers = os.environ.get("MEMLEDGER_KAFKA") or section.get("bootstrap_servers")
    if not servers:
        raise InvalidRequest('[log] backend = "kafka" needs bootstrap_servers = "host:port" (or $MEMLEDGER_KAFKA)')
    return KafkaLog(
        str(servers),
        topic=str(section.get("topic", "memledger")),
        partitions=int(section.get("partitions", 4)),
        replication_factor=int(section.get("replication_factor", 1)),
        connect_timeout=float(section.get("connect_timeout", 10.0)),
    )
