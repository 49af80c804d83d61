"""Scheduler routes: status of the background scheduler, and one pass on demand (admin).

Decisions are shown only for cubes the caller may read (admins see all).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from ledger.access import Action, Caller
from ledger.errors import InvalidRequest
from ledger.memos import scheduler as scheduler_mod
from ledger.memos.scheduler_policy import SchedulerPolicy
from ledger.service.auth import admin_caller, current_caller
from ledger.service.models import ERRORS
from ledger.service.state import ServiceState, get_state

router = APIRouter(prefix="/v1/scheduler", tags=["scheduler"], responses=ERRORS)


def _visible(state: ServiceState, caller: Caller, result: dict[str, Any] | None) -> dict[str, Any] | None:
    if result is None or caller.admin:
        return result
    decisions = [d for d in result.get("decisions", []) if state.access.allowed(caller, d["cube"], Action.READ)]
    return {**result, "decisions": decisions}


@router.get("", summary="Scheduler status: running, interval, last pass (decisions on readable cubes)")
def scheduler_status(
    caller: Caller = Depends(current_caller), state: ServiceState = Depends(get_state)
) -> dict[str, Any]:
    sched = state.extras.get("scheduler")
    if sched is None:
        return {"running": False, "interval_s": None, "last_run": None, "last_error": None}
    last = sched.last_result.to_dict() if sched.last_result is not None else None
    return {
        "running": True,
        "interval_s": state.extras.get("scheduler_interval"),
        "policy": sched.policy.to_dict(),
        "last_run": _visible(state, caller, last),
        "last_error": sched.last_error,
    }


@router.post("/run", summary="Run one scheduling pass now (admin; its events name the admin as actor)")
def scheduler_run(caller: Caller = Depends(admin_caller), state: ServiceState = Depends(get_state)) -> dict[str, Any]:
    sched = state.extras.get("scheduler")
    if sched is None:
        config = state.ledger.config
        sched = scheduler_mod.Scheduler(
            state.ledger, SchedulerPolicy.from_dict(config.section("scheduler") if config is not None else None)
        )
    try:
        result = scheduler_mod.run(state.ledger, sched.policy, sched.cubes, actor=caller.name)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None
    state.access.index.refresh()
    return result.to_dict()
