"""Distributed-tier commands: ``consume`` (run a view, or an extractor, out of process) and ``lag``."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
import uuid
from pathlib import Path

from ledger.cli.context import open_cli_ledger
from ledger.cli.output import emit, emit_line
from ledger.errors import BackendUnavailable, InvalidRequest, present


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "consume", parents=[common], help="keep a view caught up with the log (stream consumer, exactly once)"
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--view", help="view name (elasticsearch, neo4j, or [consumers.views.NAME])")
    what.add_argument(
        "--extractor",
        help="extractor name (rules, local, openai, module:function): extract facts from ingested messages",
    )
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--poll-interval", type=float, default=0.2, help="seconds between polls when caught up")
    p.add_argument("--report-every", type=float, default=5.0, help="seconds between lag reports (JSON lines)")
    p.add_argument("--once", action="store_true", help="stop as soon as the view is caught up")
    p.add_argument("--max-seconds", type=float, default=None, help="stop after this many seconds")
    p.add_argument(
        "--no-lease",
        action="store_true",
        help="run without the per-view lease (only if you guarantee a single consumer)",
    )
    p.add_argument(
        "--rebuild",
        action="store_true",
        help="drop the view (once this consumer holds the lease) and fold the log from offset 0",
    )
    g = p.add_argument_group("consumer group (a view over a partitioned log, partitions divided among members)")
    g.add_argument("--group", help="join consumer group NAME of --view instead of taking the view's lease")
    g.add_argument("--member", help="this member's id, unique in the group (default: host-pid-random)")
    g.add_argument("--heartbeat-interval", type=float, default=1.0, help="seconds between heartbeats")
    g.add_argument("--heartbeat-timeout", type=float, default=3.0, help="a member silent this long is dead (seconds)")
    g.add_argument(
        "--assignment",
        choices=["range", "round_robin", "rendezvous"],
        help="how partitions are divided; every member of a group must use the same "
        "(default: [consumers.group] assignment, else range)",
    )
    p.set_defaults(func=cmd_consume)

    p = sub.add_parser("lag", parents=[common], help="how far a view is behind the log")
    p.add_argument("--view", required=True)
    p.add_argument("--group", help="the view of consumer group NAME: each partition's lag and who applies it")
    p.set_defaults(func=cmd_lag)


def _open(args: argparse.Namespace):
    from consumers.views import build_view

    ledger = open_cli_ledger(args)
    return ledger, build_view(args.view, ledger.config, ledger)


def _open_when_reachable(args: argparse.Namespace, stop: threading.Event, deadline: float | None, opener=None):
    """(ledger, view), waiting while a server they need is unavailable (a long-running consumer outlives
    restarts of its log and view servers); None when stopped first. Other errors are raised at once.
    ``opener(args)`` opens something else the same way (default: the ledger and the view)."""
    delay = 0.5
    while True:
        try:
            return (opener or _open)(args)
        except BackendUnavailable as exc:
            if stop.is_set() or (deadline is not None and time.monotonic() + delay > deadline):
                if stop.is_set():
                    return None
                raise
            print(f"consumer {args.view}: {exc}; retrying in {delay:g}s", file=sys.stderr)
            if stop.wait(delay):
                return None
            delay = min(delay * 2, 5.0)


def cmd_consume(args: argparse.Namespace) -> int:
    from consumers.runner import ProjectionConsumer

    if args.batch_size < 1:
        raise InvalidRequest("--batch-size must be at least 1")
    if args.extractor is not None:
        if args.group is not None:
            raise InvalidRequest("--group applies to views, not to extractors")
        return _consume_extractor(args)
    if args.group is not None:
        return _consume_group(args)
    stop = threading.Event()

    def _stop(signum, frame):  # noqa: ARG001 - signal handler signature
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _stop)
    deadline = None if args.max_seconds is None else time.monotonic() + args.max_seconds
    opened = _open_when_reachable(args, stop, deadline)
    if opened is None:
        return 0  # stopped (SIGTERM/SIGINT or --max-seconds) before the servers answered
    ledger, view = opened
    lease = None if args.no_lease else ledger.log.lease(args.view, args.data)
    consumer = ProjectionConsumer(
        ledger,
        view,
        lease=lease,
        batch_size=args.batch_size,
        poll_interval=args.poll_interval,
        report=lambda lag: emit_line(lag.to_dict()),
        report_every=args.report_every,
        rebuild=args.rebuild,
    )
    try:
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        consumer.run(stop, until_caught_up=args.once, max_seconds=left)
    finally:
        if lease is not None:
            lease.release()
        view.close()
        ledger.log.close()
    return 0


def _consume_group(args: argparse.Namespace) -> int:
    """``consume --view NAME --group G``: one member of group G, applying the partitions of NAME that the
    group assigns to it (``consumers.group_member``); SIGTERM leaves the group at once."""
    from consumers.group_member import GroupMember, default_member_id
    from consumers.group_setup import group_coordinator, group_section, partition_view_factory

    if args.rebuild or args.no_lease:
        raise InvalidRequest("--rebuild and --no-lease do not apply to a consumer group")
    if args.heartbeat_interval <= 0 or args.heartbeat_timeout <= args.heartbeat_interval:
        raise InvalidRequest("--heartbeat-timeout must be longer than --heartbeat-interval (both positive)")
    stop = threading.Event()

    def _stop(signum, frame):  # noqa: ARG001 - signal handler signature
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _stop)
    deadline = None if args.max_seconds is None else time.monotonic() + args.max_seconds
    opened = _open_when_reachable(args, stop, deadline, _open_partitioned)
    if opened is None:
        return 0  # stopped before the servers answered
    ledger, config, plog = opened
    coordinator = group_coordinator(
        config, args.group, args.view, args.member or default_member_id(), args.heartbeat_timeout
    )
    member = GroupMember(
        plog,
        partition_view_factory(args.view, config, ledger, plog),
        coordinator,
        args.group,
        args.view,
        registry=ledger.registry,
        strategy=args.assignment or str(group_section(config).get("assignment", "range")),
        batch_size=args.batch_size,
        poll_interval=args.poll_interval,
        heartbeat_interval=args.heartbeat_interval,
        report=lambda status: emit_line(status.to_dict()),
        report_every=args.report_every,
    )
    try:
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        member.run(stop, until_caught_up=args.once, max_seconds=left)
    finally:
        plog.close()
        ledger.log.close()
    return 0


def _open_partitioned(args: argparse.Namespace):
    """(ledger, its configuration, the partitioned log a group consumes): the data directory's own
    partitions (``[log] partitions`` > 1; the ledger handle is its system partition), else the
    single-log ledger and the ``[consumers.group] partitioned_log`` hook."""
    from consumers.group_setup import open_partitioned_log
    from ledger.config import CONFIG_NAME, load_config
    from ledger.factory import open_partitioned_ledger
    from ledger.partitions.settings import partition_count

    data = Path(args.data)
    if (data / CONFIG_NAME).exists() and partition_count(load_config(data)) > 1:
        own, plog = open_partitioned_ledger(data)
        return own, present(own.config, "the configuration of the data directory"), plog
    ledger = open_cli_ledger(args)
    config = present(ledger.config, "the configuration of the data directory")
    try:
        return ledger, config, open_partitioned_log(config, ledger)
    except BaseException:
        ledger.log.close()
        raise


def _group_lag(args: argparse.Namespace) -> int:
    """``lag --view V --group G``: every partition's checkpoint, head, lag and current holder."""
    from consumers.group_lag import group_lag
    from consumers.group_setup import group_coordinator, partition_view_factory

    ledger, config, plog = _open_partitioned(args)
    probe = group_coordinator(config, args.group, args.view, f"lag-probe-{uuid.uuid4().hex[:6]}", 3.0)
    try:
        rows = group_lag(plog, partition_view_factory(args.view, config, ledger, plog), probe.lock_holders())
    finally:
        probe.leave()
        plog.close()
        ledger.log.close()
    out = {
        "view": args.view,
        "group": args.group,
        "lag_events": sum(r.events for r in rows),
        "partitions": [r.to_dict() for r in rows],
    }
    text = "\n".join(
        f"{args.view} p{r.partition}: checkpoint {r.checkpoint} / head {r.head} ({r.events} events) "
        f"held by {r.holder or 'nobody'}"
        for r in rows
    )
    emit(args, out, text)
    return 0


def _consume_extractor(args: argparse.Namespace) -> int:
    """``consume --extractor NAME``: NAME extracts on the main line of extraction (one checkpoint,
    shared with the in-process catch-up), under the lease ``extractor:main``."""
    from ledger.memos.extraction.runtime import consumer_for

    if args.rebuild:
        raise InvalidRequest("--rebuild applies to views; an extractor's decisions are in the log for good")
    ledger = open_cli_ledger(args)
    consumer = consumer_for(ledger, args.extractor)
    lease = None if args.no_lease else ledger.log.lease(consumer.name, args.data)
    stop = threading.Event()

    def _stop(signum, frame):  # noqa: ARG001 - signal handler signature
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _stop)
    try:
        consumer.run(
            stop,
            until_caught_up=args.once,
            max_seconds=args.max_seconds,
            lease=lease,
            poll_interval=args.poll_interval,
            report=lambda status: emit_line(status.to_dict()),
            report_every=args.report_every,
        )
    finally:
        if lease is not None:
            lease.release()
        ledger.log.close()
    return 0


def cmd_lag(args: argparse.Namespace) -> int:
    from consumers.runner import measure_lag

    if args.group is not None:
        return _group_lag(args)
    ledger, view = _open(args)
    try:
        lag = measure_lag(ledger, view, active=False).to_dict()
    finally:
        view.close()
        ledger.log.close()
    emit(
        args,
        lag,
        f"{lag['view']}: checkpoint {lag['checkpoint']} / head {lag['head']} "
        f"({lag['lag_events']} events, {lag['lag_seconds']} s behind)",
    )
    return 0
