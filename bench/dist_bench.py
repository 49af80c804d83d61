"""Append throughput and projection lag: embedded SQLite vs PostgreSQL vs Kafka, in one run.

Run (servers from infra/up.sh; a backend whose endpoint is not set is reported as skipped):

    infra/up.sh && . infra/run/env.sh
    python -m bench.dist_bench [--events 2000] [--lag-events 300] [--writers 4]
    python -m bench.dist_bench --growth-events 150000 --growth-only   # append rate at 10k vs 150k events

Append: single writer with batches of 1 and of 50 events, then ``--writers`` concurrent writers
(threads, each with its own log handle, batches of 10) on one ledger — the contended case where
PostgreSQL serialises on its head row and Kafka writers race on the sequencer. Schema checks
and hash chaining are on everywhere. SQLite runs with synchronous=FULL; PostgreSQL with
fsync=on (infra default); Kafka (Tansu) keeps data in memory, so its numbers are an upper bound
for a broker that fsyncs or replicates.

Append growth (``--growth-events N``): single-event appends to one PostgreSQL ledger at 10k events and
at N events in the same 8 cubes, beside the time of the per-stream version lookup append runs under
the head lock and of the ``MAX(version) ... GROUP BY stream`` it ran before (issue 16 defect 1).

View catch-up: how fast the real distributed views (Elasticsearch keyword + vector with the
hashing embedder, Neo4j graph) fold memory events read from each log.

Projection lag: a consumer (``consumers.runner.ProjectionConsumer``, batch 500, poll 10 ms) runs
a minimal in-memory projection in a thread while the writer appends batches of 10 at a steady
pace; lag of a batch = time from its append returning to the consumer having applied it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from consumers.runner import ProjectionConsumer
from ledger.api import Ledger
from ledger.events import Event, NewEvent


def _batch(n: int, start: int, writer: int = 0) -> list[NewEvent]:
    return [
        NewEvent(
            f"cube-{(start + i) % 16}",
            "memory.added",
            {
                "memory_id": f"w{writer}-m{start + i}",
                "text": f"memory number {start + i} about tea and travel",
                "metadata": {"source": "bench"},
                "tags": ["bench"],
            },
            "bench",
        )
        for i in range(n)
    ]


def _backends(tmp: Path) -> dict[str, Callable[[str], Any] | None]:
    """name -> factory(ledger_name) -> (log, cleanup); None when not available."""
    from ledger.backends.sqlite_log import SqliteLog

    out: dict[str, Any] = {}

    def sqlite(name: str):
        log = SqliteLog(tmp / f"{name}.sqlite")
        return log, lambda: None

    out["sqlite (embedded)"] = sqlite
    dsn = os.environ.get("MEMLEDGER_TEST_PG_DSN")
    if dsn:
        from ledger.backends.postgres_log import PostgresLog

        def pg(name: str):
            log = PostgresLog(dsn, schema=name)
            return log, log.drop

        out["postgres"] = pg
    else:
        out["postgres"] = None
    servers = os.environ.get("MEMLEDGER_TEST_KAFKA")
    if servers:
        from ledger.backends.kafka_log import KafkaLog

        def kafka(name: str):
            log = KafkaLog(servers, topic=name, partitions=4)
            return log, log.drop

        out["kafka (tansu)"] = kafka
    else:
        out["kafka (tansu)"] = None
    return out


def _name(prefix: str) -> str:
    return f"bench_{prefix}_{os.urandom(4).hex()}"


def append_single(factory, total: int, size: int) -> float:
    log, cleanup = factory(_name("a"))
    try:
        batches = [_batch(size, k * size) for k in range(max(1, total // size))]
        t0 = time.perf_counter()
        for b in batches:
            log.append(b)
        dt = time.perf_counter() - t0
        assert log.head() == len(batches) * size - 1
        return len(batches) * size / dt
    finally:
        log.close()
        cleanup()


def append_concurrent(factory, total: int, writers: int, size: int = 10) -> float:
    name = _name("c")
    main_log, cleanup = factory(name)
    handles = [factory(name)[0] for _ in range(writers)]
    per = max(1, total // (writers * size))
    errors: list[BaseException] = []

    def work(w: int, log) -> None:
        try:
            for k in range(per):
                log.append(_batch(size, k * size, writer=w))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w, h)) for w, h in enumerate(handles)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    dt = time.perf_counter() - t0
    try:
        if errors:
            raise errors[0]
        n = writers * per * size
        assert main_log.head() == n - 1
        return n / dt
    finally:
        for h in handles:
            h.close()
        main_log.close()
        cleanup()


class _Timestamps:
    """Minimal projection: remembers when each offset was applied (in memory)."""

    name = "bench"

    def __init__(self) -> None:
        self.cp = -1
        self.applied_at: dict[int, float] = {}

    def checkpoint(self) -> int:
        return self.cp

    def apply_batch(self, events: Sequence[Event]) -> None:
        now = time.perf_counter()
        for e in events:
            if e.offset > self.cp:
                self.applied_at[e.offset] = now
                self.cp = e.offset

    def reset(self) -> None:
        self.cp = -1
        self.applied_at.clear()

    def close(self) -> None:
        pass


def projection_lag(factory, events: int, pace_s: float = 0.01) -> tuple[float, float, float]:
    """(p50 ms, p95 ms, max ms) from append returning to the consumer having applied the batch."""
    name = _name("l")
    writer_log, cleanup = factory(name)
    reader_log, _ = factory(name)
    view = _Timestamps()
    consumer = ProjectionConsumer(Ledger(reader_log, record_reads=False), view, batch_size=500, poll_interval=0.01)
    stop = threading.Event()
    t = threading.Thread(target=consumer.run, args=(stop,))
    t.start()
    done: list[tuple[int, float]] = []
    try:
        for k in range(max(1, events // 10)):
            out = writer_log.append(_batch(10, k * 10))
            done.append((out[-1].offset, time.perf_counter()))
            time.sleep(pace_s)
        deadline = time.monotonic() + 60
        while view.cp < done[-1][0] and time.monotonic() < deadline:
            time.sleep(0.005)
    finally:
        stop.set()
        t.join(30)
        reader_log.close()
        writer_log.close()
        cleanup()
    lags = sorted((view.applied_at[o] - t_app) * 1000 for o, t_app in done if o in view.applied_at)
    if len(lags) != len(done):
        raise RuntimeError(f"consumer applied {len(lags)} of {len(done)} batches")
    p95 = lags[min(len(lags) - 1, int(0.95 * len(lags)))]
    return statistics.median(lags), p95, lags[-1]


def view_catch_up(factory, view_kind: str, events: int) -> float:
    """Events per second a real distributed view folds from this log (catch-up, batches of 500)."""
    from projections.base import catch_up

    name = _name("v")
    log, cleanup = factory(name)
    ledger = Ledger(log, record_reads=False)
    view: Any = None
    try:
        for k in range(max(1, events // 50)):
            log.append(_batch(50, k * 50))
        if view_kind == "elasticsearch":
            from projections.es_views import ElasticsearchView
            from projections.vector.embedding import HashingEmbedder

            view = ElasticsearchView(
                os.environ["MEMLEDGER_TEST_ES"], ledger, index_prefix=name.replace("_", "-"), embedder=HashingEmbedder()
            )
        else:
            from projections.neo4j_graph import Neo4jGraphView

            view = Neo4jGraphView(os.environ["MEMLEDGER_TEST_NEO4J"], ledger, namespace="B" + name.replace("_", ""))
        t0 = time.perf_counter()
        catch_up(ledger.events, view, batch_size=500)
        dt = time.perf_counter() - t0
        assert view.checkpoint() == log.head()
        return (log.head() + 1) / dt
    finally:
        if view is not None:
            view.reset()
            if view_kind == "elasticsearch":
                view.es.options(ignore_status=404).indices.delete(index=[view.versions_index, view.meta_index])
            view.close()
        log.close()
        cleanup()


GROWTH_CUBES = 8


def _cube_batch(n: int, start: int) -> list[NewEvent]:
    """``n`` memory.added events spread over the same ``GROWTH_CUBES`` cubes."""
    return [
        NewEvent(
            f"grow-{(start + i) % GROWTH_CUBES}",
            "memory.added",
            {"memory_id": f"g{start + i}", "text": f"memory {start + i}", "metadata": {}, "tags": []},
            "bench",
        )
        for i in range(n)
    ]


def _lookup_ms(log: Any, query: str, streams: list[str], rounds: int = 20) -> float:
    """Median milliseconds of one version-lookup query on the log's own connection."""
    from psycopg import sql

    q = sql.SQL(query).format(s=sql.Identifier(log.schema))
    conn = log._conn()
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        conn.execute(q, (streams,)).fetchall()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def append_growth(dsn: str, sizes: Sequence[int], probe: int = 300) -> list[tuple[int, float, float, float]]:
    """PostgreSQL single-event append rate as one ledger grows (same ``GROWTH_CUBES`` cubes), with the
    version lookup append runs now and the ``MAX(version) ... GROUP BY`` it ran before, timed in the
    same run: (events in the ledger, append b=1 ev/s, lookup ms, old lookup ms) per size."""
    from ledger.backends.postgres_log import STREAM_VERSIONS_SQL, PostgresLog

    old = "SELECT stream, MAX(version) FROM {s}.events WHERE stream = ANY(%s) GROUP BY stream"
    log = PostgresLog(dsn, schema=_name("grow"))
    streams = [f"grow-{i}" for i in range(GROWTH_CUBES)]
    out = []
    try:
        for size in sorted(sizes):
            while log.head() + 1 < size:
                n = min(1000, size - (log.head() + 1))
                log.append(_cube_batch(n, log.head() + 1))
            log._conn().execute(sql_analyze(log.schema))
            t0 = time.perf_counter()
            for _ in range(probe):
                log.append(_cube_batch(1, log.head() + 1))
            rate = probe / (time.perf_counter() - t0)
            out.append((size, rate, _lookup_ms(log, STREAM_VERSIONS_SQL, streams), _lookup_ms(log, old, streams)))
    finally:
        log.drop()
        log.close()
    return out


def sql_analyze(schema: str) -> Any:
    """``ANALYZE <schema>.events`` (fresh planner statistics after a bulk load, as autovacuum would)."""
    from psycopg import sql

    return sql.SQL("ANALYZE {}.events").format(sql.Identifier(schema))


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=2000, help="events per append measurement")
    ap.add_argument("--lag-events", type=int, default=300, help="events in the lag measurement")
    ap.add_argument("--writers", type=int, default=4)
    ap.add_argument(
        "--view-events",
        type=int,
        default=1000,
        help="events folded into the Elasticsearch and Neo4j views per log (0: skip)",
    )
    ap.add_argument(
        "--growth-events",
        type=int,
        default=0,
        help="PostgreSQL: single-event append rate at 10k events and at this many (same 8 cubes; 0: skip)",
    )
    ap.add_argument("--growth-only", action="store_true", help="run only the --growth-events measurement")
    args = ap.parse_args(argv)
    if args.growth_events > 0:
        dsn = os.environ.get("MEMLEDGER_TEST_PG_DSN")
        if not dsn:
            print("append growth: skipped, MEMLEDGER_TEST_PG_DSN not set")
        else:
            print(f"PostgreSQL append b=1 as the ledger grows ({GROWTH_CUBES} cubes, 300 appends per size)")
            print(f"{'events in ledger':>16} {'append b=1 ev/s':>16} {'lookup ms':>10} {'old GROUP BY ms':>16}")
            for size, rate, new_ms, old_ms in append_growth(dsn, [10_000, args.growth_events]):
                print(f"{size:>16,} {rate:>16,.0f} {new_ms:>10.3f} {old_ms:>16.3f}", flush=True)
        if args.growth_only:
            return
    with tempfile.TemporaryDirectory() as d:
        backends = _backends(Path(d))
        header = (
            f"{'log backend':<18} {'append b=1 ev/s':>16} {'append b=50 ev/s':>17} "
            f"{f'{args.writers} writers b=10':>18} {'lag p50 ms':>11} {'lag p95 ms':>11} {'lag max ms':>11}"
        )
        print(header)
        print("-" * len(header))
        for name, factory in backends.items():
            if factory is None:
                print(f"{name:<18} skipped: endpoint not set (run infra/up.sh and source infra/run/env.sh)")
                continue
            single = append_single(factory, min(args.events, 1000), 1)
            batched = append_single(factory, args.events, 50)
            conc = append_concurrent(factory, args.events, args.writers)
            p50, p95, mx = projection_lag(factory, args.lag_events)
            print(
                f"{name:<18} {single:>16,.0f} {batched:>17,.0f} {conc:>18,.0f} {p50:>11.1f} {p95:>11.1f} {mx:>11.1f}",
                flush=True,
            )
        views = [
            k
            for k, var in (("elasticsearch", "MEMLEDGER_TEST_ES"), ("neo4j", "MEMLEDGER_TEST_NEO4J"))
            if os.environ.get(var)
        ]
        if args.view_events > 0 and views:
            print(f"\nview catch-up, {args.view_events} memory.added events folded in batches of 500 (events/s)")
            print(f"{'log backend':<18} " + " ".join(f"{v:>14}" for v in views))
            for name, factory in backends.items():
                if factory is not None:
                    rates = [view_catch_up(factory, v, args.view_events) for v in views]
                    print(f"{name:<18} " + " ".join(f"{r:>14,.0f}" for r in rates), flush=True)


if __name__ == "__main__":
    main()
