"""``memledger llm serve``: an OpenAI-compatible chat server for a local model (loopback by default)."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    g = sub.add_parser("llm", help="local language models")
    gsub = g.add_subparsers(dest="llm_command", metavar="ACTION")
    gsub.required = True
    p = gsub.add_parser(
        "serve", help="serve a local model as an OpenAI-compatible /v1/chat/completions endpoint (greedy)"
    )
    p.add_argument("--model", default="smollm2", help="'smollm2' (the installed package) or a model directory")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8400)
    p.add_argument("--name", action="append", default=[], help="a model name clients may ask for (repeatable)")
    p.add_argument("--max-tokens-limit", type=int, default=1024, help="largest max_tokens a request may ask for")
    p.add_argument("--allow-remote", action="store_true", help="allow a non-loopback --host (no authentication!)")
    p.add_argument("--log-level", default="warning")
    p.set_defaults(func=cmd_llm_serve)


def cmd_llm_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from ledger.errors import InvalidRequest
    from ledger.llm import load_local_model
    from ledger.memos.llm_server import check_host, create_llm_app

    check_host(args.host, args.allow_remote)
    if not 0 <= args.port <= 65535:
        raise InvalidRequest(f"--port must be 0..65535, not {args.port}")
    if args.max_tokens_limit < 1:
        raise InvalidRequest("--max-tokens-limit must be at least 1")
    model = load_local_model(args.model)
    names = [*args.name, args.model]
    app = create_llm_app(model, names, args.max_tokens_limit)
    print(f"serving {model.model_id} as {names} on http://{args.host}:{args.port}/v1", file=sys.stderr, flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0
