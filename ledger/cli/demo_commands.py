"""``memledger demo``: the main job on the embedded default, end to end in one command.

It writes a small user cube, then shows what the ledger gives on top of a plain store:
history, the time machine, hybrid search now and as of the past, a counterfactual branch,
an audit of who read what, crypto-shredding of a data subject, and the hash chain and a
signed checkpoint verifying at the end.
"""

from __future__ import annotations

import argparse
import time

from ledger.cli.output import emit
from ledger.config import init_data_dir
from ledger.errors import present
from ledger.factory import open_ledger

FACTS = [
    ("Caroline moved from Sweden to Lisbon four years ago.", ["biography"]),
    ("Caroline's favourite drink is green tea.", ["preference"]),
    ("Melanie runs a pottery class on Saturdays.", ["activity"]),
    ("Caroline is researching adoption agencies.", ["plans"]),
]
SUBJECT_FACT = "Caroline's phone number is +351 912 000 111."


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("demo", parents=[common], help="run a guided tour on the embedded default")
    p.add_argument("--cube", default=None, help="cube to write (default: a new demo-<time> cube)")
    p.add_argument("--no-vector", action="store_true", help="keyword + graph search only (no embedding model)")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from ledger.governance.checkpoints import Checkpoints
    from ledger.governance.forget import forget
    from ledger.governance.integrity import verify_integrity
    from ledger.timemachine.audit import AuditQuery, audit
    from ledger.timemachine.branch_search import search_branch
    from ledger.timemachine.branches import Branches
    from projections.view_set import ViewSet

    data, _ = init_data_dir(args.data)
    ledger = open_ledger(data)
    cube = args.cube or f"demo-{int(time.time())}"
    steps: list[dict[str, object]] = []

    def step(title: str, detail: str) -> None:
        steps.append({"step": title, "detail": detail})
        if not args.json:
            print(f"== {title}\n{detail}\n")

    ids = [ledger.add(cube, text, actor="demo-agent", tags=tags).id for text, tags in FACTS]
    step(
        f"added {len(ids)} memories to cube {cube}",
        "\n".join(f"{i}  {t}" for i, (t, _) in zip(ids, FACTS, strict=True)),
    )

    before_update = ledger.head()
    time.sleep(0.002)
    ledger.update(
        ids[1],
        "Caroline's favourite drink is now black coffee.",
        actor="demo-agent",
        reason="user corrected a preference",
    )
    hist = ledger.history(ids[1], actor="demo-auditor")
    step(
        "history of the corrected memory",
        "\n".join(f"v{v.version} @offset {v.updated_offset} by {v.updated_by}: {v.text}" for v in hist),
    )
    step(
        f"time machine: the same memory as of offset {before_update}", str(ledger.get(ids[1], as_of=before_update).text)
    )

    kinds = ["keyword", "graph"] if args.no_vector else None
    views = ViewSet.open(ledger, data, kinds=kinds)
    try:

        def show(hits: list) -> str:
            return "\n".join(f"{n}. {h.score:.3f}  {h.memory.text}" for n, h in enumerate(hits, 1)) or "no matches"

        query = "what does Caroline like to drink?"
        step(f"hybrid search now: {query!r}", show(views.search(query, cube=cube, k=2, actor="demo-agent")))
        step(
            f"the same search as of offset {before_update}",
            show(views.search(query, cube=cube, k=2, as_of=before_update, actor="demo-agent")),
        )

        branches = Branches(ledger)
        name = f"what-if-{cube}"
        branches.create(name, at=ledger.head(), actor="demo-agent")
        branches.ledger(name).update(ids[0], "Caroline moved from Sweden to Porto four years ago.", actor="demo-agent")
        on_branch = search_branch(
            views, branches, name, "where does Caroline live?", cube=cube, k=1, actor="demo-agent"
        )
        on_main = views.search("where does Caroline live?", cube=cube, k=1, actor="demo-agent")
        step(
            f"counterfactual branch {name!r} (main is untouched)",
            f"on the branch: {show(on_branch)}\non main:       {show(on_main)}",
        )
        branches.drop(name, actor="demo-agent")
        branches.close()

        reads = audit(ledger, AuditQuery(memory=ids[1], types=["memory.read"]))
        step(
            f"audit: who read {ids[1]}", "\n".join(f"offset {r.offset}  {r.time}  {r.actor}  {r.action}" for r in reads)
        )

        secret = ledger.add(cube, SUBJECT_FACT, actor="demo-agent", subject=f"{cube}-caroline").id
        views.catch_up()  # index the text now, so forget has something in the views to purge
        report = forget(ledger, f"{cube}-caroline", actor="dpo", reason="erasure request (demo)")
        after = ledger.get(secret)
        step(
            "right to be forgotten (crypto-shredding)",
            f"{secret} after forget: text={after.text!r} forgotten={after.forgotten}; "
            f"residue in data directory: {'none' if report.complete else 'FOUND'}",
        )
    finally:
        views.close()

    checkpoint = Checkpoints.for_config(present(ledger.config, "the demo's data directory"), ledger.log).create(
        ledger.log
    )
    result = verify_integrity(ledger)
    ok = bool(getattr(result, "ok", False))
    step(
        "verify: hash chain and signed checkpoints",
        f"{'OK' if ok else 'FAILED'}: checkpoint #{checkpoint.seq} over {checkpoint.log_size} events, "
        f"root {checkpoint.root[:16]}…",
    )
    if args.json:
        emit(args, {"data": str(data), "cube": cube, "steps": steps, "head": ledger.head(), "ok": ok})
    else:
        print(f"data directory: {data}  (try: memledger --data {data} log --stream {cube} | head)")
    return 0 if ok else 1
