"""Core commands: init, add, update, get, history, log, head, verify."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ledger.cli.app import default_actor
from ledger.cli.output import emit, emit_line, parse_json_object
from ledger.cli.time_commands import add_branch_flag, ledger_for
from ledger.config import init_data_dir
from ledger.errors import InvalidRequest
from ledger.timepoints import offset_arg


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("init", parents=[common], help="create a data directory")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("add", parents=[common], help="add a memory to a cube")
    p.add_argument("--cube", required=True)
    p.add_argument("--actor", default=None, help="who writes (default $MEMLEDGER_ACTOR or $USER)")
    p.add_argument("--metadata", default=None, help="JSON object")
    p.add_argument("--tag", action="append", default=[], dest="tags")
    p.add_argument("--subject", default=None, help="data subject whose key encrypts the text")
    p.add_argument("--id", default=None, dest="memory_id", help="memory id (default: generated)")
    p.add_argument("--event-id", default=None, help="idempotency key: a retry with it writes nothing new")
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

    p = sub.add_parser("log", parents=[common], help="print events as JSON lines")
    p.add_argument("--from", dest="start", type=offset_arg(), default=0)
    p.add_argument("--to", dest="end", type=offset_arg(), default=None)
    p.add_argument("--as-of", default=None, help="offset or ISO-8601 time (upper bound)")
    p.add_argument("--stream", default=None, help="only this stream (cube)")
    p.add_argument("--since", default=None, help="ISO-8601 time: events at or after it")
    p.add_argument("--until", default=None, help="ISO-8601 time: events at or before it")
    add_branch_flag(p)
    p.set_defaults(func=cmd_log)

    p = sub.add_parser("head", parents=[common], help="offset of the last event")
    add_branch_flag(p)
    p.set_defaults(func=cmd_head)

    p = sub.add_parser("verify", parents=[common], help="recompute the hash chain (and check signed checkpoints)")
    p.add_argument("--public-key", default=None, help="trusted checkpoint public key (default: the local one)")
    add_branch_flag(p)
    p.set_defaults(func=cmd_verify)


def cmd_init(args: argparse.Namespace) -> int:
    path, created = init_data_dir(args.data)
    from ledger.factory import open_ledger

    ledger = open_ledger(path)
    head = ledger.head()
    ledger.log.close()
    emit(args, {"data": str(path), "created": created, "head": head},
         f"{'initialised' if created else 'already initialised'} {path} (head {head})")
    return 0


def cmd_add(args: argparse.Namespace) -> int:
    ledger = ledger_for(args)
    w = ledger.add(args.cube, args.text, args.actor or default_actor(),
                   metadata=parse_json_object(args.metadata, "--metadata"), tags=args.tags,
                   subject=args.subject, memory_id=args.memory_id, event_id=args.event_id)
    emit(args, w.to_dict(), f"{w.id} offset {w.offset}")
    return 0


def cmd_update(args: argparse.Namespace) -> int:
    ledger = ledger_for(args)
    w = ledger.update(args.id, args.text, args.actor or default_actor(),
                      metadata=parse_json_object(args.metadata, "--metadata"), expected_version=args.expected_version)
    emit(args, w.to_dict(), f"{w.id} offset {w.offset}")
    return 0


def _memory_text(m: dict[str, Any]) -> str:
    text = m["text"] if m["text"] is not None else ("[forgotten]" if m["forgotten"] else "[sealed]")
    return (f"{m['id']}  cube={m['cube']}  state={m['state']}  version={m['version']}  "
            f"offset={m['updated_offset']}  {m['updated_at']}  by {m['updated_by']}\n  {text}")


def cmd_get(args: argparse.Namespace) -> int:
    ledger = ledger_for(args)
    m = ledger.get(args.id, as_of=args.as_of, actor=args.actor or default_actor()).to_dict()
    emit(args, m, _memory_text(m))
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    ledger = ledger_for(args)
    versions = [v.to_dict() for v in ledger.history(args.id, as_of=args.as_of, actor=args.actor or default_actor())]
    emit(args, versions, "\n".join(_memory_text(v) for v in versions))
    return 0


def cmd_log(args: argparse.Namespace) -> int:
    ledger = ledger_for(args)
    if args.start < 0 or (args.end is not None and args.end < args.start):
        raise InvalidRequest(f"bad offset range --from {args.start} --to {args.end}")
    end = args.end
    if args.as_of is not None:
        limit = ledger.resolve_as_of(args.as_of)
        end = limit if end is None else min(end, limit)
    events = ledger.events(args.start, end)
    if args.since is not None or args.until is not None:
        events = (e for e in ledger.events_between(args.since, args.until)
                  if e.offset >= args.start and (end is None or e.offset <= end))
    for e in events:
        if args.stream is None or e.stream == args.stream:
            emit_line(e.to_dict())
    return 0


def cmd_head(args: argparse.Namespace) -> int:
    ledger = ledger_for(args)
    head = ledger.head()
    emit(args, {"offset": head, "hash": ledger.log.head_hash()}, str(head))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    ledger = ledger_for(args)
    verify = getattr(ledger.log, "verify", None)
    if verify is None:
        raise InvalidRequest("this log backend cannot be verified from here")
    result = verify()
    if result.ok:
        on_branch = getattr(args, "branch", None) not in (None, "main")  # signed checkpoints are main's
        cps = None if on_branch else _checkpoint_report(ledger, getattr(args, "public_key", None))
        d = result.to_dict()
        text = f"OK: {result.checked} events, head {result.head}, head hash {result.head_hash}"
        if cps is not None:
            d["checkpoints"] = cps.to_dict()
            if not cps.ok:
                d.update(ok=False, problem=cps.problem)
                emit(args, d, f"FAILED: {cps.problem}")
                return 1
            text += f"; {cps.checked} signed checkpoints match"
        emit(args, d, text)
        return 0
    emit(args, result.to_dict(), f"FAILED at offset {result.first_bad_offset}: {result.problem}")
    if not args.json:
        print(f"chain broken at offset {result.first_bad_offset}", file=sys.stderr)
    return 1


def _checkpoint_report(ledger: Any, public_key: str | None) -> Any:
    """Stored signed checkpoints checked against the log (None when governance has none)."""
    try:
        from ledger.governance.checkpoints import Checkpoints, load_public_key
    except ImportError:
        return None
    cps = Checkpoints.for_config(ledger.config)
    if not cps.any_stored() and public_key is None:
        return None
    return cps.verify(ledger.log, load_public_key(public_key) if public_key else None)
