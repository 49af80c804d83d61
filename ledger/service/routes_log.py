"""Log routes: a range of events, the head, chain verification and the server-sent-events stream."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse

from ledger.access import Caller
from ledger.errors import InvalidRequest, NotFound
from ledger.governance.integrity import verify_integrity
from ledger.service import partition_fanout
from ledger.service.auth import current_caller, request_token, still_authenticated
from ledger.service.event_filter import EventFilter
from ledger.service.models import ERRORS
from ledger.service.params import AsOf, Offset, resolve_as_of
from ledger.service.state import ServiceState, get_state

router = APIRouter(prefix="/v1", tags=["log"], responses=ERRORS)

From = Annotated[int, Query(alias="from", ge=0, le=2**62, description="first offset (inclusive)")]


def _check_start(state: ServiceState, start: int) -> int:
    head = state.ledger.head()
    if start > head + 1:  # an offset not written yet: 404 like any id that does not exist
        raise NotFound(f"offset {start} is beyond the head of the log ({head}); the next offset is {head + 1}")
    return head


@router.get("/log", summary="Events from an offset (only cubes the caller may see; auditors get redacted content)")
def read_log(
    start: From = 0,
    to: Offset | None = None,
    as_of: AsOf = None,
    stream: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    caller: Caller = Depends(current_caller),
    state: ServiceState = Depends(get_state),
) -> dict[str, Any]:
    head = _check_start(state, start)
    end = head if to is None else min(to, head)  # from > to: an empty range, an empty page
    bound = resolve_as_of(state.ledger, as_of)
    if bound is not None:
        end = min(end, bound)
    flt = EventFilter(caller, state.access, state.ledger.opener)
    flt.refresh()
    if stream is not None and flt.mode(stream) == "hidden":
        state.access.deny(caller.name, "log.read", cube=stream, reason="no role on the stream")
        raise NotFound(f"stream {stream!r} not found")
    out: list[dict[str, Any]] = []
    scanned_to = start - 1
    scan_end = min(end, start + state.settings.max_scan - 1)
    for e in state.ledger.events(start, scan_end):
        if stream is not None and e.stream != stream:
            scanned_to = e.offset
            continue
        view = flt.view(e)
        if view is not None:
            if len(out) == limit:
                break
            out.append(view)
        scanned_to = e.offset
    more = scanned_to < end
    return {"events": out, "head": head, "next_from": scanned_to + 1 if more else None}


@router.get("/head", summary="Offset and hash of the last event")
def head(caller: Caller = Depends(current_caller), state: ServiceState = Depends(get_state)) -> dict[str, Any]:
    if state.partitioned is not None:
        return partition_fanout.heads(state.partitioned)
    return {"offset": state.ledger.head(), "hash": state.ledger.log.head_hash()}


@router.get("/verify", summary="Recompute the hash chain, and check the signed checkpoints where they exist")
def verify(caller: Caller = Depends(current_caller), state: ServiceState = Depends(get_state)) -> dict[str, Any]:
    if state.partitioned is not None:
        return partition_fanout.verify(state.partitioned)
    return verify_integrity(state.ledger, state.ledger.config).to_dict()


REVOKED = (
    b"event: unauthenticated\ndata: "
    + orjson.dumps(
        {"error": {"type": "Unauthenticated", "message": "the token that opened this stream was revoked or rotated"}}
    )
    + b"\n\n"
)


def _sse(e: dict[str, Any]) -> bytes:
    return f"id: {e['offset']}\nevent: {e['type']}\ndata: ".encode() + orjson.dumps(e) + b"\n\n"


@router.get(
    "/log/stream",
    summary="Server-sent events of the log from an offset (resumable with Last-Event-ID)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "an SSE stream; id = offset"}},
)
async def stream_log(
    request: Request,
    start: From = 0,
    follow: Annotated[bool, Query(description="keep streaming (false: stop at head)")] = True,
    limit: Annotated[int | None, Query(ge=1, le=10_000_000, description="stop after N events")] = None,
    last_event_id: Annotated[str | None, Header(max_length=30)] = None,
    caller: Caller = Depends(current_caller),
    token: str | None = Depends(request_token),
    state: ServiceState = Depends(get_state),
) -> StreamingResponse:
    if last_event_id is not None and last_event_id.strip():
        try:
            start = int(last_event_id) + 1
        except ValueError:
            raise InvalidRequest(f"Last-Event-ID must be an offset, not {last_event_id!r}") from None
        if start < 0:
            raise InvalidRequest("Last-Event-ID must be an offset >= -1")
    await run_in_threadpool(_check_start, state, start)
    flt = EventFilter(caller, state.access, state.ledger.opener)
    settings = state.settings

    def batch(nxt: int) -> list[dict[str, Any]] | None:
        # the token is re-checked before every batch: a revoked or rotated token ends the stream
        if not still_authenticated(state, caller, token):
            return None
        flt.refresh()
        out = []
        for e in state.ledger.events(nxt, nxt + 499):
            view = flt.view(e)
            out.append(view if view is not None else {"offset": e.offset, "hidden": True})
        return out

    async def gen() -> AsyncIterator[bytes]:
        nxt, sent = start, 0
        beat = time.monotonic()
        yield b"retry: 2000\n\n"
        while True:
            items = await run_in_threadpool(batch, nxt)
            if items is None:
                yield REVOKED
                return
            for item in items:
                nxt = item["offset"] + 1
                if item.get("hidden"):
                    continue
                yield _sse(item)
                sent += 1
                if limit is not None and sent >= limit:
                    return
            if items:
                beat = time.monotonic()
                continue
            if not follow or await request.is_disconnected():
                return
            if time.monotonic() - beat >= settings.sse_keepalive_seconds:
                yield b": keep-alive\n\n"
                beat = time.monotonic()
            await asyncio.sleep(settings.sse_poll_seconds)

    return StreamingResponse(
        gen(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
