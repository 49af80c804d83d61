"""Memory-OS commands: cube, lifecycle, merge, schedule, chat, kv."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ledger.cli.app import default_actor
from ledger.cli.context import memory_api_for, open_cli_ledger
from ledger.cli.output import emit, emit_line, parse_json_object
from ledger.cli.time_commands import add_branch_flag
from ledger.errors import InvalidRequest
from ledger.rules.timepoints import offset_arg


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    cube = sub.add_parser("cube", help="MemCubes: create, list, show, update, share, export, import")
    csub = cube.add_subparsers(dest="cube_command", metavar="ACTION")
    csub.required = True

    p = csub.add_parser("create", parents=[common], help="create a cube")
    p.add_argument("name")
    p.add_argument("--owner", default=None, help="owner (default $MEMLEDGER_ACTOR or $USER)")
    p.add_argument("--visibility", choices=["private", "shared"], default="private")
    p.add_argument("--embedder", default=None, help="embedder model id")
    p.add_argument("--llm", default=None, help="LLM model id")
    p.add_argument("--metadata", default=None, help="JSON object")
    p.set_defaults(func=cmd_cube_create)

    p = csub.add_parser("list", parents=[common], help="list cubes")
    p.add_argument("--as-of", default=None)
    p.add_argument("--readable-by", default=None, help="only cubes this principal may read")
    p.set_defaults(func=cmd_cube_list)

    p = csub.add_parser("show", parents=[common], help="a cube's metadata and memory counts")
    p.add_argument("name")
    p.add_argument("--as-of", default=None)
    p.set_defaults(func=cmd_cube_show)

    p = csub.add_parser("update", parents=[common], help="change a cube's metadata (owner only)")
    p.add_argument("name")
    p.add_argument("--actor", default=None)
    p.add_argument("--visibility", choices=["private", "shared"], default=None)
    p.add_argument("--embedder", default=None)
    p.add_argument("--llm", default=None)
    p.add_argument("--metadata", default=None, help="JSON object merged into the metadata")
    p.set_defaults(func=cmd_cube_update)

    p = csub.add_parser("share", parents=[common], help="share a private cube with a principal (owner only)")
    p.add_argument("name")
    p.add_argument("principal")
    p.add_argument("--actor", default=None)
    p.add_argument("--revoke", action="store_true", help="withdraw the share instead")
    p.set_defaults(func=cmd_cube_share)

    p = csub.add_parser("export", help="write the cube's events with Merkle inclusion proofs (JSON lines)")
    p.add_argument("name")
    p.add_argument("--as-of", default=None)
    p.add_argument("--output", "-o", default=None, help="file (default: standard output)")
    p.add_argument(
        "--sign",
        action="store_true",
        help="anchor the Merkle root in a new signed checkpoint (consistency proof included)",
    )
    p.set_defaults(func=cmd_cube_export)

    p = csub.add_parser("import", parents=[common], help="verify a cube export and append it to this ledger")
    p.add_argument("file", help="export file, or - for standard input")
    p.add_argument("--actor", default=None)
    p.add_argument("--expect-root", default=None, help="refuse unless the export's Merkle root is this (hex)")
    p.add_argument(
        "--public-key",
        default=None,
        metavar="PEM_FILE",
        help="require a signed export whose checkpoint verifies with this trusted public key",
    )
    p.add_argument("--verify-only", action="store_true", help="check the file, import nothing")
    p.set_defaults(func=cmd_cube_import)

    p = sub.add_parser("lifecycle", parents=[common], help="move a memory to a lifecycle state")
    p.add_argument("id")
    p.add_argument("state", help="generated | activated | archived | frozen (merged: use merge)")
    p.add_argument("--actor", default=None)
    p.add_argument("--reason", default=None)
    add_branch_flag(p)
    p.set_defaults(func=cmd_lifecycle)

    p = sub.add_parser("merge", parents=[common], help="merge memories of one cube into a new memory")
    p.add_argument("ids", nargs="+", metavar="ID")
    p.add_argument("--text", required=True, help="text of the merged memory")
    p.add_argument("--actor", default=None)
    p.add_argument("--reason", default=None)
    add_branch_flag(p)
    p.set_defaults(func=cmd_merge)

    p = sub.add_parser("schedule", parents=[common], help="run the memory scheduler once")
    p.add_argument("--cube", action="append", default=None, dest="cubes", help="only this cube (repeatable)")
    p.add_argument("--policy", default=None, help="JSON object overriding [scheduler] settings")
    p.add_argument("--dry-run", action="store_true", help="print the decisions, write nothing")
    p.add_argument("--no-tick", action="store_true", help="never append a scheduler.ticked event")
    p.add_argument(
        "--warm-kv",
        action="store_true",
        help="afterwards build the KV caches of cubes whose activated memories changed ([llm] model)",
    )
    p.add_argument(
        "--verify",
        type=offset_arg(-1),
        default=None,
        metavar="OFFSET",
        help="recompute the decisions recorded for basis OFFSET and compare",
    )
    p.set_defaults(func=cmd_schedule)

    p = sub.add_parser("chat", parents=[common], help="chat with a cube's memory (local model or [llm] endpoint)")
    p.add_argument("--cube", required=True)
    p.add_argument("--actor", default=None)
    p.add_argument(
        "--message",
        "-m",
        action="append",
        default=None,
        help="send this message and exit (repeatable); without it: interactive",
    )
    p.add_argument("--k", type=int, default=5, help="memories to retrieve per turn")
    p.add_argument("--max-new-tokens", type=int, default=None)
    p.add_argument("--no-facts", action="store_true", help="do not extract facts from the messages")
    p.add_argument("--subject", default=None, help="data subject whose key seals the chat memories")
    p.add_argument(
        "--include-shared",
        action="store_true",
        help="also retrieve from the cubes the actor may read (shared with them or visibility shared)",
    )
    p.set_defaults(func=cmd_chat)

    kv = sub.add_parser("kv", help="KV-cache activation memory: build, list, clear")
    ksub = kv.add_subparsers(dest="kv_command", metavar="ACTION")
    ksub.required = True
    p = ksub.add_parser("build", parents=[common], help="build (or find) the KV cache of a cube's activated memories")
    p.add_argument("--cube", required=True)
    p.add_argument("--model", default=None, help="model directory or 'smollm2' (default: [llm] model)")
    p.set_defaults(func=cmd_kv_build)
    p = ksub.add_parser("list", parents=[common], help="stored KV caches, least recently used first")
    p.set_defaults(func=cmd_kv_list)
    p = ksub.add_parser("clear", parents=[common], help="delete every stored KV cache")
    p.set_defaults(func=cmd_kv_clear)


# -- cube ------------------------------------------------------------------------------------
def _cube_text(c: dict[str, Any]) -> str:
    shared = f" shared-with={','.join(c['shared_with'])}" if c["shared_with"] else ""
    states = " ".join(f"{k}={v}" for k, v in sorted(c["states"].items()))
    return (
        f"{c['cube']}  owner={c['owner']}  {c['visibility']}{shared}  memories={c['memories']} ({states})  "
        f"embedder={c['embedder'] or '-'}  llm={c['llm'] or '-'}"
    )


def cmd_cube_create(args: argparse.Namespace) -> int:
    from ledger.memos.cubes import create_cube

    info = create_cube(
        open_cli_ledger(args),
        args.name,
        args.owner or default_actor(),
        args.visibility,
        args.embedder,
        args.llm,
        parse_json_object(args.metadata, "--metadata"),
    )
    emit(args, info.to_dict(), f"created {_cube_text(info.to_dict())}")
    return 0


def cmd_cube_list(args: argparse.Namespace) -> int:
    from ledger.memos.cubes import list_cubes

    cubes = [c.to_dict() for c in list_cubes(open_cli_ledger(args), args.as_of, args.readable_by)]
    emit(args, cubes, "\n".join(_cube_text(c) for c in cubes) or "(no cubes)")
    return 0


def cmd_cube_show(args: argparse.Namespace) -> int:
    from ledger.memos.cubes import get_cube

    c = get_cube(open_cli_ledger(args), args.name, args.as_of).to_dict()
    emit(args, c, _cube_text(c) + (f"\n  metadata: {c['metadata']}" if c["metadata"] else ""))
    return 0


def cmd_cube_update(args: argparse.Namespace) -> int:
    from ledger.memos.cubes import update_cube

    info = update_cube(
        open_cli_ledger(args),
        args.name,
        args.actor or default_actor(),
        args.visibility,
        args.embedder,
        args.llm,
        parse_json_object(args.metadata, "--metadata"),
    )
    emit(args, info.to_dict(), _cube_text(info.to_dict()))
    return 0


def cmd_cube_share(args: argparse.Namespace) -> int:
    from ledger.memos.cubes import share_cube

    info = share_cube(open_cli_ledger(args), args.name, args.principal, args.actor or default_actor(), args.revoke)
    emit(args, info.to_dict(), _cube_text(info.to_dict()))
    return 0


def cmd_cube_export(args: argparse.Namespace) -> int:
    import os

    from ledger.memos.cube_export import write_export

    ledger = open_cli_ledger(args)
    if args.output is None:
        n = write_export(ledger, args.name, sys.stdout.buffer, args.as_of, args.sign)
        sys.stdout.flush()
    else:
        tmp = f"{args.output}.tmp{os.getpid()}"
        try:
            with open(tmp, "wb") as fh:
                n = write_export(ledger, args.name, fh, args.as_of, args.sign)
            os.replace(tmp, args.output)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    print(f"exported {n} events of cube {args.name}", file=sys.stderr)
    return 0


def cmd_cube_import(args: argparse.Namespace) -> int:
    from ledger.memos.cube_export import import_cube, read_records, verify_export

    try:
        if args.file == "-":
            records = read_records(sys.stdin.buffer)
        else:
            with open(args.file, "rb") as fh:
                records = read_records(fh)
    except OSError as exc:
        raise InvalidRequest(f"cannot read {args.file}: {exc.strerror}") from None
    pem = None
    if args.public_key is not None:
        try:
            with open(args.public_key) as fh:
                pem = fh.read()
        except OSError as exc:
            raise InvalidRequest(f"cannot read {args.public_key}: {exc.strerror}") from None
    if args.verify_only:
        v = verify_export(records, args.expect_root, pem)
        anchor = v.header.get("anchor")
        signed = ""
        if anchor:
            cp = anchor["checkpoint"]
            signed = (
                f"; signed checkpoint {cp['seq']} (log size {cp['log_size']}) by key {cp['key_id']}"
                f"{' (trusted key)' if pem else ' (key shipped in the file: integrity, not origin)'}"
            )
        emit(
            args,
            {
                "ok": True,
                "cube": v.cube,
                "events": len(v.events),
                "merkle_root": v.header["merkle_root"],
                "tree_size": v.header["tree_size"],
                "signed": bool(anchor),
                "trusted_key": pem is not None,
            },
            f"OK: {len(v.events)} events of cube {v.cube} verified against Merkle root "
            f"{v.header['merkle_root']}{signed}",
        )
        return 0
    ledger = open_cli_ledger(args)
    res = import_cube(ledger, records, args.actor or default_actor(), args.expect_root, pem)
    _catch_up_views(ledger, args.data)
    emit(
        args,
        res.to_dict(),
        (
            f"cube {res.cube} already imported"
            if res.already_imported
            else f"imported {res.events} events of cube {res.cube} at offsets {res.first_offset}..{res.last_offset}"
        ),
    )
    return 0


def _catch_up_views(ledger: Any, data: str) -> None:
    """Bring the search views up to the head."""
    from projections.view_set import ViewSet

    views = ViewSet.open(ledger, data)
    try:
        views.catch_up()
    finally:
        views.close()


# -- lifecycle and merge -----------------------------------------------------------------------
def cmd_lifecycle(args: argparse.Namespace) -> int:
    ledger = memory_api_for(args)
    w = ledger.change_state(args.id, args.state, args.actor or default_actor(), reason=args.reason)
    where = "" if w.partition is None else f"partition {w.partition} "
    emit(args, {**w.to_dict(), "state": args.state}, f"{w.id} -> {args.state} ({where}offset {w.offset})")
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    ledger = memory_api_for(args)
    w = ledger.merge(args.ids, args.text, args.actor or default_actor(), reason=args.reason)
    where = "" if w.partition is None else f"partition {w.partition} "
    emit(
        args,
        {**w.to_dict(), "sources": args.ids},
        f"{w.id} merged from {', '.join(args.ids)} ({where}offset {w.offset})",
    )
    return 0


# -- scheduler -----------------------------------------------------------------------------------
def cmd_schedule(args: argparse.Namespace) -> int:
    from ledger.memos.scheduler import run, verify_replay
    from ledger.memos.scheduler_policy import SchedulerPolicy

    ledger = open_cli_ledger(args)
    if args.verify is not None:
        same, recorded, recomputed = verify_replay(ledger, args.verify)
        emit(
            args,
            {"basis_offset": args.verify, "same": same, "recorded": recorded, "recomputed": recomputed},
            (
                f"OK: {len(recorded)} decisions at basis {args.verify} replay identically"
                if same
                else f"MISMATCH at basis {args.verify}: recorded {len(recorded)}, recomputed {len(recomputed)}"
            ),
        )
        return 0 if same else 1
    config = ledger.config
    settings = dict(config.section("scheduler")) if config is not None else {}
    settings.update(parse_json_object(args.policy, "--policy") or {})
    policy = SchedulerPolicy.from_dict(settings)
    res = run(ledger, policy, args.cubes, tick=not args.no_tick, dry_run=args.dry_run)
    warmed: list[str] = []
    if args.warm_kv and not args.dry_run:
        from ledger.llm import LLMSettings, load_local_model
        from projections.kv_cache import KVCacheView, kv_warmer

        model = load_local_model(LLMSettings.from_config(config).model)
        warmed = kv_warmer(KVCacheView.open(ledger, args.data), model)(res)
    lines = [
        f"basis offset {res.plan.basis_offset}{' (after a tick)' if res.ticked else ''}: "
        f"{len(res.plan.decisions)} decision(s){' (dry run)' if args.dry_run else ''}"
    ]
    for d in res.plan.decisions:
        lines.append(
            f"  {d.kind:8} {d.cube}  {', '.join(d.memory_ids)}"
            f"{' -> ' + d.merged_into if d.merged_into else ''}\n           {d.reason}"
        )
    if res.skipped_cubes:
        lines.append(f"  skipped (changed since the basis, decide again): {', '.join(res.skipped_cubes)}")
    if warmed:
        lines.append(f"  KV caches built: {', '.join(k[:16] for k in warmed)}")
    emit(args, {**res.to_dict(), "kv_caches": warmed}, "\n".join(lines))
    return 0


# -- chat ------------------------------------------------------------------------------------------
def cmd_chat(args: argparse.Namespace) -> int:
    from ledger.memos.chat import open_chat

    ledger = open_cli_ledger(args)
    actor = args.actor or default_actor()
    options: dict[str, Any] = {"k": args.k, "extract": not args.no_facts, "subject": args.subject}
    if args.include_shared:
        from ledger.memos.cubes import readable_cubes

        options["shared_cubes"] = [c for c in readable_cubes(ledger, actor) if c != args.cube]
    if args.max_new_tokens is not None:
        options["max_new_tokens"] = args.max_new_tokens
    chat = open_chat(ledger, args.cube, actor, data_dir=args.data, **options)
    if args.message:
        for message in args.message:
            turn = chat.send(message)
            if args.json:
                emit_line(turn.to_dict())
            else:
                print(turn.answer)
        return 0
    interactive = sys.stdin.isatty()
    if interactive:
        print(f"chatting with cube {args.cube} as {chat.actor} (empty line or Ctrl-D to quit)", file=sys.stderr)
    while True:
        try:
            line = input("> " if interactive else "")
        except EOFError:
            break
        if not line.strip():
            if interactive:
                break
            continue
        turn = chat.send(line)
        if args.json:
            emit_line(turn.to_dict())
        else:
            print(turn.answer)
            if interactive:
                extra = f", {len(turn.facts)} fact(s) saved" if turn.facts else ""
                print(
                    f"  [{len(turn.retrieved)} retrieved, {turn.cached_tokens} cached tokens{extra}]", file=sys.stderr
                )
    return 0


# -- kv --------------------------------------------------------------------------------------------
def cmd_kv_build(args: argparse.Namespace) -> int:
    from ledger.llm import LLMSettings, load_local_model
    from projections.kv_cache import KVCacheView

    ledger = open_cli_ledger(args)
    if not ledger.cube_exists(args.cube):
        raise InvalidRequest(f"cube {args.cube!r} does not exist")
    settings = LLMSettings.from_config(ledger.config)
    model = load_local_model(args.model or settings.model)
    view = KVCacheView.open(ledger, args.data)
    cache = view.get_or_build(model, args.cube)
    out = {
        "key": cache.key,
        "model_id": cache.model_id,
        "tokens": cache.n_tokens,
        "memory_ids": cache.memory_ids,
        "bytes": cache.nbytes(),
    }
    emit(
        args,
        out,
        f"{cache.key}  {cache.n_tokens} tokens of {len(cache.memory_ids)} activated memories "
        f"({cache.nbytes() / 1e6:.1f} MB, model {cache.model_id})",
    )
    return 0


def cmd_kv_list(args: argparse.Namespace) -> int:
    from projections.kv_cache import KVCacheView

    view = KVCacheView.open(open_cli_ledger(args), args.data)
    entries = view.store.entries()
    emit(
        args,
        entries,
        "\n".join(
            f"{e['key'][:16]}  cube={e['cube']}  tokens={e['n_tokens']}  "
            f"{e['size'] / 1e6:.1f} MB  model={e['model_id']}"
            for e in entries
        )
        or "(no KV caches)",
    )
    return 0


def cmd_kv_clear(args: argparse.Namespace) -> int:
    from projections.kv_cache import KVCacheView

    view = KVCacheView.open(open_cli_ledger(args), args.data)
    n = len(view.store.entries())
    view.store.clear()
    emit(args, {"deleted": n}, f"deleted {n} KV cache(s)")
    return 0
