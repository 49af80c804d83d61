"""Time-machine commands: branch, restore, audit, provenance; and ``--branch`` for other commands."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ledger.api import Ledger
from ledger.cli.context import open_cli_ledger
from ledger.cli.output import emit, emit_line
from ledger.errors import InvalidRequest


def default_actor() -> str:
    from ledger.cli.app import default_actor as actor

    return actor()


def add_branch_flag(p: argparse.ArgumentParser) -> None:
    """Add ``--branch NAME`` to a command (used by the core and lifecycle commands)."""
    p.add_argument("--branch", default=None, help="work on this branch instead of main")


def ledger_for(args: argparse.Namespace) -> Ledger:
    """The CLI ledger, or a ledger over ``--branch`` when one was given."""
    ledger = open_cli_ledger(args)
    name = getattr(args, "branch", None)
    if name is None or name == "main":
        return ledger
    from ledger.timemachine.branches import Branches

    return Branches(ledger, is_admin=cli_is_admin(args)).ledger(name)


def cli_is_admin(args: argparse.Namespace) -> Any:
    """``is_admin`` for ``Branches``: active admin principals of the data directory's principal store."""
    from ledger.principals import PrincipalStore

    store = PrincipalStore(args.data)

    def is_admin(name: str) -> bool:
        p = store.get(name)
        return bool(p is not None and p.active and p.admin)

    return is_admin


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("branch", help="counterfactual branches: create, list, drop, diff, merge")
    bsub = p.add_subparsers(dest="branch_command", metavar="ACTION")
    bsub.required = True
    b = bsub.add_parser("create", parents=[common], help="fork a branch from main (or --from BRANCH) at an offset")
    b.add_argument("name")
    b.add_argument("--at", default=None, help="fork offset or ISO-8601 time (default: the current head)")
    b.add_argument("--from", dest="from_branch", default=None, help="fork from this branch instead of main")
    b.add_argument("--actor", default=None)
    b.set_defaults(func=cmd_branch_create)
    b = bsub.add_parser("list", parents=[common], help="list branches")
    b.set_defaults(func=cmd_branch_list)
    b = bsub.add_parser("drop", parents=[common], help="discard a branch and its events (its owner)")
    b.add_argument("name")
    b.add_argument("--actor", default=None)
    b.add_argument("--cascade", action="store_true", help="also drop the branches forked from it")
    b.set_defaults(func=cmd_branch_drop)
    for action, func, helptext in (
        (
            "grant",
            cmd_branch_grant,
            "give a principal a role on a branch (writer: write and fork; owner: also merge, drop, grant)",
        ),
        ("revoke", cmd_branch_revoke, "take a principal's role on a branch away"),
    ):
        b = bsub.add_parser(action, parents=[common], help=helptext)
        b.add_argument("name")
        b.add_argument("--principal", required=True)
        b.add_argument("--role", required=True, choices=["writer", "owner"])
        b.add_argument("--actor", default=None, help="who grants (must own the branch; default $MEMLEDGER_ACTOR)")
        b.set_defaults(func=func)
    b = bsub.add_parser("diff", parents=[common], help="memories added, changed or removed relative to the fork point")
    b.add_argument("name")
    b.add_argument(
        "--against",
        choices=["main", "parent"],
        default="main",
        help="compare with main where the branch left it (default), or with the direct parent "
        "branch at the fork offset (what a merge would bring in)",
    )
    b.set_defaults(func=cmd_branch_diff)
    b = bsub.add_parser("merge", parents=[common], help="replay a branch's events onto its base")
    b.add_argument("name")
    b.add_argument("--actor", default=None)
    b.add_argument(
        "--strict", action="store_true", help="refuse if any stream the branch wrote moved on the base since the fork"
    )
    b.set_defaults(func=cmd_branch_merge)

    p = sub.add_parser(
        "restore",
        parents=[common],
        help="bring a memory (or --cube) back to its state at an offset with compensating events",
    )
    p.add_argument("id", nargs="?", default=None)
    p.add_argument("--cube", default=None)
    p.add_argument("--to", required=True, help="offset or ISO-8601 time")
    p.add_argument("--actor", default=None)
    add_branch_flag(p)
    p.set_defaults(func=cmd_restore)

    p = sub.add_parser("audit", parents=[common], help="who created, changed, read, merged, archived, restored what")
    p.add_argument("--memory", default=None, help="only events that reference this memory (reads included)")
    p.add_argument("--cube", default=None, help="only events of this cube")
    p.add_argument("--actor", default=None, help="only events by this actor")
    p.add_argument("--since", default=None, help="offset or ISO-8601 time (inclusive)")
    p.add_argument("--until", default=None, help="offset or ISO-8601 time (inclusive)")
    p.add_argument("--type", action="append", default=[], dest="types", help="event type or glob; repeatable")
    p.add_argument(
        "--as-of", default=None, help="with --memory: what the system knew about it then and who had read it"
    )
    p.add_argument("--limit", type=int, default=None, help="at most this many entries (oldest first)")
    add_branch_flag(p)
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser("provenance", parents=[common], help="the chain of events a memory version came from")
    p.add_argument("id")
    p.add_argument("--as-of", default=None, help="offset or ISO-8601 time")
    p.add_argument("--version", type=int, default=None, help="a specific version (default: the current one)")
    add_branch_flag(p)
    p.set_defaults(func=cmd_provenance)


# -- branch ------------------------------------------------------------------------------
def _branches(args: argparse.Namespace) -> Any:
    from ledger.timemachine.branches import Branches

    return Branches(open_cli_ledger(args), is_admin=cli_is_admin(args))


def cmd_branch_create(args: argparse.Namespace) -> int:
    info = _branches(args).create(args.name, args.at, args.actor or default_actor(), args.from_branch)
    emit(args, info.to_dict(), f"branch {info.name} forked from {info.parent or 'main'} at offset {info.fork_offset}")
    return 0


def cmd_branch_list(args: argparse.Namespace) -> int:
    rows = _branches(args).list()
    lines = [
        f"{r['name']:<24} from {r['parent']:<16} at {r['fork_offset']:<8} head {r['head']:<8} "
        f"{r['events']} event(s)  {r['status']}  by {r['created_by']} {r['created_at']}"
        for r in rows
    ]
    emit(args, rows, "\n".join(lines) or "no branches")
    return 0


def cmd_branch_drop(args: argparse.Namespace) -> int:
    *nested, info = _branches(args).drop_tree(args.name, args.actor or default_actor(), cascade=args.cascade)
    emit(
        args,
        {"dropped": info.name, "nested": [b.name for b in nested]},
        f"dropped branch {info.name}"
        + (f" and the branches forked from it: {', '.join(b.name for b in nested)}" if nested else ""),
    )
    return 0


def cmd_branch_grant(args: argparse.Namespace) -> int:
    e = _branches(args).grant(args.name, args.principal, args.role, args.actor or default_actor())
    emit(
        args,
        {
            "branch": args.name,
            "principal": args.principal,
            "role": args.role,
            "changed": e is not None,
            "offset": e.offset if e else None,
        },
        f"granted {args.role} on branch {args.name} to {args.principal}"
        + (f" (offset {e.offset})" if e else " (already held)"),
    )
    return 0


def cmd_branch_revoke(args: argparse.Namespace) -> int:
    e = _branches(args).revoke(args.name, args.principal, args.role, args.actor or default_actor())
    emit(
        args,
        {"branch": args.name, "principal": args.principal, "role": args.role, "offset": e.offset},
        f"revoked {args.role} on branch {args.name} from {args.principal} (offset {e.offset})",
    )
    return 0


def cmd_branch_diff(args: argparse.Namespace) -> int:
    from ledger.timemachine.branch_merge import diff

    entries = diff(_branches(args), args.name, args.against)
    marks = {"added": "+", "removed": "-", "changed": "~"}
    lines = []
    for d in entries:
        what = f" ({', '.join(d.fields)})" if d.fields else ""
        shown = d.after or d.before
        text = shown.text if shown is not None and shown.text is not None else ""
        lines.append(f"{marks[d.change]} {d.memory_id} {d.change}{what}  {text}")
    emit(args, [d.to_dict() for d in entries], "\n".join(lines) or "no differences")
    return 0


def cmd_branch_merge(args: argparse.Namespace) -> int:
    from ledger.timemachine.branch_merge import MergeConflict, merge

    try:
        result = merge(_branches(args), args.name, args.actor or default_actor(), strict=args.strict)
    except MergeConflict as exc:
        if args.json:
            emit(
                args,
                {
                    "merged": False,
                    "branch": exc.branch,
                    "into": exc.into,
                    "conflicts": [c.to_dict() for c in exc.conflicts],
                },
            )
        print(f"error: {exc}", file=sys.stderr)
        return 4
    d = result.to_dict()
    emit(
        args,
        {"merged": True, **d},
        f"merged branch {result.branch} into {result.into}: {d['events']} event(s)"
        + (f" at offsets {d['first_offset']}..{d['last_offset']}" if d["events"] else ""),
    )
    return 0


# -- restore / audit / provenance ------------------------------------------------------------
def cmd_restore(args: argparse.Namespace) -> int:
    from ledger.timemachine.restore import restore_cube, restore_memory

    if (args.id is None) == (args.cube is None):
        raise InvalidRequest("restore needs exactly one of: a memory ID, or --cube CUBE")
    ledger = ledger_for(args)
    actor = args.actor or default_actor()
    result = (
        restore_memory(ledger, args.id, args.to, actor)
        if args.id is not None
        else restore_cube(ledger, args.cube, args.to, actor)
    )
    d = result.to_dict()
    text = (
        f"restored {len(result.restored)} memor{'y' if len(result.restored) == 1 else 'ies'} to offset "
        f"{result.to_offset}" + (f" (events at {', '.join(map(str, d['offsets']))})" if d["offsets"] else "")
        if result.restored
        else f"already at its state of offset {result.to_offset}: nothing written"
    )
    emit(args, d, text)
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from ledger.cli.context import scoped_ledger
    from ledger.timemachine.audit import AuditQuery, audit_events, entry_of, knowledge

    ledger = scoped_ledger(args, args.cube, args.memory)
    if args.as_of is not None and args.memory is not None:
        k = knowledge(ledger, args.memory, args.as_of)
        emit(args, k, _knowledge_text(k))
        return 0
    q = AuditQuery(
        memory=args.memory,
        cube=args.cube,
        actor=args.actor,
        since=args.since,
        until=args.until,
        types=args.types or None,
        as_of=args.as_of,
        limit=args.limit,
    )
    n = 0
    for e in audit_events(ledger, q):
        entry = entry_of(e)
        n += 1
        if args.json:
            emit_line(entry.to_dict())
        else:
            ids = f" [{', '.join(entry.memory_ids)}]" if entry.memory_ids else ""
            sys.stdout.write(f"{entry.offset:>8}  {entry.time}  {entry.actor:<16} {entry.action}{ids}\n")
    if n == 0 and not args.json:
        sys.stdout.write("no matching events\n")
    return 0


def _knowledge_text(k: dict[str, Any]) -> str:
    lines = [f"memory {k['memory']} as of offset {k['as_of']} ({k['as_of_time']}):"]
    s = k["state"]
    if not k["existed"]:
        lines.append("  did not exist" + (" (it had been removed)" if s else ""))
    else:
        text = s["text"] if s["text"] is not None else ("[forgotten]" if s["forgotten"] else "[sealed]")
        lines.append(
            f"  version {s['version']}, state {s['state']}, cube {s['cube']}, last changed at offset "
            f"{s['updated_offset']} by {s['updated_by']}\n  {text}"
        )
    if k["readers"]:
        lines.append("  read by: " + ", ".join(f"{r['actor']} ({r['reads']}x, last {r['last']})" for r in k["readers"]))
    else:
        lines.append("  nobody had read it")
    lines.append("  events:")
    lines += [f"    {e['offset']:>8}  {e['time']}  {e['actor']:<16} {e['action']}" for e in k["events"]]
    return "\n".join(lines)


def cmd_provenance(args: argparse.Namespace) -> int:
    from ledger.cli.context import scoped_ledger
    from ledger.timemachine.provenance import provenance

    ledger = scoped_ledger(args, memory_id=args.id)
    tree = provenance(ledger, args.id, as_of=args.as_of, version=args.version)
    emit(args, tree, "\n".join(_provenance_lines(tree, 0)))
    return 0


def _provenance_lines(tree: dict[str, Any], depth: int) -> list[str]:
    pad = "  " * depth
    if tree.get("missing"):
        return [f"{pad}{tree['memory']}: not found"]
    lines = [f"{pad}{tree['memory']} version {tree['version']} (as of offset {tree['as_of']})"]
    for e in tree["events"]:
        ok = ("" if e["hash_ok"] else "  HASH MISMATCH") + (
            f"  (via branch {e['via_branch']})" if e.get("via_branch") else ""
        )
        lines.append(
            f"{pad}  v{e['version']} {e['offset']:>8} {e['time']} {e['actor']:<14} {e['action']}  {e['hash'][:12]}{ok}"
        )
    for s in tree["sources"]:
        lines.append(f"{pad}  source:")
        lines += _provenance_lines(s, depth + 2)
    for r in tree["restored_from"]:
        lines.append(f"{pad}  restored from:")
        lines += _provenance_lines(r, depth + 2)
    return lines
