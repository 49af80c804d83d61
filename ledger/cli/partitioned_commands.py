"""The CLI commands that work on a ledger of several partitions (``[log] partitions = N``), where
their single-log form would not: ``init``, ``head``, ``verify``, ``checkpoint``, ``checkpoints``,
``forget``, ``ingest``, ``search``, ``rebuild`` and ``views``. Each command of the single-log CLI
calls its counterpart here when the data directory is partitioned; the memory commands (``add``,
``update``, ``get``, ``history``, ``list``, ``delete``, ``lifecycle``, ``merge``) run unchanged on a
``PartitionedLedger``. Every offset printed is its partition's, and says which partition it is.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from ledger.cli.context import open_cli_partitioned
from ledger.cli.output import emit, erasure_lines
from ledger.errors import InvalidRequest
from ledger.partitions.partitioned_ledger import PartitionedLedger


def _warn(problem: str) -> None:
    print(f"warning: {problem}", file=sys.stderr)


def describe_heads(pledger: PartitionedLedger) -> dict[str, Any]:
    """Every partition's head offset and head hash."""
    parts = [{"partition": k, "head": led.head(), "hash": led.log.head_hash()} for k, led in enumerate(pledger.ledgers)]
    return {"partitions": parts, "heads": [p["head"] for p in parts]}


def _heads_text(d: dict[str, Any]) -> str:
    return "\n".join(f"partition {p['partition']}: head {p['head']}  hash {p['hash']}" for p in d["partitions"])


def cmd_head(args: argparse.Namespace) -> int:
    pledger = open_cli_partitioned(args)
    try:
        d = describe_heads(pledger)
    finally:
        pledger.close()
    emit(args, d, _heads_text(d))
    return 0


def _global_checkpoints(pledger: PartitionedLedger) -> Any:
    from ledger.partitions.global_checkpoints import GlobalCheckpoints

    if pledger.config is None:
        raise InvalidRequest("global checkpoints need the ledger's data directory")
    return GlobalCheckpoints.for_config(pledger.config, pledger.plog)


def cmd_verify(args: argparse.Namespace) -> int:
    from ledger.governance.checkpoints import load_public_key

    if args.trusted:
        raise InvalidRequest("--trusted pins the checkpoints of a ledger of one partition; this ledger is partitioned")
    public_key = load_public_key(args.public_key) if args.public_key else None
    pledger = open_cli_partitioned(args)
    try:
        report = _global_checkpoints(pledger).verify(pledger.plog, public_key)
        d = {**describe_heads(pledger), **report.to_dict()}
    finally:
        pledger.close()
    if not report.ok:
        emit(args, d, f"FAILED: {report.problem}")
        return 1
    text = f"OK: {len(d['heads'])} partitions, heads {d['heads']}"
    if report.checked:
        text += f"; {report.checked} signed global checkpoints match"
    emit(args, d, text)
    return 0


def cmd_checkpoint(args: argparse.Namespace) -> int:
    pledger = open_cli_partitioned(args)
    try:
        cp = _global_checkpoints(pledger).create(pledger.plog)
    finally:
        pledger.close()
    d = cp.to_dict()
    sizes = [p["size"] for p in d["partitions"]]
    emit(args, d, f"global checkpoint #{cp.seq}: partition sizes {sizes}, root {cp.root}, signed by {cp.key_id}")
    return 0


def cmd_checkpoints(args: argparse.Namespace) -> int:
    pledger = open_cli_partitioned(args)
    try:
        cps = [c.to_dict() for c in _global_checkpoints(pledger).list()]
    finally:
        pledger.close()
    text = "\n".join(
        f"#{c['seq']}  {c['time']}  partition sizes {[p['size'] for p in c['partitions']]}  root {c['root']}"
        for c in cps
    )
    emit(args, cps, text or "no global checkpoints")
    return 0


def cmd_forget(args: argparse.Namespace) -> int:
    from ledger.partitions.partitioned_forget import forget_partitioned

    pledger = open_cli_partitioned(args)
    try:
        report = forget_partitioned(pledger, args.subject, args.actor, args.reason)
    finally:
        pledger.close()
    d = report.to_dict()
    where = ", ".join(f"partition {k} offset {o}" for k, o in sorted(report.offsets.items()))
    if report.already_forgotten:
        head = f"{args.subject} was already forgotten ({where}); purge, scrub and residue check ran again"
    else:
        head = (
            f"forgot {args.subject}: key destroyed, {report.sealed_payloads} sealed payloads "
            f"({len(report.memory_ids)} memories) unreadable, recorded in every partition ({where})"
        )
    emit(args, d, erasure_lines(d, head))
    return 0 if report.complete else 1


def _open_views(pledger: PartitionedLedger, kinds: list[str] | None = None) -> Any:
    """Every partition's views, after each partition's in-process extraction has caught up."""
    from ledger.memos.extraction.runtime import catch_up_before_reading
    from projections.partitioned_views import PartitionedViews

    for led in pledger.ledgers:
        catch_up_before_reading(led, _warn)
    return PartitionedViews(pledger, kinds=kinds)


def search(args: argparse.Namespace, options: dict[str, Any]) -> list[dict[str, Any]]:
    """``memledger search`` over every partition (or the partitions of ``--cube``)."""
    pledger = open_cli_partitioned(args)
    try:
        with _open_views(pledger, ["keyword", "graph"] if args.no_vector else None) as views:
            hits = views.search(args.query, cube=args.cubes, k=args.k, as_of=args.as_of, **options)
        return [{**h.to_dict(), "partition": pledger.partition_of(h.memory.cube)} for h in hits]
    finally:
        pledger.close()


def cmd_rebuild(args: argparse.Namespace) -> int:
    if args.to is not None:
        raise InvalidRequest("--to is an offset of one partition; a partitioned ledger rebuilds every view to its head")
    pledger = open_cli_partitioned(args)
    start = time.perf_counter()
    try:
        with _open_views(pledger, None if args.kinds is None else sorted({"keyword", *args.kinds})) as views:
            checkpoints = views.rebuild(kinds=args.kinds)
    finally:
        pledger.close()
    seconds = time.perf_counter() - start
    lines = [
        f"partition {k}: " + ", ".join(f"{name} rebuilt to offset {cp}" for name, cp in cps.items())
        for k, cps in enumerate(checkpoints)
    ]
    emit(
        args,
        {
            "partitions": [{"partition": k, "checkpoints": c} for k, c in enumerate(checkpoints)],
            "seconds": round(seconds, 3),
        },
        "\n".join(lines) + f"\n{len(checkpoints)} partitions in {seconds:.2f} s",
    )
    return 0


def cmd_views(args: argparse.Namespace) -> int:
    pledger = open_cli_partitioned(args)
    try:
        with _open_views(pledger) as views:
            repairs = views.check()
            status = views.status()
        heads = list(pledger.heads())
    finally:
        pledger.close()
    parts = [{"partition": k, "head": heads[k], "views": status[k], "repaired": repairs[k]} for k in range(len(heads))]
    lines = []
    for p in parts:
        lines += [
            f"partition {p['partition']} {name}: checkpoint {cp} ({p['head'] - cp} behind)"
            for name, cp in p["views"].items()
        ]
        lines += [
            f"partition {p['partition']} {name}: was {why}; rebuilt from the log" for name, why in p["repaired"].items()
        ]
    emit(args, {"partitions": parts}, "\n".join(lines))
    return 0


def cmd_erase(args: argparse.Namespace, where: dict[str, Any] | None) -> int:
    """``memledger erase`` on a partitioned ledger: the memories' partition erases them and what was
    derived from them (derived memories live in their sources' cube, hence its partition)."""
    from ledger.governance.erase import erase, erase_where

    pledger = open_cli_partitioned(args)
    try:
        if args.cube is not None:
            k = pledger.partition_of(args.cube)
            report = erase_where(pledger.ledgers[k], args.cube, args.actor, args.reason, where)
        else:
            groups: dict[int, list[str]] = {}
            for mid in dict.fromkeys(args.id):
                groups.setdefault(pledger.home_of(mid), []).append(mid)  # every id found before any erasure
            if len(groups) > 1:  # one erasure is one atomic batch, and a batch stays in one partition
                spans = "; ".join(f"partition {k}: {', '.join(ids)}" for k, ids in sorted(groups.items()))
                raise InvalidRequest(f"erase memories of one partition at a time (these span several: {spans})")
            ((k, ids),) = groups.items()
            report = erase(pledger.ledgers[k], ids, args.actor, args.reason)
    finally:
        pledger.close()
    d = report.to_dict()
    verb = "finished the erasure of" if report.already_erased else "erased"
    head = (
        f"partition {k}: {verb} {len(report.memory_ids)} memories and made {len(report.derived_memory_ids)} "
        f"derived ones unreadable ({len(report.key_ids)} keys destroyed; offsets {report.offsets})"
    )
    emit(args, {"partitions": [{"partition": k, **d}], "complete": report.complete}, erasure_lines(d, head))
    return 0 if report.complete else 1


def cmd_hold_add(args: argparse.Namespace, actor: str) -> int:
    pledger = open_cli_partitioned(args)
    try:
        holds = pledger.place_hold(actor, args.reason, args.cube, args.subject, args.memory_id)
    finally:
        pledger.close()
    h = next(iter(holds.values())).to_dict()
    where = ", ".join(f"partition {k} offset {x.offset}" for k, x in holds.items())
    out = {**h, "recorded": [{"partition": k, "offset": x.offset} for k, x in holds.items()]}
    emit(args, out, f"{h['hold_id']}: hold on {h['scope']} {h['target']} ({where})")
    return 0


def cmd_hold_release(args: argparse.Namespace, actor: str) -> int:
    pledger = open_cli_partitioned(args)
    try:
        released = pledger.release_hold(args.hold_id, actor, args.reason)
    finally:
        pledger.close()
    where = ", ".join(f"partition {k} offset {o}" for k, o in sorted(released.items()))
    out = {"hold_id": args.hold_id, "released": [{"partition": k, "offset": o} for k, o in sorted(released.items())]}
    emit(args, out, f"released {args.hold_id} ({where})")
    return 0


def cmd_hold_list(args: argparse.Namespace) -> int:
    pledger = open_cli_partitioned(args)
    try:
        holds = pledger.holds()
    finally:
        pledger.close()
    text = "\n".join(
        f"{h['hold_id']}  {h['scope']} {h['target']}  by {h['placed_by']}: {h['reason']}  partitions {h['partitions']}"
        for h in holds
    )
    emit(args, holds, text or "no active holds")
    return 0
