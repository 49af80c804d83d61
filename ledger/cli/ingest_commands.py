"""Conversation commands: ``ingest`` (messages in, facts extracted later), ``reextract`` (on a branch)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson

from ledger.cli.app import default_actor
from ledger.cli.context import open_cli_ledger, open_cli_partitioned, partitions_of
from ledger.cli.output import emit
from ledger.errors import InvalidRequest


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "ingest", parents=[common], help="append conversation messages (facts are extracted from the log)"
    )
    p.add_argument("--cube", required=True)
    p.add_argument("--actor", default=None, help="who hands the messages in (default $MEMLEDGER_ACTOR or $USER)")
    p.add_argument(
        "--messages", required=True, help="JSON file: a list of {role, content, name?, timestamp?}; - reads stdin"
    )
    for scope in ("user-id", "agent-id", "run-id"):
        p.add_argument(f"--{scope}", default=None, help=f"scope: {scope.replace('-', '_')} of every message")
    p.add_argument("--session-id", default=None, help="conversation / session id")
    p.add_argument("--subject", default=None, help="data subject whose key also seals the messages")
    p.add_argument("--batch-id", default=None, help="idempotency key: a retry with it writes nothing new")
    p.add_argument(
        "--wait", action="store_true", help="block until the extractor has decided them; print the decisions"
    )
    p.add_argument("--timeout", type=float, default=600.0, help="seconds --wait waits for an out-of-process extractor")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser(
        "reextract",
        parents=[common],
        help="re-run extraction over the stored messages into a branch (then branch diff)",
    )
    p.add_argument("--cube", required=True)
    p.add_argument("--extractor", required=True, help="extractor name (rules, local, openai, or module:function)")
    p.add_argument("--branch", required=True, help="branch to create (forked at the head) and extract into")
    p.add_argument("--actor", default=None)
    p.set_defaults(func=cmd_reextract)


def read_messages_arg(path: str) -> Any:
    """The JSON document of ``--messages`` (a file, or stdin for ``-``), with one clear error."""
    try:
        raw = sys.stdin.buffer.read() if path == "-" else open(path, "rb").read()  # noqa: SIM115
    except OSError as exc:
        raise InvalidRequest(f"--messages: cannot read {path}: {exc.strerror}") from None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"--messages is not valid JSON: {exc}") from None


def cmd_ingest(args: argparse.Namespace) -> int:
    from ledger.memos.extraction.runtime import describe, wait_for

    messages = read_messages_arg(args.messages)
    partition = None
    if partitions_of(args) > 1:  # the cube's partition holds its messages, extraction track and facts
        pledger = open_cli_partitioned(args)
        partition = pledger.partition_of(args.cube)
        ledger = pledger.ledger(partition)
    else:
        ledger = open_cli_ledger(args)
    done = ledger.ingest(
        args.cube,
        messages,
        args.actor or default_actor(),
        user_id=args.user_id,
        agent_id=args.agent_id,
        run_id=args.run_id,
        session_id=args.session_id,
        subject=args.subject,
        batch_id=args.batch_id,
    )
    out: dict[str, Any] = done.to_dict()
    where = "" if partition is None else f"partition {partition} "
    if partition is not None:
        out["partition"] = partition
    lines = [f"{len(done.message_ids)} messages at {where}offsets {done.offsets[0]}..{done.offsets[-1]}"]
    if args.wait:
        decisions = [d for e in wait_for(ledger, done.offsets, args.timeout) for d in describe(ledger, e)]
        out["decisions"] = decisions
        for d in decisions:
            if d["kind"] == "ERROR":
                lines.append(f"ERROR {d['error']}")
            else:
                mem = d.get("memory_id") or d.get("target") or "-"
                lines.append(f"{d['kind']:<6} {mem} {d.get('text') or ''}".rstrip())
    emit(args, out, "\n".join(lines))
    return 0


def cmd_reextract(args: argparse.Namespace) -> int:
    from ledger.memos.extraction.reextract import reextract

    ledger = open_cli_ledger(args)
    report = reextract(ledger, args.cube, args.extractor, args.branch, args.actor or default_actor())
    emit(
        args,
        report.to_dict(),
        f"branch {report.branch}: {report.windows} windows, "
        + ", ".join(f"{k} {v}" for k, v in sorted(report.counts.items()))
        + f" (see: memledger branch diff {report.branch})",
    )
    return 0
