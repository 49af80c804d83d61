"""Request and response models of the HTTP API, with their size limits.

Request bodies forbid unknown fields. A client-supplied ``actor`` is rejected (422) with an
explicit message: the actor of every event is the authenticated principal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal, Union, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    WithJsonSchema,
    model_validator,
)
from typing_extensions import TypeAliasType

from ledger.access import ROLES
from ledger.errors import InternalError
from ledger.lifecycle import STATES
from ledger.principals import RESERVED_NAMES
from ledger.rules.content import BLANK_RULE, NONBLANK_PATTERN
from ledger.rules.names import (
    MAX_NAME,
    MAX_PRINCIPAL,
    NAME_DESCRIPTION,
    NAME_PATTERN,
    PRINCIPAL_DESCRIPTION,
    PRINCIPAL_PATTERN,
)
from ledger.rules.timepoints import TIME_PATTERN


def _json_int(value: Any) -> Any:
    if isinstance(value, bool | str):
        raise ValueError("must be a JSON integer")
    return value


def _unique(items: list[str]) -> list[str]:
    if len(set(items)) != len(items):
        raise ValueError("items must be unique")
    return items


# An integer body field takes what its schema says: no "5" or true, but 5.0. Write it as
# ``Annotated[int, Field(ge=..., le=...), JSON_INT]`` (the bounds before the validator, so that
# pydantic states them in the schema).
JSON_INT = BeforeValidator(_json_int)

# body fields take what their schema type says: no "5" or true for an integer, no 0 or "yes" for a boolean
JsonBool = StrictBool
Version = Annotated[int, Field(ge=1, le=2**53), JSON_INT]

# names follow the one grammar of ``ledger.rules.names``: its regular expression is the schema's pattern
CubeName = Annotated[
    str, Field(min_length=1, max_length=MAX_NAME, pattern=NAME_PATTERN, description="cube name: " + NAME_DESCRIPTION)
]
BranchName = Annotated[
    str, Field(min_length=1, max_length=MAX_NAME, pattern=NAME_PATTERN, description="branch name: " + NAME_DESCRIPTION)
]
SubjectName = Annotated[
    str, Field(min_length=1, max_length=MAX_NAME, pattern=NAME_PATTERN, description="data subject: " + NAME_DESCRIPTION)
]
MemoryId = Annotated[str, Field(min_length=1, max_length=200)]
PrincipalName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_PRINCIPAL,
        pattern=PRINCIPAL_PATTERN,
        description="principal name: " + PRINCIPAL_DESCRIPTION,
    ),
]
Tag = Annotated[str, Field(min_length=1, max_length=200)]
Tags = Annotated[list[Tag], AfterValidator(_unique), Field(max_length=100, json_schema_extra={"uniqueItems": True})]
Reason = Annotated[str, Field(min_length=1, max_length=2000, pattern=NONBLANK_PATTERN)]  # when given: not blank
# a reason an erasure or hold must give: not blank (the rule of ledger.rules.content)
RequiredReason = Annotated[str, Field(min_length=1, max_length=2000, pattern=NONBLANK_PATTERN)]
# a memory filter (ledger.rules.filters); its schema is in the OpenAPI components (service/app.py)
Filter = Annotated[dict[str, Any], WithJsonSchema({"$ref": "#/components/schemas/Filter"})]
# Metadata values: any JSON, numbers within ±(2**53 - 1), the interoperable range of I-JSON (RFC 7493):
# finite (no NaN, Infinity or 1e400), exact as a double for every reader, within the 64-bit integers
# of the canonical encoding. One range for integers and fractions alike, because JSON Schema cannot
# tell 1e20 from 100000000000000000000 (every double beyond 2**53 is a whole number): only such a
# rule can be stated exactly in the schema. (The core accepts any finite number it can encode.)
METADATA_MAX = 2**53 - 1
METADATA_MIN = -METADATA_MAX
if TYPE_CHECKING:  # a recursive pydantic alias the type checker cannot follow: any JSON value
    MetadataValue = Any
else:
    MetadataValue = TypeAliasType(
        "MetadataValue",
        Union[  # noqa: UP007 - a recursive alias needs Union
            StrictBool,
            Annotated[int, Field(ge=METADATA_MIN, le=METADATA_MAX)],
            Annotated[float, Field(ge=METADATA_MIN, le=METADATA_MAX, allow_inf_nan=False)],
            str,
            None,
            list["MetadataValue"],
            dict[str, "MetadataValue"],
        ],
    )
Metadata = Annotated[
    dict[str, MetadataValue],
    Field(max_length=200, description="JSON object, at most 200 keys; numbers within ±(2**53 - 1)"),
]
# a text that is not blank: it holds a character outside Z*, Cc, Cf (``ledger.rules.content``)
Text = Annotated[
    str,
    Field(
        min_length=1,
        pattern=NONBLANK_PATTERN,
        description="memory text, not blank (" + BLANK_RULE.replace("it holds", "not") + "); "
        "limit set by the server, default 200,000 characters",
    ),
]
IdempotencyKey = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:-]+$")]
Role = Literal["owner", "writer", "reader", "auditor"]
State = Literal["generated", "activated", "merged", "archived", "frozen"]
if tuple(get_args(Role)) != ROLES or tuple(get_args(State)) != STATES:  # pragma: no cover - a typo in this file
    raise InternalError("ledger.service.models: the Role and State literals disagree with ROLES and STATES")

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
    tags: Tags = Field(default_factory=list)
    subject: SubjectName | None = Field(
        default=None, description="data subject whose own key encrypts the text (crypto-shredding)"
    )
    idempotency_key: IdempotencyKey | None = Field(
        default=None, description="a retry with the same key (same principal) writes nothing new"
    )
    allow_duplicate: JsonBool = Field(
        default=False,
        description="write even if a current memory of the cube with the same scope and subject says the same "
        "(by default such an add writes nothing and returns that memory, with duplicate: true)",
    )


ScopeId = Annotated[str, Field(min_length=1, max_length=200, pattern=NONBLANK_PATTERN)]


class MessageBody(RequestBody):
    role: Literal["user", "assistant", "system", "tool"]
    content: Annotated[
        str,
        Field(
            min_length=1,
            pattern=NONBLANK_PATTERN,
            description="the message, verbatim; not blank (" + BLANK_RULE.replace("it holds", "not") + "); "
            "at most 200,000 characters, and the server's body limit applies",
        ),
    ]
    name: ScopeId | None = Field(default=None, description="the speaker's display name")
    timestamp: Annotated[str, Field(max_length=64, pattern=f"^{TIME_PATTERN}$")] | None = Field(
        default=None, description="ISO-8601 time the message was said (e.g. 2026-11-25T10:00:00Z; no zone: UTC)"
    )


class MessagesIngest(RequestBody):
    messages: list[MessageBody] = Field(min_length=1, max_length=1000)
    user_id: ScopeId | None = None
    agent_id: ScopeId | None = None
    run_id: ScopeId | None = None
    session_id: ScopeId | None = None
    subject: SubjectName | None = Field(default=None, description="data subject whose key also seals the messages")
    batch_id: IdempotencyKey | None = Field(
        default=None, description="a retry with the same batch id (same principal) writes nothing new"
    )


class MemoryUpdate(RequestBody):
    text: Text
    metadata: Metadata | None = None
    expected_version: Version | None = None
    reason: Reason | None = None


class StateChange(RequestBody):
    to: State
    reason: Reason | None = None
    expected_version: Version | None = None


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
    admin: JsonBool = False


class Written(BaseModel):
    id: str
    offset: int
    event_id: str
    duplicate: bool = Field(default=False, description="an add that wrote nothing: id is the memory it duplicates")


class ErrorDetail(BaseModel):
    type: str
    message: str
    details: Any = None


class ErrorBody(BaseModel):
    error: ErrorDetail


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in (
        (400, "malformed request"),
        (401, "missing or invalid credentials"),
        (403, "role does not allow the operation"),
        (404, "unknown (or not visible) id"),
        (409, "conflict with the current state"),
        (413, "body too large"),
        (422, "invalid input"),
    )
}
