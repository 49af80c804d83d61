"""Governance commands: forget, checkpoint(s), proof, verify-proof, keys."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import orjson

from ledger.api import Ledger
from ledger.cli.context import open_cli_ledger, partitions_of
from ledger.cli.output import emit, erasure_lines
from ledger.config import CONFIG_NAME, load_config
from ledger.errors import InvalidRequest, present
from ledger.governance.checkpoints import Checkpoints
from ledger.rules.timepoints import offset_arg


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "forget", parents=[common], help="erase a data subject (destroy its key, record the erasure, purge views)"
    )
    p.add_argument("--subject", required=True)
    p.add_argument("--actor", required=True, help="who requests the erasure (recorded in the audit trail)")
    p.add_argument("--reason", default=None)
    p.set_defaults(func=cmd_forget)

    p = sub.add_parser("checkpoint", parents=[common], help="sign and store a checkpoint of the log")
    p.set_defaults(func=cmd_checkpoint)

    p = sub.add_parser("checkpoints", parents=[common], help="list stored checkpoints")
    p.set_defaults(func=cmd_checkpoints)

    p = sub.add_parser("proof", help="export a proof as JSON (for `verify-proof` or ledger/governance/verifier.py)")
    kinds = p.add_subparsers(dest="proof_kind", metavar="KIND")
    kinds.required = True
    q = kinds.add_parser("inclusion", help="an event is in a signed checkpoint")
    q.add_argument("offset", type=offset_arg())
    q.add_argument(
        "--checkpoint",
        type=int,
        default=None,
        dest="seq",
        help="checkpoint number (default: newest covering the offset, else a new one)",
    )
    q.set_defaults(func=cmd_proof_inclusion)
    q = kinds.add_parser("consistency", help="checkpoint OLD's log is a prefix of checkpoint NEW's")
    q.add_argument("old", type=int)
    q.add_argument("new", type=int)
    q.set_defaults(func=cmd_proof_consistency)

    p = sub.add_parser("verify-proof", parents=[common], help="verify a proof file offline")
    p.add_argument("file", help="proof JSON ('-' for standard input)")
    p.add_argument(
        "--public-key",
        default=None,
        help="trusted public key (PEM file or raw hex/base64); default: this data directory's key",
    )
    p.add_argument("--checkpoint", default=None, dest="pinned", help="a checkpoint JSON saved earlier to pin")
    p.set_defaults(func=cmd_verify_proof)

    p = sub.add_parser("keys", help="key material")
    kk = p.add_subparsers(dest="keys_command", metavar="ACTION")
    kk.required = True
    q = kk.add_parser("export-public", parents=[common], help="print the checkpoint public key")
    q.add_argument("--format", choices=["pem", "hex"], default="pem")
    q.set_defaults(func=cmd_keys_export_public)


def _checkpoints(ledger: Ledger) -> Checkpoints:
    return Checkpoints.for_config(present(ledger.config, "the ledger's data directory"), ledger.log)


def cmd_forget(args: argparse.Namespace) -> int:
    from ledger.governance.forget import forget

    if partitions_of(args) > 1:
        from ledger.cli import partitioned_commands

        return partitioned_commands.cmd_forget(args)
    ledger = open_cli_ledger(args)
    report = forget(ledger, args.subject, args.actor, args.reason)
    d = report.to_dict()
    if report.already_forgotten:
        head = (
            f"{args.subject} was already forgotten (offset {report.offset}); purge, scrub and residue check ran again"
        )
    else:
        head = (
            f"forgot {args.subject}: key destroyed, {report.sealed_payloads} sealed payloads "
            f"({len(report.memory_ids)} memories) unreadable, recorded at offset {report.offset}"
        )
    emit(args, d, erasure_lines(d, head))
    return 0 if report.complete else 1


def cmd_checkpoint(args: argparse.Namespace) -> int:
    if partitions_of(args) > 1:
        from ledger.cli import partitioned_commands

        return partitioned_commands.cmd_checkpoint(args)
    ledger = open_cli_ledger(args)
    cp = _checkpoints(ledger).create(ledger.log)
    emit(args, cp.to_dict(), f"checkpoint #{cp.seq}: {cp.log_size} events, root {cp.root}, signed by {cp.key_id}")
    return 0


def cmd_checkpoints(args: argparse.Namespace) -> int:
    if partitions_of(args) > 1:
        from ledger.cli import partitioned_commands

        return partitioned_commands.cmd_checkpoints(args)
    ledger = open_cli_ledger(args)
    cps = [c.to_dict() for c in _checkpoints(ledger).list()]
    text = "\n".join(f"#{c['seq']}  {c['time']}  {c['log_size']} events  root {c['root']}" for c in cps)
    emit(args, cps, text or "no checkpoints")
    return 0


def _print_json(obj: object) -> None:
    sys.stdout.write(orjson.dumps(obj, option=orjson.OPT_INDENT_2).decode() + "\n")


def cmd_proof_inclusion(args: argparse.Namespace) -> int:
    from ledger.governance.proofs import inclusion_proof

    ledger = open_cli_ledger(args)
    _print_json(inclusion_proof(ledger.log, _checkpoints(ledger), args.offset, args.seq))
    return 0


def cmd_proof_consistency(args: argparse.Namespace) -> int:
    from ledger.governance.proofs import consistency_proof

    ledger = open_cli_ledger(args)
    _print_json(consistency_proof(ledger.log, _checkpoints(ledger), args.old, args.new))
    return 0


def cmd_verify_proof(args: argparse.Namespace) -> int:
    from ledger.governance import verifier

    argv = [args.file, "--public-key", args.public_key or local_public_key_pem(args)]
    if args.pinned:
        argv += ["--checkpoint", args.pinned]
    if args.json:
        argv.append("--json")
    return verifier.main(argv)


def local_public_key_pem(args: argparse.Namespace) -> str:
    from ledger.governance.checkpoints import Checkpoints

    data = Path(args.data)
    if not (data / CONFIG_NAME).exists():
        raise InvalidRequest(f"{data} is not a memledger data directory; give --public-key")
    return Checkpoints.for_config(load_config(data)).signer.public_key_pem(create=False)


def cmd_keys_export_public(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives import serialization

    ledger = open_cli_ledger(args)
    signer = _checkpoints(ledger).signer
    pem = signer.public_key_pem()
    raw = signer.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()
    from ledger.governance.checkpoints import key_id_of

    emit(args, {"pem": pem, "hex": raw, "key_id": key_id_of(signer.public_key())}, pem if args.format == "pem" else raw)
    return 0
