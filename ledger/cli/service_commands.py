"""Service commands: serve, principal create/list/revoke, grant, revoke."""

from __future__ import annotations

import argparse
import sys

from ledger.access import ROLES, AccessControl, Caller
from ledger.cli.app import default_actor
from ledger.cli.context import open_cli_ledger
from ledger.cli.output import emit
from ledger.config import CONFIG_NAME
from ledger.errors import InvalidRequest
from ledger.principals import PrincipalStore


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("serve", parents=[common], help="run the HTTP service (FastAPI + uvicorn)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument(
        "--allow-anonymous",
        action="store_true",
        help="let requests without credentials act as principal 'anonymous' (unsafe)",
    )
    p.add_argument("--public-metrics", action="store_true", help="serve /metrics without credentials")
    p.add_argument("--max-body-bytes", type=int, default=2_000_000)
    p.add_argument("--max-text-chars", type=int, default=200_000)
    p.add_argument(
        "--scheduler-interval",
        type=float,
        default=None,
        metavar="SECONDS",
        help="run the memory scheduler every SECONDS in the service (default: off)",
    )
    p.add_argument(
        "--mcp", action="store_true", help="also serve the Model Context Protocol at /mcp (same tokens and roles)"
    )
    p.add_argument("--log-level", default="info")
    p.set_defaults(func=cmd_serve)

    pr = sub.add_parser("principal", help="manage the principals that may call the service")
    psub = pr.add_subparsers(dest="principal_command", metavar="ACTION")
    psub.required = True
    p = psub.add_parser("create", parents=[common], help="create a principal and print its token once")
    p.add_argument("name")
    p.add_argument("--admin", action="store_true", help="may read the whole log and administer principals")
    p.set_defaults(func=cmd_principal_create)
    p = psub.add_parser("list", parents=[common], help="list principals (tokens are never shown)")
    p.set_defaults(func=cmd_principal_list)
    p = psub.add_parser("revoke", parents=[common], help="revoke a principal's token (immediate)")
    p.add_argument("name")
    p.set_defaults(func=cmd_principal_revoke)
    p = psub.add_parser("rotate", parents=[common], help="issue a new token (printed once); the old one stops working")
    p.add_argument("name")
    p.set_defaults(func=cmd_principal_rotate)

    for name, func, helptext in (
        ("grant", cmd_grant, "give a principal a role on a cube (as an owner)"),
        ("revoke", cmd_revoke, "take a principal's role on a cube away (as an owner)"),
    ):
        p = sub.add_parser(name, parents=[common], help=helptext)
        p.add_argument("--cube", required=True)
        p.add_argument("--principal", required=True)
        p.add_argument("--role", required=True, choices=ROLES)
        p.add_argument("--actor", default=None, help="who grants (must own the cube; default $MEMLEDGER_ACTOR)")
        p.set_defaults(func=func)


def _store(args: argparse.Namespace) -> PrincipalStore:
    from pathlib import Path

    if not (Path(args.data) / CONFIG_NAME).exists():
        raise InvalidRequest(f"{args.data} is not a memledger data directory; run: memledger --data {args.data} init")
    return PrincipalStore(args.data)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from ledger.service import create_app
    from ledger.service.app import ANONYMOUS_WARNING
    from ledger.service.settings import Settings

    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: binding to {args.host}, not loopback; put TLS in front of it", file=sys.stderr)
    if args.allow_anonymous:
        print("WARNING: " + ANONYMOUS_WARNING, file=sys.stderr)
    settings = Settings(
        allow_anonymous=args.allow_anonymous,
        public_metrics=args.public_metrics,
        max_body_bytes=args.max_body_bytes,
        max_text_chars=args.max_text_chars,
    )
    app = create_app(
        args.data,
        settings=settings,
        follow_views=True,
        scheduler_interval=args.scheduler_interval,
        mcp=args.mcp,
        host=args.host,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


def cmd_principal_create(args: argparse.Namespace) -> int:
    p, token = _store(args).create(args.name, admin=args.admin)
    emit(
        args,
        {**p.public(), "token": token},
        f"created principal {p.name}{' (admin)' if p.admin else ''}\ntoken (shown once, store it now): {token}",
    )
    return 0


def cmd_principal_rotate(args: argparse.Namespace) -> int:
    p, token = _store(args).rotate(args.name)
    emit(
        args,
        {**p.public(), "token": token},
        f"new token for {p.name} (shown once; the old token no longer works): {token}",
    )
    return 0


def cmd_principal_list(args: argparse.Namespace) -> int:
    items = [p.public() for p in _store(args).list()]
    text = (
        "\n".join(
            f"{i['name']}\t{'admin' if i['admin'] else 'user'}\t"
            f"{'revoked ' + i['revoked_at'] if i['revoked_at'] else 'active'}\tcreated {i['created_at']}"
            for i in items
        )
        or "(no principals)"
    )
    emit(args, items, text)
    return 0


def cmd_principal_revoke(args: argparse.Namespace) -> int:
    p = _store(args).revoke(args.name)
    emit(args, p.public(), f"revoked principal {p.name} at {p.revoked_at}")
    return 0


def _control(args: argparse.Namespace) -> tuple[AccessControl, Caller]:
    """Access control over the log that holds ``args.cube`` (its partition's, on a partitioned ledger)."""
    from ledger.cli.context import open_cli_partitioned, partitions_of

    ledger = open_cli_partitioned(args).for_cube(args.cube) if partitions_of(args) > 1 else open_cli_ledger(args)
    store = PrincipalStore(args.data)
    actor = args.actor or default_actor()
    principal = store.get(actor)
    caller = Caller(actor, bool(principal and principal.active and principal.admin))

    def exists(name: str) -> bool:
        p = store.get(name)
        return p is not None and p.active

    return AccessControl(ledger.log, principal_exists=exists), caller


def cmd_grant(args: argparse.Namespace) -> int:
    control, caller = _control(args)
    e = control.grant(caller, args.cube, args.principal, args.role)
    out = {
        "cube": args.cube,
        "principal": args.principal,
        "role": args.role,
        "changed": e is not None,
        "offset": e.offset if e else None,
    }
    emit(
        args,
        out,
        f"granted {args.role} on {args.cube} to {args.principal}"
        + (f" (offset {e.offset})" if e else " (already held)"),
    )
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    control, caller = _control(args)
    e = control.revoke(caller, args.cube, args.principal, args.role)
    emit(
        args,
        {"cube": args.cube, "principal": args.principal, "role": args.role, "offset": e.offset},
        f"revoked {args.role} on {args.cube} from {args.principal} (offset {e.offset})",
    )
    return 0
