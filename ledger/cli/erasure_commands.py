"""Deletion, erasure and compliance commands: delete, erase, redact, lineage, hold, subject."""

from __future__ import annotations

import argparse
import sys

from ledger.cli.app import default_actor
from ledger.cli.context import memory_api_for, open_cli_ledger, partitions_of
from ledger.cli.output import emit, erasure_lines, parse_json_object
from ledger.cli.time_commands import add_branch_flag
from ledger.errors import InvalidRequest


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "delete", parents=[common], help="delete a memory (a tombstone; as-of reads still see it, restore undoes it)"
    )
    p.add_argument("id", nargs="?", default=None, help="the memory (or give --cube for a bulk delete)")
    p.add_argument("--cube", default=None, help="delete every memory of this cube (matching --where), atomically")
    p.add_argument("--where", default=None, help='filter JSON, e.g. {"user_id": "u1"} (with --cube)')
    p.add_argument("--actor", default=None, help="who deletes (default $MEMLEDGER_ACTOR or $USER)")
    p.add_argument("--reason", default=None)
    add_branch_flag(p)
    p.set_defaults(func=cmd_delete)

    p = sub.add_parser(
        "erase", parents=[common], help="erase a memory for good: delete it and destroy its keys (and its descendants')"
    )
    p.add_argument("id", nargs="*", help="the memories (or give --cube)")
    p.add_argument("--cube", default=None, help="erase every memory of this cube (matching --where), deleted ones too")
    p.add_argument("--where", default=None, help="filter JSON (with --cube)")
    p.add_argument("--actor", required=True, help="who erases (recorded)")
    p.add_argument("--reason", required=True, help="why (recorded; never the text)")
    p.set_defaults(func=cmd_erase)

    p = sub.add_parser("redact", parents=[common], help="mask spans of a memory's text and erase its earlier versions")
    p.add_argument("id")
    p.add_argument("--span", action="append", required=True, help="START:END character offsets (repeatable)")
    p.add_argument("--actor", required=True)
    p.add_argument("--reason", required=True)
    p.set_defaults(func=cmd_redact)

    p = sub.add_parser("lineage", parents=[common], help="the memories a memory came from, and those derived from it")
    p.add_argument("id")
    p.add_argument("--as-of", default=None, help="offset or ISO-8601 time")
    p.add_argument("--depth", type=int, default=10)
    p.set_defaults(func=cmd_lineage)

    p = sub.add_parser("hold", help="legal holds: add, release, list")
    hh = p.add_subparsers(dest="hold_command", metavar="ACTION")
    hh.required = True
    q = hh.add_parser("add", parents=[common], help="block delete, erase, forget, redact and retention")
    target = q.add_mutually_exclusive_group(required=True)
    target.add_argument("--cube")
    target.add_argument("--subject")
    target.add_argument("--memory", dest="memory_id")
    q.add_argument("--reason", required=True)
    q.add_argument("--actor", default=None)
    q.set_defaults(func=cmd_hold_add)
    q = hh.add_parser("release", parents=[common], help="end a hold")
    q.add_argument("hold_id")
    q.add_argument("--reason", default=None)
    q.add_argument("--actor", default=None)
    q.set_defaults(func=cmd_hold_release)
    q = hh.add_parser("list", parents=[common], help="active holds")
    q.set_defaults(func=cmd_hold_list)

    p = sub.add_parser("subject", help="data subjects: export (access request), verify an export")
    ss = p.add_subparsers(dest="subject_command", metavar="ACTION")
    ss.required = True
    q = ss.add_parser("export", parents=[common], help="every memory, version, read and derived artifact about S")
    q.add_argument("subject")
    q.add_argument("--sign", action="store_true", help="anchor the export in a signed checkpoint")
    q.add_argument("--actor", default=None, help="who exports (the reads are recorded)")
    q.set_defaults(func=cmd_subject_export)
    q = ss.add_parser("verify", parents=[common], help="verify a subject export offline")
    q.add_argument("file", help="the export ('-' for standard input)")
    q.add_argument("--public-key", default=None, help="trusted key (PEM file, hex or base64); default: this data dir's")
    q.set_defaults(func=cmd_subject_verify)


def _where(args: argparse.Namespace) -> dict | None:
    if args.where is not None and args.cube is None:
        raise InvalidRequest("--where needs --cube")
    return parse_json_object(args.where, "--where")


def cmd_delete(args: argparse.Namespace) -> int:
    where = _where(args)
    if (args.id is None) == (args.cube is None):
        raise InvalidRequest("give a memory id or --cube (not both)")
    ledger = memory_api_for(args)
    actor = args.actor or default_actor()
    if args.cube is not None:
        d = ledger.delete_where(args.cube, actor, where, args.reason)
        emit(args, d.to_dict(), f"deleted {len(d.memory_ids)} memories of {args.cube}")
        return 0
    w = ledger.delete(args.id, actor, args.reason)
    emit(args, w.to_dict(), f"deleted {w.id} at offset {w.offset}")
    return 0


def cmd_erase(args: argparse.Namespace) -> int:
    from ledger.governance.erase import erase, erase_where

    where = _where(args)
    if bool(args.id) == (args.cube is not None):
        raise InvalidRequest("give memory ids or --cube (not both)")
    if partitions_of(args) > 1:
        from ledger.cli import partitioned_commands

        return partitioned_commands.cmd_erase(args, where)
    ledger = open_cli_ledger(args)
    if args.cube is not None:
        report = erase_where(ledger, args.cube, args.actor, args.reason, where)
    else:
        report = erase(ledger, args.id, args.actor, args.reason)
    d = report.to_dict()
    verb = "finished the erasure of" if report.already_erased else "erased"
    head = (
        f"{verb} {len(report.memory_ids)} memories and made {len(report.derived_memory_ids)} derived ones "
        f"unreadable ({len(report.key_ids)} keys destroyed; offsets {report.offsets})"
    )
    emit(args, d, erasure_lines(d, head))
    return 0 if report.complete else 1


def cmd_redact(args: argparse.Namespace) -> int:
    from ledger.governance.redact import parse_spans, redact

    ledger = open_cli_ledger(args)
    report = redact(ledger, args.id, parse_spans(args.span), args.actor, args.reason)
    d = report.to_dict()
    head = f"redacted {args.id}: earlier versions erased, masked version at offset {report.offsets[-1]}"
    emit(args, d, erasure_lines(d, head))
    return 0 if report.complete else 1


def cmd_lineage(args: argparse.Namespace) -> int:
    from ledger.cli.context import scoped_ledger
    from ledger.timemachine.lineage import lineage

    ledger = scoped_ledger(args, memory_id=args.id)
    out = lineage(ledger, args.id, args.as_of, args.depth)
    lines = [f"{args.id} (as of offset {out.as_of})"]
    lines += [f"  from {e.parent} ({e.relation}, offset {e.offset})" for e in out.sources]
    lines += [f"  into {e.child} ({e.relation}, offset {e.offset})" for e in out.descendants]
    lines += [f"  artifact: {a['kind']} {a.get('key') or a.get('text_sha256', '')[:16]}" for a in out.artifacts]
    emit(args, out.to_dict(), "\n".join(lines))
    return 0


def cmd_hold_add(args: argparse.Namespace) -> int:
    from ledger.governance.holds import place_hold

    if partitions_of(args) > 1:
        from ledger.cli import partitioned_commands

        return partitioned_commands.cmd_hold_add(args, args.actor or default_actor())
    ledger = open_cli_ledger(args)
    h = place_hold(ledger.log, args.actor or default_actor(), args.reason, args.cube, args.subject, args.memory_id)
    emit(args, h.to_dict(), f"{h.hold_id}: hold on {h.to_dict()['scope']} {h.target} (offset {h.offset})")
    return 0


def cmd_hold_release(args: argparse.Namespace) -> int:
    from ledger.governance.holds import release_hold

    if partitions_of(args) > 1:
        from ledger.cli import partitioned_commands

        return partitioned_commands.cmd_hold_release(args, args.actor or default_actor())
    ledger = open_cli_ledger(args)
    offset = release_hold(ledger.log, args.hold_id, args.actor or default_actor(), args.reason)
    emit(args, {"hold_id": args.hold_id, "offset": offset}, f"released {args.hold_id} at offset {offset}")
    return 0


def cmd_hold_list(args: argparse.Namespace) -> int:
    from ledger.governance.holds import read_holds

    if partitions_of(args) > 1:
        from ledger.cli import partitioned_commands

        return partitioned_commands.cmd_hold_list(args)
    ledger = open_cli_ledger(args)
    holds = [h.to_dict() for h in read_holds(ledger.log).active.values()]
    text = "\n".join(f"{h['hold_id']}  {h['scope']} {h['target']}  by {h['placed_by']}: {h['reason']}" for h in holds)
    emit(args, holds, text or "no active holds")
    return 0


def cmd_subject_export(args: argparse.Namespace) -> int:
    import orjson

    from ledger.governance.subject_export import export_subject

    ledger = open_cli_ledger(args)
    out = sys.stdout.buffer
    for rec in export_subject(ledger, args.subject, args.sign, args.actor or default_actor()):
        out.write(orjson.dumps(rec) + b"\n")
    out.flush()
    return 0


def cmd_subject_verify(args: argparse.Namespace) -> int:
    from ledger.cli.governance_commands import local_public_key_pem
    from ledger.governance import subject_verifier

    argv = [args.file, "--public-key", args.public_key or local_public_key_pem(args)]
    if args.json:
        argv.append("--json")
    return subject_verifier.main(argv)
