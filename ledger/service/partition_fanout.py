"""The service routes that span partitions, on a partitioned ledger (``partition_routing``): each
runs its single-partition form on every partition's state, or the partitioned operation itself."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ledger.access import Caller
from ledger.errors import InvalidRequest
from ledger.service.partition_routing import PartitionRouter


def search(
    router: PartitionRouter, caller: Caller, req: Any, search_one: Callable[..., dict[str, Any]]
) -> dict[str, Any]:
    """Search the named cubes (each on its partition) or every readable cube of every partition;
    hits merged by fused score (exact within a partition, approximate across partitions:
    ``projections.partitioned_views``)."""
    if req.branch not in (None, "main"):
        raise InvalidRequest("branches fork a ledger of one partition; this ledger is partitioned")
    groups = router.pledger.cubes_by_partition(req.cubes, req.as_of)  # none named: each one's readable cubes
    hits: list[dict[str, Any]] = []
    as_of: Any = req.as_of
    for k, cubes in sorted(groups.items()):
        out = search_one(router.states[k], caller, req.model_copy(update={"cubes": cubes}))
        hits += [{**h, "partition": k} for h in out["hits"]]
        if len(groups) == 1:
            as_of = out["as_of"]
    hits.sort(key=lambda h: (-h["score"], h["id"]))
    return {"query": req.query, "as_of": as_of, "branch": req.branch, "hits": hits[: req.k]}


def forget(router: PartitionRouter, subject: str, actor: str, reason: str | None) -> dict[str, Any]:
    """Forget ``subject`` in every partition (``ledger.partitions.partitioned_forget``)."""
    from ledger.partitions.partitioned_forget import forget_partitioned

    report = forget_partitioned(router.pledger, subject, actor, reason, data_dir=router.states[0].data_dir)
    for st in router.states:
        st.access.index.refresh()
    return {**report.to_dict(), "complete": report.complete}


def place_hold(router: PartitionRouter, actor: str, body: Any) -> dict[str, Any]:
    """One hold id, recorded in each partition it protects (``PartitionedLedger.place_hold``)."""
    holds = router.pledger.place_hold(actor, body.reason, body.cube, body.subject, body.memory_id)
    return {**next(iter(holds.values())).to_dict(), "partitions": sorted(holds)}


def list_holds(router: PartitionRouter) -> dict[str, Any]:
    """Every active hold once, with the partitions that record it."""
    return {"holds": router.pledger.holds()}


def release_hold(router: PartitionRouter, hold_id: str, actor: str, reason: str | None) -> dict[str, Any]:
    """Release a hold in every partition that records it."""
    released = router.pledger.release_hold(hold_id, actor, reason)
    return {
        "hold_id": hold_id,
        "offset": released[min(released)],
        "released": [{"partition": k, "offset": o} for k, o in sorted(released.items())],
    }


def list_cubes(router: PartitionRouter, caller: Caller) -> dict[str, Any]:
    """The cubes of every partition on which the caller holds a role."""
    out = []
    for k, st in enumerate(router.states):
        st.access.index.refresh()
        out += [{"cube": c, "roles": r, "partition": k} for c, r in st.access.index.cubes_of(caller.name).items()]
    return {"cubes": sorted(out, key=lambda c: c["cube"])}


def heads(router: PartitionRouter) -> dict[str, Any]:
    """Every partition's head offset and hash."""
    parts = [
        {"partition": k, "offset": st.ledger.head(), "hash": st.ledger.log.head_hash()}
        for k, st in enumerate(router.states)
    ]
    return {"partitions": parts, "heads": [p["offset"] for p in parts]}


def verify(router: PartitionRouter) -> dict[str, Any]:
    """Every partition's chain and every signed global checkpoint (``GlobalCheckpoints.verify``)."""
    from ledger.config import load_config
    from ledger.partitions.global_checkpoints import GlobalCheckpoints

    config = router.pledger.config or load_config(router.states[0].data_dir)
    report = GlobalCheckpoints.for_config(config, router.pledger.plog).verify(router.pledger.plog)
    return {**heads(router), **report.to_dict()}
