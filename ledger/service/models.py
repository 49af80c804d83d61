"""Request and response models of the HTTP API, with their size limits.

Request bodies forbid unknown fields. A client-supplied ``actor`` is rejected (422) with an
explicit message: the actor of every event is the authenticated principal.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from ledger.access import ROLES
from ledger.content_rules import BLANK_RULE, NONBLANK_PATTERN, metadata_problem
from ledger.lifecycle import STATES
from ledger.names import (
    MAX_NAME,
    MAX_PRINCIPAL,
    NAME_DESCRIPTION,
    NAME_PATTERN,
    PRINCIPAL_DESCRIPTION,
    PRINCIPAL_PATTERN,
)
from ledger.principals import RESERVED_NAMES


def _finite(metadata: dict[str, Any]) -> dict[str, Any]:
    problem = metadata_problem(metadata)
    if problem is not None:
        raise ValueError(problem)
    return metadata


# names follow the one grammar of ``ledger.names``: its regular expression is the schema's pattern
CubeName = Annotated[str, Field(min_length=1, max_length=MAX_NAME, pattern=NAME_PATTERN,
                                description="cube name: " + NAME_DESCRIPTION)]
BranchName = Annotated[str, Field(min_length=1, max_length=MAX_NAME, pattern=NAME_PATTERN,
                                  description="branch name: " + NAME_DESCRIPTION)]
SubjectName = Annotated[str, Field(min_length=1, max_length=MAX_NAME, pattern=NAME_PATTERN,
                                   description="data subject: " + NAME_DESCRIPTION)]
MemoryId = Annotated[str, Field(min_length=1, max_length=200)]
PrincipalName = Annotated[str, Field(min_length=1, max_length=MAX_PRINCIPAL, pattern=PRINCIPAL_PATTERN,
                                     description="principal name: " + PRINCIPAL_DESCRIPTION)]
Tag = Annotated[str, Field(min_length=1, max_length=200)]
Reason = Annotated[str, Field(min_length=1, max_length=2000)]
Metadata = Annotated[dict[str, Any], Field(max_length=200, description="JSON object, at most 200 keys; finite numbers"),
                     AfterValidator(_finite)]
# a text that is not blank: it holds a character outside Z*, Cc, Cf (``ledger.content_rules``)
Text = Annotated[str, Field(min_length=1, pattern=NONBLANK_PATTERN,
                            description="memory text, not blank (" + BLANK_RULE.replace("it holds", "not") + "); "
                            "limit set by the server, default 200,000 characters")]
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
    text: Text
    metadata: Metadata | None = None
    tags: list[Tag] = Field(default_factory=list, max_length=100)
    subject: SubjectName | None = Field(
        default=None, description="data subject whose own key encrypts the text (crypto-shredding)")
    idempotency_key: IdempotencyKey | None = Field(
        default=None, description="a retry with the same key (same principal) writes nothing new")


class MemoryUpdate(RequestBody):
    text: Text
    metadata: Metadata | None = None
    expected_version: int | None = Field(default=None, ge=1, le=2**53)
    reason: Reason | None = None


class StateChange(RequestBody):
    to: State
    reason: Reason | None = None
    expected_version: int | None = Field(default=None, ge=1, le=2**53)


class MergeRequest(RequestBody):
    sources: list[MemoryId] = Field(min_length=2, max_length=100)
    text: Text
    metadata: Metadata | None = None
    reason: Reason | None = None


class LinkRequest(RequestBody):
    target: MemoryId
    relation: str = Field(min_length=1, max_length=100)


class PrincipalCreate(RequestBody):
    name: Annotated[PrincipalName, Field(json_schema_extra={"not": {"enum": sorted(RESERVED_NAMES)}})]
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
