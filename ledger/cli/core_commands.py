"""Core commands: init, add, update, get, history, log, head, verify."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ledger.api import Ledger
from ledger.cli.app import default_actor
from ledger.cli.context import memory_api_for, open_cli_partitioned, partitions_of, with_partition
from ledger.cli.output import emit, emit_line, parse_json_object
from ledger.cli.time_commands import add_branch_flag, ledger_for
from ledger.config import init_data_dir
from ledger.errors import InvalidRequest
from ledger.rules.timepoints import offset_arg


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("init", parents=[common], help="create a data directory")
    p.add_argument(
        "--config",
        default=None,
        help="memledger.toml to start from (e.g. infra/memledger.distributed.toml); default: the embedded one",
    )
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("add", parents=[common], help="add a memory to a cube")
    p.add_argument("--cube", required=True)
    p.add_argument("--actor", default=None, help="who writes (default $MEMLEDGER_ACTOR or $USER)")
    p.add_argument("--metadata", default=None, help="JSON object")
    p.add_argument("--tag", action="append", default=[], dest="tags")
    p.add_argument("--subject", default=None, help="data subject whose key encrypts the text")
    p.add_argument("--id", default=None, dest="memory_id", help="memory id (default: generated)")
    p.add_argument("--event-id", default=None, help="idempotency key: a retry with it writes nothing new")
    p.add_argument(
        "--allow-duplicate",
        action="store_true",
        help="write even if a current memory of the cube (same scope and subject) says the same",
    )
    p.add_argument("text")
    add_branch_flag(p)
    p.set_defaults(func=cmd_add)

    p = sub.add_parser("update", parents=[common], help="write a new version of a memory")
    p.add_argument("id")
    p.add_argument("--actor", default=None)
    p.add_argument("--metadata", default=None, help="JSON object")
    p.add_argument("--expected-version", type=int, default=None, help="fail unless the memory is at this version")
    p.add_argument("text")
    add_branch_flag(p)
    p.set_defaults(func=cmd_update)

    reads = (("get", cmd_get, "show a memory"), ("history", cmd_history, "every version of a memory"))
    for name, func, helptext in reads:
        p = sub.add_parser(name, parents=[common], help=helptext)
        p.add_argument("id")
        p.add_argument("--as-of", default=None, help="offset or ISO-8601 time")
        p.add_argument("--actor", default=None, help="reader recorded in the audit trail")
        add_branch_flag(p)
        p.set_defaults(func=func)

    p = sub.add_parser("list", parents=[common], help="a cube's memories matching a filter, a page at a time")
    p.add_argument("--cube", required=True, help="the cube to list")
    p.add_argument("--where", default=None, help='filter JSON (ledger.rules.filters), e.g. {"user_id": "u1"}')
    p.add_argument("--as-of", default=None, help="offset or ISO-8601 time")
    p.add_argument("--limit", type=int, default=100, help="memories per page (1 to 1000, default 100)")
    p.add_argument("--after", default=None, help="the cursor a previous page printed (next_cursor)")
    p.add_argument("--actor", default=None, help="reader recorded in the audit trail")
    add_branch_flag(p)
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("log", parents=[common], help="print events as JSON lines")
    p.add_argument("--from", dest="start", type=offset_arg(), default=0)
    p.add_argument("--to", dest="end", type=offset_arg(), default=None)
    p.add_argument("--as-of", default=None, help="offset or ISO-8601 time (upper bound)")
    p.add_argument("--stream", default=None, help="only this stream (cube)")
    p.add_argument("--since", default=None, help="ISO-8601 time: events at or after it")
    p.add_argument("--until", default=None, help="ISO-8601 time: events at or before it")
    p.add_argument("--partition", type=int, default=None, help="on a partitioned ledger: this partition's events")
    add_branch_flag(p)
    p.set_defaults(func=cmd_log)

    p = sub.add_parser("head", parents=[common], help="offset of the last event")
    add_branch_flag(p)
    p.set_defaults(func=cmd_head)

    p = sub.add_parser("verify", parents=[common], help="recompute the hash chain (and check signed checkpoints)")
    p.add_argument("--public-key", default=None, help="trusted checkpoint public key (default: the local one)")
    p.add_argument(
        "--trusted",
        default=None,
        metavar="FILE",
        help="checkpoints held elsewhere to pin the log against (memledger checkpoint --json output, "
        "or a copy of checkpoints.jsonl): catches truncation even with the local store deleted",
    )
    add_branch_flag(p)
    p.set_defaults(func=cmd_verify)


def cmd_init(args: argparse.Namespace) -> int:
    config_text = None
    if args.config is not None:
        try:
            config_text = Path(args.config).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidRequest(f"cannot read --config {args.config}: {exc}") from None
    path, created = init_data_dir(args.data, config_text)
    from ledger.factory import open_ledger

    if partitions_of(args) > 1:
        from ledger.cli.partitioned_commands import describe_heads

        pledger = open_cli_partitioned(args)
        heads = describe_heads(pledger)["heads"]
        pledger.close()
        state = "initialised" if created else "already initialised"
        emit(
            args,
            {"data": str(path), "created": created, "heads": heads},
            f"{state} {path} ({len(heads)} partitions, heads {heads})",
        )
        return 0
    ledger = open_ledger(path)
    head = ledger.head()
    ledger.log.close()
    emit(
        args,
        {"data": str(path), "created": created, "head": head},
        f"{'initialised' if created else 'already initialised'} {path} (head {head})",
    )
    return 0


def cmd_add(args: argparse.Namespace) -> int:
    ledger = memory_api_for(args)
    w = ledger.add(
        args.cube,
        args.text,
        args.actor or default_actor(),
        metadata=parse_json_object(args.metadata, "--metadata"),
        tags=args.tags,
        subject=args.subject,
        memory_id=args.memory_id,
        event_id=args.event_id,
        allow_duplicate=args.allow_duplicate,
    )
    note = " (duplicate of an existing memory: nothing written)" if w.duplicate else ""
    emit(args, w.to_dict(), f"{w.id} {_where(w.partition)}offset {w.offset}{note}")
    return 0


def cmd_update(args: argparse.Namespace) -> int:
    ledger = memory_api_for(args)
    w = ledger.update(
        args.id,
        args.text,
        args.actor or default_actor(),
        metadata=parse_json_object(args.metadata, "--metadata"),
        expected_version=args.expected_version,
    )
    emit(args, w.to_dict(), f"{w.id} {_where(w.partition)}offset {w.offset}")
    return 0


def _where(partition: int | None) -> str:
    """``"partition K "`` on a partitioned ledger (its offsets are that partition's), else nothing."""
    return "" if partition is None else f"partition {partition} "


def _memory_text(m: dict[str, Any]) -> str:
    text = m["text"] if m["text"] is not None else ("[forgotten]" if m["forgotten"] else "[sealed]")
    part = f"partition={m['partition']}  " if "partition" in m else ""
    return (
        f"{m['id']}  cube={m['cube']}  state={m['state']}  version={m['version']}  "
        f"{part}offset={m['updated_offset']}  {m['updated_at']}  by {m['updated_by']}\n  {text}"
    )


def cmd_get(args: argparse.Namespace) -> int:
    ledger = memory_api_for(args)
    m = with_partition(
        ledger.get(args.id, as_of=args.as_of, actor=args.actor or default_actor()).to_dict(), ledger, args.id
    )
    emit(args, m, _memory_text(m))
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    ledger = memory_api_for(args)
    found = ledger.history(args.id, as_of=args.as_of, actor=args.actor or default_actor())
    versions = [with_partition(v.to_dict(), ledger, args.id) for v in found]
    emit(args, versions, "\n".join(_memory_text(v) for v in versions))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    ledger = memory_api_for(args)
    where = parse_json_object(args.where, "--where")
    page = ledger.list_memories(
        args.cube,
        where=where,
        as_of=args.as_of,
        limit=args.limit,
        after=args.after,
        actor=args.actor or default_actor(),
    )
    out = page.to_dict()
    if not isinstance(ledger, Ledger):
        out["partition"] = ledger.partition_of(args.cube)
    lines = [_memory_text(m) for m in out["memories"]] or ["no memories match"]
    if page.next_cursor is not None:
        lines.append(f"more: --after {page.next_cursor}")
    emit(args, out, "\n".join(lines))
    return 0


def cmd_log(args: argparse.Namespace) -> int:
    if partitions_of(args) > 1:
        if args.partition is None:
            raise InvalidRequest("this ledger is partitioned: name the partition to print (--partition K)")
        pledger = open_cli_partitioned(args)
        ledger = pledger.ledger(args.partition)
        if args.as_of is not None:
            args.as_of = pledger.point(args.as_of, args.partition)
    elif args.partition not in (None, 0):
        raise InvalidRequest(f"this ledger has one partition (0), not {args.partition}")
    else:
        ledger = ledger_for(args)
    if args.start < 0 or (args.end is not None and args.end < args.start):
        raise InvalidRequest(f"bad offset range --from {args.start} --to {args.end}")
    end = args.end
    if args.as_of is not None:
        limit = ledger.resolve_as_of(args.as_of)
        end = limit if end is None else min(end, limit)
    events = ledger.events(args.start, end)
    if args.since is not None or args.until is not None:
        events = (
            e
            for e in ledger.events_between(args.since, args.until)
            if e.offset >= args.start and (end is None or e.offset <= end)
        )
    for e in events:
        if args.stream is None or e.stream == args.stream:
            emit_line(e.to_dict())
    return 0


def cmd_head(args: argparse.Namespace) -> int:
    if partitions_of(args) > 1:
        from ledger.cli import partitioned_commands

        return partitioned_commands.cmd_head(args)
    ledger = ledger_for(args)
    head = ledger.head()
    emit(args, {"offset": head, "hash": ledger.log.head_hash()}, str(head))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from ledger.governance.checkpoints import load_checkpoints_file, load_public_key
    from ledger.governance.integrity import verify_integrity

    if partitions_of(args) > 1:
        from ledger.cli import partitioned_commands

        return partitioned_commands.cmd_verify(args)
    ledger = ledger_for(args)
    on_branch = getattr(args, "branch", None) not in (None, "main")  # signed checkpoints are main's
    if on_branch:
        if args.trusted:
            raise InvalidRequest("--trusted pins main's log; it cannot be used with --branch")
        chain = ledger.log.verify()
        d = chain.to_dict()
        if chain.ok:
            emit(args, d, f"OK: {chain.checked} events, head {chain.head}, head hash {chain.head_hash}")
            return 0
        return _verify_failed(args, d, chain.first_bad_offset, chain.problem)
    public_key = load_public_key(args.public_key) if args.public_key else None
    trusted = load_checkpoints_file(args.trusted) if args.trusted else None
    report = verify_integrity(ledger, ledger.config, public_key, trusted)
    d = {**report.chain, **report.to_dict()}
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if not report.ok:
        return _verify_failed(args, d, report.chain.get("first_bad_offset"), report.problem)
    text = f"OK: {report.chain['checked']} events, head {report.chain['head']}, head hash {report.chain['head_hash']}"
    if report.checkpoints is not None and report.checkpoints.checked:
        text += f"; {report.checkpoints.checked} signed checkpoints match"
    if report.trusted is not None:
        text += f"; {report.trusted.checked} trusted checkpoints match"
    emit(args, d, text)
    return 0


def _verify_failed(args: argparse.Namespace, d: dict[str, Any], offset: int | None, problem: str | None) -> int:
    where = f" at offset {offset}" if offset is not None else ""
    emit(args, {**d, "ok": False, "problem": problem}, f"FAILED{where}: {problem}")
    if not args.json and offset is not None:
        print(f"chain broken at offset {offset}", file=sys.stderr)
    return 1
