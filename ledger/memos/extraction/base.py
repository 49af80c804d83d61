"""The extractor port: what every extraction backend (rules, local model, OpenAI-compatible) returns.

An extractor turns a window of conversation messages into candidate facts. It never writes to the
log: the extraction consumer records each ``Extraction`` (with the model's raw output, so a replay
never calls a model again) and reconciles its candidates against the scope's current memories.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Message:
    """One ingested message, as read back from its ``message.added`` event."""

    offset: int  # log offset of the message event
    message_id: str
    role: str  # "user" | "assistant" | "system" | "tool"
    content: str
    name: str | None = None  # the speaker's display name, when given
    timestamp: str | None = None  # ISO-8601, as given by the caller
    scope: Mapping[str, str] = field(default_factory=dict)  # user_id / agent_id / run_id


@dataclass(frozen=True)
class ExistingMemory:
    """A current memory of the same scope that a candidate may duplicate, update or contradict."""

    id: str
    text: str
    score: float  # similarity to the candidate, 0..1


@dataclass(frozen=True)
class Candidate:
    """One fact an extractor found, and the messages that state it."""

    text: str  # a self-contained third-person statement ("Alice lives in Porto.")
    source_offsets: tuple[int, ...]  # offsets of the message events it came from
    retracts: bool = False  # the message withdraws this fact ("I no longer live in Oslo")
    key: str | None = None  # subject + attribute ("alice|lives_in"): facts with one key supersede each other
    observed_at: str | None = None  # ISO-8601 time the fact was stated or refers to
    rule: str | None = None  # which rule or prompt produced it
    refers_to: str | None = None  # the date a relative date in the message resolved to ("yesterday")


@dataclass(frozen=True)
class Extraction:
    """What one extractor call produced. ``error`` set means: recorded, nothing applied."""

    candidates: tuple[Candidate, ...]
    model: str | None = None  # model id; None for the rules backend
    prompt_hash: str | None = None  # sha256 of the exact prompt sent
    raw_output: str | None = None  # the model's raw text, verbatim
    error: str | None = None  # why the output was rejected (malformed JSON, schema violation)


class Extractor(Protocol):
    """An extraction backend.

    An extractor that never reads ``context`` may say so with a class attribute ``uses_context =
    False`` (the rules do): the consumer then does not rank the scope's memories for it.
    """

    name: str  # "rules" | "local" | "openai"
    version: str  # bumped whenever rules or prompts change what is extracted

    def extract(self, messages: Sequence[Message], context: Sequence[ExistingMemory]) -> Extraction:
        """Candidate facts stated in ``messages`` (``context``: related current memories)."""
        ...
