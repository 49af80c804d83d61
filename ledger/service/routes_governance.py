"""Governance routes (``ledger.governance``): right to be forgotten, signed checkpoints, proofs.

- ``POST /v1/subjects/{subject}/forget`` (admin): crypto-shred a data subject; the erasure is an
  event attributed to the admin, and the report says whether any residue was found on disk.
- ``GET/POST /v1/checkpoints`` and ``GET /v1/checkpoints/public-key``: signed Merkle checkpoints
  of the log (creating one is for admins; reading them needs only authentication: they hold sizes
  and hashes, no content).
- ``GET /v1/proofs/inclusion?offset=N`` proves one event is in a signed checkpoint; the proof
  carries the full event (its hash covers the payload), so it needs ``reader`` on the event's cube
  (or admin). Without ``seq`` the newest stored checkpoint covering N is used; when none does, an
  admin gets a new checkpoint signed, anyone else a 409 (only admins create checkpoints).
  ``GET /v1/proofs/consistency?old=A&new=B`` carries hashes only.
- ``POST /v1/holds``, ``GET /v1/holds``, ``POST /v1/holds/{hold_id}/release`` (admin): legal holds
  on a cube, a data subject or a memory; while one is active, delete, erase, forget, redaction
  and retention of what it covers are refused (and the refusal is recorded).
- ``GET /v1/subjects/{subject}/export?sign=true`` (admin): the subject access export (JSON lines,
  verifiable offline with ``memledger subject verify`` / ``ledger/governance/subject_verifier.py``).
Proofs verify offline with ``memledger verify-proof`` / ``ledger/governance/verifier.py``, trusting nothing
from the server but the public key.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Path, Query
from pydantic import ConfigDict, Field
from starlette.responses import PlainTextResponse, StreamingResponse

from ledger.access import Action, Caller
from ledger.config import load_config
from ledger.errors import NotFound, StateError
from ledger.governance import forget as forget_mod
from ledger.governance import holds as holds_mod
from ledger.governance import proofs as proofs_mod
from ledger.governance import subject_export as subject_export_mod
from ledger.governance.checkpoints import Checkpoints
from ledger.rules.names import MAX_NAME, NAME_PATTERN
from ledger.service import partition_fanout
from ledger.service.auth import admin_caller, current_caller
from ledger.service.models import (
    ERRORS,
    CubeName,
    MemoryId,
    Reason,
    RequestBody,
    RequiredReason,
    SubjectName,
)
from ledger.service.state import ServiceState, get_state

router = APIRouter(prefix="/v1", tags=["governance"], responses=ERRORS)

Seq = Annotated[int, Query(ge=0, le=2**62)]


class ForgetRequest(RequestBody):
    reason: Reason | None = Field(default=None)


class HoldRequest(RequestBody):
    """Exactly one of ``cube``, ``subject`` or ``memory_id``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"oneOf": [{"required": ["cube"]}, {"required": ["subject"]}, {"required": ["memory_id"]}]},
    )
    # not Optional: an explicit null is refused (None is only the "not given" default)
    cube: CubeName = None  # type: ignore[assignment]
    subject: SubjectName = None  # type: ignore[assignment]
    memory_id: MemoryId = None  # type: ignore[assignment]
    reason: RequiredReason


class ReleaseRequest(RequestBody):
    reason: RequiredReason | None = Field(default=None)


SubjectPath = Path(min_length=1, max_length=MAX_NAME, pattern=NAME_PATTERN, description="data subject")


def _checkpoints(state: ServiceState) -> Checkpoints:
    return Checkpoints.for_config(state.ledger.config or load_config(state.data_dir), state.ledger.log)


@router.post("/subjects/{subject}/forget", summary="Crypto-shred a data subject (admin); recorded as an event")
def forget_subject(
    body: ForgetRequest,
    subject: str = Path(min_length=1, max_length=MAX_NAME, pattern=NAME_PATTERN),
    caller: Caller = Depends(admin_caller),
    state: ServiceState = Depends(get_state),
) -> dict:
    if state.partitioned is not None:
        return partition_fanout.forget(state.partitioned, subject, caller.name, body.reason)
    report = forget_mod.forget(state.ledger, subject, caller.name, body.reason, data_dir=state.data_dir)
    state.access.index.refresh()
    return {**report.to_dict(), "complete": report.complete}


@router.get("/checkpoints", summary="Signed checkpoints of the log (sizes, Merkle roots, signatures)")
def list_checkpoints(caller: Caller = Depends(current_caller), state: ServiceState = Depends(get_state)) -> dict:
    return {"checkpoints": [c.to_dict() for c in _checkpoints(state).list()]}


@router.post("/checkpoints", status_code=201, summary="Sign a checkpoint of the log at its head (admin)")
def create_checkpoint(caller: Caller = Depends(admin_caller), state: ServiceState = Depends(get_state)) -> dict:
    return _checkpoints(state).create(state.ledger.log).to_dict()


@router.get(
    "/checkpoints/public-key",
    response_class=PlainTextResponse,
    summary="The ed25519 public key that signs checkpoints (PEM)",
)
def public_key(caller: Caller = Depends(current_caller), state: ServiceState = Depends(get_state)) -> str:
    signer = _checkpoints(state).signer
    if not signer.exists():
        raise NotFound("no checkpoint key yet: create a checkpoint first")
    return signer.public_key_pem(create=False)


@router.get("/proofs/inclusion", summary="Inclusion proof of the event at an offset (reader of its cube)")
def inclusion(
    offset: Annotated[int, Query(ge=0, le=2**62)],
    seq: Seq | None = None,
    caller: Caller = Depends(current_caller),
    state: ServiceState = Depends(get_state),
) -> dict:
    event = next(iter(state.ledger.log.read(offset, offset)), None)
    if event is None:
        raise NotFound(f"no event at offset {offset} (head is {state.ledger.head()})")
    if not caller.admin:
        state.access.require_cube(caller, event.stream, Action.READ, "proof.inclusion")
    checkpoints = _checkpoints(state)
    if seq is not None and offset >= (size := checkpoints.get(seq).log_size):
        # a well-formed request the stored checkpoint cannot answer: a conflict with the state, not bad input
        raise StateError(f"checkpoint #{seq} covers offsets 0..{size - 1}, not {offset}")
    return proofs_mod.inclusion_proof(state.ledger.log, checkpoints, offset, seq, create=caller.admin)


@router.get("/proofs/consistency", summary="Consistency proof between two checkpoints (hashes only)")
def consistency(
    old: Seq, new: Seq, caller: Caller = Depends(current_caller), state: ServiceState = Depends(get_state)
) -> dict:
    checkpoints = _checkpoints(state)
    if checkpoints.get(old).log_size > checkpoints.get(new).log_size:
        raise StateError(f"checkpoint #{old} covers more of the log than #{new}; give the older checkpoint first")
    return proofs_mod.consistency_proof(state.ledger.log, checkpoints, old, new)


@router.post("/holds", status_code=201, summary="Place a legal hold on a cube, a data subject or a memory (admin)")
def place_hold(
    body: HoldRequest, caller: Caller = Depends(admin_caller), state: ServiceState = Depends(get_state)
) -> dict[str, Any]:
    if state.partitioned is not None:
        return partition_fanout.place_hold(state.partitioned, caller.name, body)
    hold = holds_mod.place_hold(state.ledger.log, caller.name, body.reason, body.cube, body.subject, body.memory_id)
    return hold.to_dict()


@router.get("/holds", summary="Active legal holds (admin)")
def list_holds(caller: Caller = Depends(admin_caller), state: ServiceState = Depends(get_state)) -> dict[str, Any]:
    if state.partitioned is not None:
        return partition_fanout.list_holds(state.partitioned)
    return {"holds": [h.to_dict() for h in holds_mod.read_holds(state.ledger.log).active.values()]}


@router.post("/holds/{hold_id}/release", summary="End a legal hold (admin)")
def release_hold(
    body: ReleaseRequest,
    hold_id: str = Path(min_length=1, max_length=200),
    caller: Caller = Depends(admin_caller),
    state: ServiceState = Depends(get_state),
) -> dict[str, Any]:
    if state.partitioned is not None:
        return partition_fanout.release_hold(state.partitioned, hold_id, caller.name, body.reason)
    offset = holds_mod.release_hold(state.ledger.log, hold_id, caller.name, body.reason)
    return {"hold_id": hold_id, "offset": offset}


@router.get(
    "/subjects/{subject}/export",
    summary="Everything about a data subject, verifiable offline (admin; an access request)",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}}, "description": "header, then records"}},
)
def export_subject(
    subject: str = SubjectPath,
    sign: bool = False,
    caller: Caller = Depends(admin_caller),
    state: ServiceState = Depends(get_state),
) -> StreamingResponse:
    records = list(subject_export_mod.export_subject(state.ledger, subject, sign, caller.name))

    def lines() -> Iterator[bytes]:
        for rec in records:
            yield orjson.dumps(rec) + b"\n"

    filename = re.sub(r"[^A-Za-z0-9._-]", "_", subject)[:100]
    return StreamingResponse(
        lines(),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": f'attachment; filename="{filename}-export.jsonl"'},
    )
