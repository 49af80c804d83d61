"""Conversation routes: ingest messages (extraction runs later, from the log) and the extraction status."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path

from ledger.access import Action, Caller
from ledger.rules.names import MAX_NAME, NAME_PATTERN
from ledger.service.auth import current_caller
from ledger.service.models import ERRORS, MessagesIngest
from ledger.service.state import ServiceState, get_state

router = APIRouter(prefix="/v1/cubes", tags=["messages"], responses=ERRORS)

CubePath = Path(min_length=1, max_length=MAX_NAME, pattern=NAME_PATTERN, description="cube name")


@router.post(
    "/{cube}/messages",
    status_code=201,
    summary="Append conversation messages verbatim, in one batch (writer); facts are extracted from the log",
)
def ingest_messages(
    body: MessagesIngest,
    cube: str = CubePath,
    caller: Caller = Depends(current_caller),
    state: ServiceState = Depends(get_state),
) -> dict[str, Any]:
    state.access.require_cube(caller, cube, Action.WRITE, "messages.ingest")
    batch = None if body.batch_id is None else f"{caller.name}\x00{body.batch_id}"  # namespaced per principal
    done = state.ledger.ingest(
        cube,
        [m.model_dump(exclude_none=True) for m in body.messages],
        caller.name,
        user_id=body.user_id,
        agent_id=body.agent_id,
        run_id=body.run_id,
        session_id=body.session_id,
        subject=body.subject,
        batch_id=batch,
    )
    return done.to_dict()


@router.get(
    "/{cube}/messages/status", summary="Messages of the cube not yet extracted, and the extractor's checkpoint (reader)"
)
def messages_status(
    cube: str = CubePath, caller: Caller = Depends(current_caller), state: ServiceState = Depends(get_state)
) -> dict[str, Any]:
    from ledger.memos.extraction.runtime import status

    state.access.require_cube(caller, cube, Action.READ, "messages.status")
    return {"cube": cube, **status(state.ledger, cube)}
