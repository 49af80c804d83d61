"""Distributed-tier commands: ``consume`` (run a view, or an extractor, out of process) and ``lag``."""

from __future__ import annotations

import argparse
import signal
import threading

from ledger.cli.context import open_cli_ledger
from ledger.cli.output import emit, emit_line
from ledger.errors import InvalidRequest


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
    p.add_argument("--rebuild", action="store_true", help="drop the view first and fold the log from offset 0")
    p.set_defaults(func=cmd_consume)

    p = sub.add_parser("lag", parents=[common], help="how far a view is behind the log")
    p.add_argument("--view", required=True)
    p.set_defaults(func=cmd_lag)


def _open(args: argparse.Namespace):
    from consumers.views import build_view

    ledger = open_cli_ledger(args)
    return ledger, build_view(args.view, ledger.config, ledger)


def cmd_consume(args: argparse.Namespace) -> int:
    from consumers.runner import ProjectionConsumer

    if args.batch_size < 1:
        raise InvalidRequest("--batch-size must be at least 1")
    if args.extractor is not None:
        return _consume_extractor(args)
    ledger, view = _open(args)
    if args.rebuild:
        view.reset()
    lease = None if args.no_lease else ledger.log.lease(args.view, args.data)
    stop = threading.Event()

    def _stop(signum, frame):  # noqa: ARG001 - signal handler signature
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _stop)
    consumer = ProjectionConsumer(
        ledger,
        view,
        lease=lease,
        batch_size=args.batch_size,
        poll_interval=args.poll_interval,
        report=lambda lag: emit_line(lag.to_dict()),
        report_every=args.report_every,
    )
    try:
        consumer.run(stop, until_caught_up=args.once, max_seconds=args.max_seconds)
    finally:
        if lease is not None:
            lease.release()
        view.close()
        ledger.log.close()
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
