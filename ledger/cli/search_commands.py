"""Search and view commands: ``search``, ``rebuild``, ``views``."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from ledger.cli.app import default_actor
from ledger.cli.context import open_cli_ledger, partitions_of
from ledger.cli.output import emit, parse_json_object
from ledger.errors import InvalidRequest
from ledger.rules.filters import parse_filter
from ledger.rules.timepoints import offset_arg


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("search", parents=[common], help="hybrid search (keyword + vector + graph)")
    p.add_argument(
        "--cube",
        action="append",
        default=None,
        dest="cubes",
        help="cube to search (repeat for several; default: every cube)",
    )
    p.add_argument("--k", type=int, default=10, help="number of hits (default 10)")
    p.add_argument("--as-of", default=None, help="offset or ISO-8601 time")
    p.add_argument(
        "--state",
        action="append",
        default=None,
        dest="states",
        help="lifecycle state to include (repeat; default generated, activated, frozen)",
    )
    p.add_argument("--all-states", action="store_true", help="include merged and archived memories")
    p.add_argument(
        "--where", default=None, help='filter JSON (ledger.rules.filters), e.g. {"user_id": "u1", "n": {"$gte": 2}}'
    )
    p.add_argument("--min-score", type=float, default=None, help="drop hits whose fused score is lower")
    p.add_argument(
        "--metadata",
        default=None,
        help='older equality-only filter, e.g. {"topic": "x"} (same as --where on metadata.*)',
    )
    p.add_argument("--actor", default=None, help="reader recorded in the audit trail")
    p.add_argument("--no-vector", action="store_true", help="skip the vector view (no model load)")
    p.add_argument("--branch", default=None, help="search this branch (its --as-of is an offset of the branch)")
    p.add_argument("query")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("rebuild", parents=[common], help="drop every view and fold the log again")
    p.add_argument("--to", type=offset_arg(-1), default=None, help="stop at this offset (default: head)")
    p.add_argument(
        "--view",
        action="append",
        default=None,
        dest="kinds",
        choices=["keyword", "graph", "vector"],
        help="rebuild only this view (repeat)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_rebuild)

    p = sub.add_parser(
        "views", parents=[common], help="each view's checkpoint against the log head (damaged views are rebuilt)"
    )
    p.set_defaults(func=cmd_views)


def check_min_score(value: float | None) -> None:
    from projections.view_set import check_min_score as check

    check(value)


def _open_views(ledger: Any, kinds: list[str] | None = None) -> Any:
    """The views, after the in-process extraction has caught up (its facts are then searchable)."""
    from ledger.memos.extraction.runtime import catch_up_before_reading
    from projections.view_set import ViewSet

    catch_up_before_reading(ledger, lambda problem: print(f"warning: {problem}", file=sys.stderr))
    return ViewSet.open(ledger, kinds=kinds)


def cmd_search(args: argparse.Namespace) -> int:
    metadata = parse_json_object(args.metadata, "--metadata")
    where = parse_json_object(args.where, "--where")
    parse_filter(where, "--where")  # a malformed filter fails before any view or model opens
    check_min_score(args.min_score)
    if args.all_states and args.states:
        raise InvalidRequest("give either --state or --all-states, not both")
    options: dict[str, Any] = {
        "states": args.states,
        "metadata": metadata,
        "all_states": args.all_states,
        "actor": args.actor or default_actor(),
        "where": where,
        "min_score": args.min_score,
    }
    if partitions_of(args) > 1:
        from ledger.cli import partitioned_commands

        if args.branch not in (None, "main"):
            raise InvalidRequest("branches fork a ledger of one partition; this ledger is partitioned")
        out = partitioned_commands.search(args, options)
    else:
        out = _search(args, options)
    lines = []
    for i, h in enumerate(out, start=1):
        text = h["text"] if h["text"] is not None else ("[forgotten]" if h["forgotten"] else "[sealed]")
        part = f"partition={h['partition']}  " if "partition" in h else ""
        lines.append(
            f"{i:>3}. {h['score']:.4f}  {h['id']}  cube={h['cube']}  state={h['state']}  "
            f"v{h['version']}  {part}offsets={h['provenance']['offsets']}\n     {text}"
        )
    emit(args, out, "\n".join(lines) if lines else "no matches")
    return 0


def _search(args: argparse.Namespace, options: dict[str, Any]) -> list[dict[str, Any]]:
    """``memledger search`` on a ledger of one partition (main, or ``--branch``)."""
    ledger = open_cli_ledger(args)
    with _open_views(ledger, ["keyword", "graph"] if args.no_vector else None) as views:
        if args.branch not in (None, "main"):
            from ledger.timemachine.branch_search import search_branch
            from ledger.timemachine.branches import Branches

            hits = search_branch(
                views, Branches(ledger), args.branch, args.query, cube=args.cubes, k=args.k, as_of=args.as_of, **options
            )
        else:
            hits = views.search(args.query, cube=args.cubes, k=args.k, as_of=args.as_of, **options)
    return [h.to_dict() for h in hits]


def cmd_rebuild(args: argparse.Namespace) -> int:
    if partitions_of(args) > 1:
        from ledger.cli import partitioned_commands

        return partitioned_commands.cmd_rebuild(args)
    ledger = open_cli_ledger(args)
    start = time.perf_counter()
    kinds = None if args.kinds is None else sorted({"keyword", *args.kinds})  # keyword holds the records
    with _open_views(ledger, kinds) as views:
        checkpoints = views.rebuild(to=args.to, progress=not args.no_progress and not args.json, kinds=args.kinds)
    seconds = time.perf_counter() - start
    events = max(checkpoints.values(), default=-1) + 1
    emit(
        args,
        {"checkpoints": checkpoints, "seconds": round(seconds, 3), "events": events},
        "\n".join(f"{name}: rebuilt to offset {cp}" for name, cp in checkpoints.items())
        + f"\n{events} events in {seconds:.2f} s",
    )
    return 0


def cmd_views(args: argparse.Namespace) -> int:
    if partitions_of(args) > 1:
        from ledger.cli import partitioned_commands

        return partitioned_commands.cmd_views(args)
    ledger = open_cli_ledger(args)
    with _open_views(ledger) as views:  # opening the vector view loads no model
        repairs = dict(views.check())  # damage anywhere in a file, not only what opening sees
        status = views.status()
    head = ledger.head()
    emit(
        args,
        {"head": head, "views": status, "repaired": repairs},
        "\n".join(
            [f"{name}: checkpoint {cp} ({head - cp} behind)" for name, cp in status.items()]
            + [f"{name}: was {why}; rebuilt from the log" for name, why in repairs.items()]
        ),
    )
    return 0
