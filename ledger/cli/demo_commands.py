"""``memledger demo``: the main job on the embedded default, end to end in one command."""

from __future__ import annotations

import argparse
import time

from ledger.cli.output import emit
from ledger.config import init_data_dir
from ledger.factory import open_ledger

FACTS = [
    ("Caroline moved from Sweden to Lisbon four years ago.", ["biography"]),
    ("Caroline's favourite drink is green tea.", ["preference"]),
    ("Melanie runs a pottery class on Saturdays.", ["activity"]),
    ("Caroline is researching adoption agencies.", ["plans"]),
]


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("demo", parents=[common], help="run a guided tour on the embedded default")
    p.add_argument("--cube", default="demo-user")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    data, _ = init_data_dir(args.data)
    ledger = open_ledger(data)
    steps: list[dict[str, object]] = []

    def step(title: str, detail: object) -> None:
        steps.append({"step": title, "detail": detail})
        if not args.json:
            print(f"== {title}\n{detail}\n")

    ids = []
    for text, tags in FACTS:
        ids.append(ledger.add(args.cube, text, actor="demo-agent", tags=tags).id)
    step("added memories", "\n".join(f"{i}  {t}" for i, (t, _) in zip(ids, FACTS, strict=True)))
    before_update = ledger.head()
    time.sleep(0.002)
    ledger.update(ids[1], "Caroline's favourite drink is now black coffee.", actor="demo-agent",
                  reason="user corrected a preference")
    hist = ledger.history(ids[1], actor="demo-auditor")
    step("history of the corrected memory",
         "\n".join(f"v{v.version} @offset {v.updated_offset} by {v.updated_by}: {v.text}" for v in hist))
    then = ledger.get(ids[1], as_of=before_update)
    step(f"time machine: the same memory as of offset {before_update}", then.text)
    for hook in DEMO_HOOKS:
        hook(ledger, args, ids, step)
    result = ledger.log.verify() if hasattr(ledger.log, "verify") else None
    if result is not None:
        step("verify the hash chain", f"{'OK' if result.ok else 'FAILED'}: {result.checked} events, "
                                      f"head hash {result.head_hash}")
    if args.json:
        emit(args, {"data": str(data), "steps": steps, "head": ledger.head()})
    else:
        print(f"data directory: {data}  (try: memledger --data {data} log | head)")
    return 0 if result is None or result.ok else 1


# Further tour steps registered by other parts (search, branches, ...): f(ledger, args, ids, step)
DEMO_HOOKS: list = []
