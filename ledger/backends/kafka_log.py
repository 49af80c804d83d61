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

Reads are served from the handle's local state (``kafka_state.LocalState``): a SQLite cache of
the accepted events it has tailed from both topics, kept in the data directory, so memory stays
bounded and a reopened handle reads only the tail since its last position; the cache is rebuilt
from the topics when it is missing or its head no longer matches them (see docs/distributed.md).
Kafka's ListOffsets "latest" is not relied on (wrong on some brokers); freshness comes from the fetch high watermark.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from ledger.backends.kafka_acceptance import Commit, DataRecord, Head, claims_next, judge, parse_commit
from ledger.backends.kafka_lease import KafkaGroupLease
from ledger.backends.kafka_state import LocalState
from ledger.canonical import GENESIS_HASH, canonical_bytes
from ledger.chain import VerifyResult, check_expected, prepare, resolve_retry, seal, verify_rows
from ledger.config import Config
from ledger.errors import BackendUnavailable, InvalidRequest, LedgerError
from ledger.events import Event, NewEvent
from ledger.log import LogBase
from ledger.partitions.routing import crc_partition
from ledger.schema_registry import SchemaRegistry, default_registry

MAX_ATTEMPTS = 50
FETCH_WAIT_MS = 5  # how long the broker may hold an empty fetch; bounds read staleness checks
DATA_WAIT_S = 30.0  # how long a read waits without any record arriving
BUFFER_RECORDS = 5_000  # fetched records held per topic partition before it pauses
READ_PAGE = 1000  # events a read takes from the local state at a time


class KafkaLogError(BackendUnavailable):
    """The Kafka cluster could not be reached, timed out, or is too contended to accept a commit."""


def partition_of(stream: str, partitions: int) -> int:
    """The data partition of a stream (cube): CRC-32 of its UTF-8 name modulo ``partitions``
    (``ledger.partitions.routing.crc_partition``; the data topic has no ``_system`` exception)."""
    return crc_partition(stream, partitions)


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
        state_path: str | Path | None = None,
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
                # kafka-python's CRC-32C is pure Python (most of a replay's time); every accepted
                # record is checked against its own chain hash instead (kafka_acceptance.hash_ok)
                check_crcs=False,
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
        self._lock = threading.RLock()
        self._pending_seq: deque = deque()  # sequencer records fetched but not applied yet
        self._data: dict[int, OrderedDict[int, Any]] = {p: OrderedDict() for p in range(self.partitions)}
        self._deadline = 0.0
        self._state = LocalState(Path(state_path) if state_path is not None else None, topic, _decode_event)
        try:
            self._open_state()
            self._sync()
        except BaseException:
            self._state.close()
            self._consumer.close()
            self._producer.close(timeout=1)
            raise

    def _open_state(self) -> None:
        """Resume from the local state when it still matches the topics, else rebuild from offset 0."""
        st = self._state
        if st.restored and st.head >= 0 and self._matches_topics():
            self._consumer.seek(self._seq_tp, st.seq_pos)
            for p, tp in enumerate(self._data_tps):
                self._consumer.seek(tp, st.part_last.get(p, -1) + 1)
            self.opened_from = "local state"
            return
        st.clear()
        self._pending_seq.clear()
        for bucket in self._data.values():
            bucket.clear()
        self._consumer.seek_to_beginning()
        self.opened_from = "topic"

    def _matches_topics(self) -> bool:
        """True when the data record of the local head still holds the head's hash: the topics
        were not reset or replaced since the local state was written."""
        st = self._state
        pos = st.position(st.head)
        if pos is None or pos[0] >= self.partitions:
            return False
        p, koff = pos
        tp = self._data_tps[p]
        self._consumer.pause(*[t for t in (self._seq_tp, *self._data_tps) if t != tp])
        try:
            self._consumer.seek(tp, koff)
            deadline = time.monotonic() + DATA_WAIT_S
            while time.monotonic() < deadline:
                got = self._consumer.poll(timeout_ms=50).get(tp, [])
                st.fetched += len(got)
                for r in got:
                    if r.offset == koff:
                        try:
                            return _decode_event(r.value)[0].hash == st.head_hash
                        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                            return False
                    if r.offset > koff:
                        return False
                hw = self._consumer.highwater(tp)
                if hw is not None and hw <= koff:
                    return False
            raise KafkaLogError(f"timed out reading {self.topic} from {self.bootstrap_servers}")
        finally:
            self._consumer.resume(*self._consumer.paused())

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
                try:
                    self._consumer.close()
                finally:
                    self._state.close()

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
    def _poll(self, timeout_ms: int, need: int | None = None) -> int:
        """Fetch what the broker has. At most ``BUFFER_RECORDS`` fetched-but-unapplied records are
        kept per topic partition (memory stays bounded while the other topic catches up): the rest
        is dropped and fetched again later (the partition seeks back), except on data partition
        ``need``, which the caller waits on."""
        got = self._consumer.poll(timeout_ms=timeout_ms)
        n = 0
        for tp, records in got.items():
            n += len(records)
            if tp.topic == self.seq_topic:
                kept = records[: max(BUFFER_RECORDS - len(self._pending_seq), 0)]
                self._pending_seq.extend(kept)
            else:
                bucket = self._data[tp.partition]
                room = len(records) if tp.partition == need else max(BUFFER_RECORDS - len(bucket), 0)
                kept = records[:room]
                for r in kept:
                    bucket[r.offset] = r
            if len(kept) < len(records):
                self._consumer.seek(tp, records[len(kept)].offset)
        self._state.fetched += n
        if n:
            self._deadline = max(self._deadline, time.monotonic() + DATA_WAIT_S)
        return n

    def _forget_highwater(self) -> None:
        """Drop the sequencer's known high watermark, so the next one comes from a fetch answered
        after this point. A strict sync waits for two such answers: the second answers a fetch sent
        after the call began, so its high watermark covers every commit acknowledged before it (the
        high watermark kafka-python keeps is the last fetch response's, and under load the last one
        can predate other writers' commits: a handle then read 0 of 60 acknowledged events)."""
        state = self._consumer._subscription.assignment.get(self._seq_tp)  # no public way to reset it
        if state is not None:
            state.highwater = None

    def _caught_up(self) -> bool:
        for tp in (self._seq_tp,):
            hw = self._consumer.highwater(tp)
            if hw is None or self._consumer.position(tp) < hw:
                return False
        return True

    def _sync(self, until_seq: int | None = None, strict: bool = True, max_wait_s: float = DATA_WAIT_S) -> None:
        """Apply the sequencer records fetched so far, and persist them to the local state.

        ``until_seq``: keep fetching until the commit at that sequencer offset is applied.
        ``strict``: keep fetching until a fetch made during this call came back empty at the high
        watermark, so everything committed before the call is visible (costs one fetch wait).
        Otherwise only what is already buffered is applied (appends: a stale view only costs a
        lost race, never a wrong answer). The deadline moves on while records keep arriving.
        """
        with self._lock:
            try:
                self._sync_locked(until_seq, strict, max_wait_s)
            finally:
                self._state.commit()

    def _sync_locked(self, until_seq: int | None, strict: bool, max_wait_s: float) -> None:
        self._deadline = time.monotonic() + max_wait_s
        fresh = 0  # sequencer fetch responses received since this call forgot the high watermark
        if until_seq is None and strict:
            self._forget_highwater()
        self._poll(0)
        self._apply_pending()
        while True:
            if until_seq is not None:
                if self._state.seq_pos > until_seq:
                    return
            elif not strict:
                return
            n = self._poll(2 * FETCH_WAIT_MS)
            self._apply_pending()
            if until_seq is None and fresh < 2 and self._consumer.highwater(self._seq_tp) is not None:
                fresh += 1
                if fresh < 2:
                    self._forget_highwater()  # that response may answer a fetch sent before this call
            if until_seq is None and fresh >= 2 and n == 0 and self._caught_up() and not self._pending_seq:
                return
            if time.monotonic() > self._deadline:
                raise KafkaLogError(f"timed out reading {self.seq_topic} from {self.bootstrap_servers}")

    def _apply_pending(self) -> None:
        st = self._state
        while self._pending_seq:
            rec = self._pending_seq[0]
            if rec.offset < st.seq_pos:
                self._pending_seq.popleft()
                continue
            commit = parse_commit(rec.value)
            if commit is None:
                st.note_problem(f"{self.seq_topic}@{rec.offset}: not a commit record")
            elif not claims_next(self._head(), commit):
                st.rejected += 1
            else:
                if not self._await_data(list(commit.locs)):
                    return  # retried after the next poll
                self._accept(rec.offset, commit)
            st.seq_pos = rec.offset + 1
            self._pending_seq.popleft()

    def _head(self) -> Head:
        st = self._state
        return Head(st.head, st.head_hash, st.part_hash)

    def _await_data(self, locs: list[tuple[int, int]]) -> bool:
        for p, off in locs:
            if p >= self.partitions:
                return True  # reported as a problem in _accept
            while off not in self._data[p]:
                if time.monotonic() > self._deadline:
                    raise KafkaLogError(f"data record {self.topic}[{p}]@{off} named by a commit never arrived")
                pos = self._consumer.position(self._data_tps[p])
                if pos is not None and pos > off:
                    return True  # consumed already but absent: reported in _accept
                self._poll(50, need=p)
        return True

    def _accept(self, seq_offset: int, commit: Commit) -> None:
        st = self._state
        records = [self._record(p, off) for p, off in commit.locs]
        verdict = judge(self._head(), commit, records, st.has_id)
        if not verdict.accepted:
            st.rejected += 1
            if verdict.problem is not None:
                st.note_problem(f"commit {self.seq_topic}@{seq_offset}: {verdict.problem}")
            return
        for rec, (p, off) in zip(records, commit.locs, strict=True):
            if rec is None:
                continue
            st.add(rec.event, self._data[p][off].value, p, off)
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
                existing = st.by_ids(ids)
                retry = resolve_retry(prepared, existing)
                if retry is not None:
                    return retry
                streams = {p.new.stream for p in prepared} | set(expected_versions or ())
                versions = {s: st.stream_version_at(s, st.head) for s in streams}
                check_expected(expected_versions, versions)
                sealed = seal(prepared, st.head, st.head_hash, st.last_ts, versions, self.clock)
                part_hash = dict(st.part_hash)
                base, prev = st.head + 1, st.head_hash
            seq_offset = self._produce(sealed, part_hash, base, prev)
            with self._lock:
                self._sync(until_seq=seq_offset)
                got = self._state.by_ids(ids)
                if len(got) == len(ids) and got[ids[0]].offset == base and got[ids[0]].hash == sealed[0][0].hash:
                    return [got[i] for i in ids]
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
    def _snapshot(self) -> LocalState:
        self._sync()
        return self._state

    def _held(self, end: int | None) -> LocalState:
        """This handle's state if it already holds offsets up to ``end``, else a fresh snapshot."""
        return self._state if end is not None and end <= self._state.head else self._snapshot()

    def _pages(self, page: Callable[[int], list[Event]]) -> Iterator[Event]:
        """Events from ``page(after)`` calls (each under the lock), a bounded page at a time."""
        after = -1
        while True:
            with self._lock:
                got = page(after)
            yield from got
            if len(got) < READ_PAGE:
                return
            after = got[-1].offset

    def read(self, start: int = 0, end: int | None = None) -> Iterator[Event]:
        with self._lock:
            st = self._held(end)  # a range this handle already holds needs no round trip
            stop = st.head if end is None else min(end, st.head)
        first = max(start, 0)

        def page(after: int) -> list[Event]:
            lo = max(first, after + 1)
            return self._state.range(lo, min(stop, lo + READ_PAGE - 1))

        return self._pages(page)

    def read_stream(self, stream: str, start_version: int = 1, end_offset: int | None = None) -> Iterator[Event]:
        with self._lock:
            st = self._held(end_offset)
            stop = st.head if end_offset is None else min(end_offset, st.head)
        return self._pages(lambda after: self._state.stream_page(stream, max(start_version, 1), stop, after, READ_PAGE))

    def read_refs(self, ref: str, end_offset: int | None = None) -> Iterator[Event]:
        with self._lock:
            st = self._held(end_offset)
            stop = st.head if end_offset is None else min(end_offset, st.head)
        return self._pages(lambda after: self._state.refs_page(ref, stop, after, READ_PAGE))

    def get_by_id(self, event_id: str) -> Event | None:
        with self._lock:
            return self._snapshot().by_ids([event_id]).get(event_id)

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
            st = self._snapshot()
            return st.stream_version_at(stream, st.head)

    def stream_version_at(self, stream: str, offset: int) -> int:
        """Version of ``stream`` counting only events at or below ``offset`` (branch fork points)."""
        with self._lock:
            return self._held(offset).stream_version_at(stream, offset)

    def streams(self) -> list[str]:
        """Every stream (cube) that has events."""
        with self._lock:
            return self._snapshot().streams()

    def offset_at(self, ts_us: int) -> int:
        with self._lock:
            return self._snapshot().offset_at(ts_us)

    def position(self, offset: int) -> tuple[int, int]:
        """The (partition, Kafka offset) of the data record holding global offset ``offset``."""
        with self._lock:
            st = self._snapshot()
            pos = st.position(offset) if 0 <= offset <= st.head else None
            if pos is None:
                raise InvalidRequest(f"offset {offset} is out of range (head is {st.head})")
            return pos

    def partition_heads(self) -> dict[int, int]:
        """For each data partition, the Kafka offset of its last accepted record (-1: none)."""
        with self._lock:
            st = self._snapshot()
            return {p: st.part_last.get(p, -1) for p in range(self.partitions)}

    def subscribe(self, start: int = 0, poll_interval: float = 0.2, stop: object = None) -> Iterator[Event]:
        nxt = start
        while stop is None or not stop.is_set():  # type: ignore[attr-defined]
            batch = list(self.read(nxt, nxt + READ_PAGE - 1))
            for ev in batch:
                yield ev
                nxt = ev.offset + 1
                if stop is not None and stop.is_set():  # type: ignore[attr-defined]
                    return
            if not batch:
                time.sleep(poll_interval)

    def stats(self) -> dict[str, object]:
        """Sequencer position, lost races, problems seen while reading and the local state's use."""
        with self._lock:
            st = self._snapshot()
            return {
                "head": st.head,
                "seq_position": st.seq_pos,
                "rejected_commits": st.rejected,
                "problems": list(st.problems),
                "partitions": self.partitions,
                "opened_from": self.opened_from,
                "records_fetched": st.fetched,
                "cached_events": st.cached(),
                "buffered_records": len(self._pending_seq) + sum(len(b) for b in self._data.values()),
                "state_path": str(st.path),
            }

    def lease(self, view: str, data_dir: str | Path) -> KafkaGroupLease:
        """Membership of a consumer group on the sequencer topic: consumers on any machine share it."""
        return KafkaGroupLease(self.bootstrap_servers, self.topic, view)

    # -- verification ------------------------------------------------------------------
    def verify(self) -> VerifyResult:
        """Recompute the ledger-wide chain and every partition's ``pprev`` chain from the records.

        Records are re-read from the broker by a fresh handle (with a fresh temporary local
        state), so the check covers what the cluster stores, not this handle's cache.
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
                for e, pb in st.raw_rows()
            )
            result = verify_rows(rows)
            if result.ok and st.problems:
                return VerifyResult(
                    False, result.checked, result.head, result.head_hash, result.head + 1, "; ".join(st.problems[:5])
                )
            return result
        finally:
            fresh.close()


def state_file(data_dir: str | Path, topic: str) -> Path:
    """Where a data directory keeps the local state of its handle on ``topic``."""
    return Path(data_dir) / f"kafka-{topic}.state.sqlite"


def kafka_settings(config: Config) -> dict[str, Any]:
    """``[log]`` of a Kafka ledger: ``bootstrap_servers`` (or ``$MEMLEDGER_KAFKA``), ``topic``,
    ``partitions`` (the data topic's), ``replication_factor``, ``connect_timeout``."""
    section = config.section("log")
    servers = os.environ.get("MEMLEDGER_KAFKA") or section.get("bootstrap_servers")
    if not servers:
        raise InvalidRequest('[log] backend = "kafka" needs bootstrap_servers = "host:port" (or $MEMLEDGER_KAFKA)')
    return {
        "servers": str(servers),
        "topic": str(section.get("topic", "memledger")),
        "partitions": int(section.get("partitions", 4)),
        "replication_factor": int(section.get("replication_factor", 1)),
        "connect_timeout": float(section.get("connect_timeout", 10.0)),
    }


def from_config(config: Config) -> KafkaLog:
    """Factory used by ``ledger.factory``: ``[log] bootstrap_servers``, ``topic``, ``partitions``;
    the handle keeps its local state in the data directory (``kafka-<topic>.state.sqlite``)."""
    k = kafka_settings(config)
    return KafkaLog(
        k["servers"],
        topic=k["topic"],
        partitions=k["partitions"],
        replication_factor=k["replication_factor"],
        connect_timeout=k["connect_timeout"],
        state_path=state_file(config.data_dir, k["topic"]),
    )
