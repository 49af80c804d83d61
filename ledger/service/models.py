"""Request and response models of the HTTP API, with their size limits.

Request bodies forbid unknown fields. A client-supplied ``actor`` is rejected (422) with an
explicit message: the actor of every event is the authenticated principal.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ledger.access import ROLES
from ledger.lifecycle import STATES

CubeName = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^_\x00-\x1f\x7f][^\x00-\x1f\x7f]*$",
                                description="1-200 printable characters, not starting with '_'")]
MemoryId = Annotated[str, Field(min_length=1, max_length=200)]
PrincipalName = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$")]
Tag = Annotated[str, Field(min_length=1, max_length=200)]
Reason = Annotated[str, Field(min_length=1, max_length=2000)]
Metadata = Annotated[dict[str, Any], Field(max_length=200, description="JSON object, at most 200 keys")]
IdempotencyKey = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:-]+$")]
Role = Literal["owner", "writer", "reader", "auditor"]
State = Literal["generated", "activated", "merged", "archived", "frozen"]
assert tuple(Role.__args__) == ROLES and tuple(State.__args__) == STATES  # type: ignore[attr-defined]

ACTOR_REFUSED = "'actor' is not accepted: the actor of every event is the authenticated principal"


class RequestBody(BaseModel):
    """Base of request bodies: unknown fields, and above all ``actor``, are refused."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_actor(cls, data: Any) -> Any:
        if isinstance(data, dict) and "actor" in data:
            raise ValueError(ACTOR_REFUSED)
        return data


class CubeCreate(RequestBody):
    cube: CubeName
    visibility: Literal["private", "shared"] = "private"
    metadata: Metadata | None = None


class GrantRequest(RequestBody):
    principal: PrincipalName
    role: Role


class MemoryAdd(RequestBody):
    cube: CubeName
    text: str = Field(min_length=1, description="memory text (limit set by the server, default 200,000 characters)")
    metadata: Metadata | None = None
    tags: list[Tag] = Field(default_factory=list, max_length=100)
    subject: Annotated[str, Field(min_length=1, max_length=200)] | None = Field(
        default=None, description="data subject whose own key encrypts the text (crypto-shredding)")
    idempotency_key: IdempotencyKey | None = Field(
        default=None, description="a retry with the same key (same principal) writes nothing new")


class MemoryUpdate(RequestBody):
    text: str = Field(min_length=1)
    metadata: Metadata | None = None
    expected_version: int | None = Field(default=None, ge=1, le=2**53)
    reason: Reason | None = None


class StateChange(RequestBody):
    to: State
    reason: Reason | None = None
    expected_version: int | None = Field(default=None, ge=1, le=2**53)


class MergeRequest(RequestBody):
    sources: list[MemoryId] = Field(min_length=2, max_length=100)
    text: str = Field(min_length=1)
    metadata: Metadata | None = None
    reason: Reason | None = None


class LinkRequest(RequestBody):
    target: MemoryId
    relation: str = Field(min_length=1, max_length=100)


class PrincipalCreate(RequestBody):
    name: PrincipalName
    admin: bool = False


class Written(BaseModel):
    id: str
    offset: int
    event_id: str


class ErrorDetail(BaseModel):
    type: str
    message: str
    details: Any = None


class ErrorBody(BaseModel):
    error: ErrorDetail


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in ((400, "malformed request"), (401, "missing or invalid credentials"),
                       (403, "role does not allow the operation"), (404, "unknown (or not visible) id"),
                       (409, "conflict with the current state"), (413, "body too large"),
                       (422, "invalid input"))
}
