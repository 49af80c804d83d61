"""Chat route: a conversation with a cube's memory (``ledger.memos.chat``), written back as memories.

Chat reads the cube's memories and writes the exchange back, so it needs ``writer`` (or
``owner``) on the cube; ``shared_cubes`` (retrieved from too, never written) need ``reader``
each. Sessions keep their recent turns in memory, keyed by principal, cube and ``session_id``;
one principal can never continue another's session. Generation is serialised (one local model
is shared by every session).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from pydantic import Field

from ledger.access import Action, Caller
from ledger.errors import InvalidRequest
from ledger.memos import chat as chat_mod
from ledger.rules.content import NONBLANK_PATTERN
from ledger.rules.names import MAX_NAME, NAME_PATTERN
from ledger.service.auth import current_caller
from ledger.service.models import ERRORS, JSON_INT, CubeName, RequestBody, SubjectName
from ledger.service.state import ServiceState, get_state

router = APIRouter(prefix="/v1/cubes", tags=["chat"], responses=ERRORS)

MAX_SESSIONS = 200
CubePath = Path(min_length=1, max_length=MAX_NAME, pattern=NAME_PATTERN, description="cube name")


class ChatRequest(RequestBody):
    message: str = Field(min_length=1, max_length=10_000, pattern=NONBLANK_PATTERN)
    session_id: str | None = Field(default=None, min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")
    k: Annotated[int, Field(ge=1, le=50), JSON_INT] = 5
    max_new_tokens: Annotated[int, Field(ge=1, le=1024), JSON_INT] | None = None
    subject: SubjectName | None = None
    shared_cubes: list[CubeName] = Field(
        default_factory=list, max_length=20, description="other cubes to retrieve from too (reader on each)"
    )


class ChatSessions:
    """Live chat sessions (LRU-bounded) and the lock that serialises generation."""

    def __init__(self, state: ServiceState):
        self.state = state
        self.lock = threading.Lock()
        self.sessions: OrderedDict[tuple[str, str, str], Any] = OrderedDict()

    def session(self, caller: Caller, cube: str, req: ChatRequest) -> tuple[str, Any]:
        sid = req.session_id or ("chat_" + os.urandom(6).hex())
        key = (caller.name, cube, sid)
        chat = self.sessions.get(key)
        if chat is None:
            factory = self.state.extras.get("chat_factory")
            options: dict[str, Any] = {"k": req.k, "subject": req.subject}
            if req.shared_cubes:
                options["shared_cubes"] = list(req.shared_cubes)
            if req.max_new_tokens is not None:
                options["max_new_tokens"] = req.max_new_tokens
            if factory is not None:
                chat = factory(self.state.ledger, cube, caller.name, **options)
            else:
                chat = chat_mod.open_chat(
                    self.state.ledger, cube, caller.name, data_dir=str(self.state.data_dir), **options
                )
            chat.session_id = sid
            self.sessions[key] = chat
            while len(self.sessions) > MAX_SESSIONS:
                self.sessions.popitem(last=False)
        else:
            self.sessions.move_to_end(key)
            chat.k = req.k
            if hasattr(chat, "shared_cubes"):
                chat.shared_cubes = list(req.shared_cubes)
        return sid, chat


def _sessions(state: ServiceState) -> ChatSessions:
    s = state.extras.get("chat_sessions")
    if s is None:
        s = state.extras.setdefault("chat_sessions", ChatSessions(state))
    return s


@router.post("/{cube}/chat", summary="One chat turn with the cube's memory (writer); the exchange is written back")
def chat(
    body: ChatRequest,
    cube: str = CubePath,
    caller: Caller = Depends(current_caller),
    state: ServiceState = Depends(get_state),
) -> dict[str, Any]:
    state.access.require_cube(caller, cube, Action.READ, "chat")
    state.access.require_cube(caller, cube, Action.WRITE, "chat")
    for other in dict.fromkeys(body.shared_cubes):
        state.access.require_cube(caller, other, Action.READ, "chat")
    if body.shared_cubes and "shared_cubes" not in getattr(chat_mod.ChatSession, "__dataclass_fields__", {}):
        raise InvalidRequest("this installation's chat cannot retrieve from other cubes (shared_cubes)")
    sessions = _sessions(state)
    with sessions.lock:
        sid, session = sessions.session(caller, cube, body)
        turn = session.send(body.message)
    return {"session_id": sid, **turn.to_dict()}
