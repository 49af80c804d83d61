"""The extractor both LLM backends share: prompt, one chat call, strict parse (and the optional decide).

A backend only supplies a :class:`ChatBackend`: how to send chat messages and get text back, and
the model's identity. Malformed output is recorded (``Extraction.error``, raw text kept) and yields
no candidates, and so is a window longer than the model's context (locally, or an endpoint's
``context_length_exceeded``); a model that cannot be reached raises, so the consumer retries the
window later, and an endpoint refusing the request for any other reason raises
``ModelRequestRefused``, which stops the consumer (no retry would cure it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ledger.llm import ModelRequestRefused
from ledger.memos.extraction.base import Candidate, ExistingMemory, Extraction, Message
from ledger.memos.extraction.llm_decide import DECIDE_VERSION, Decision, build_decide_prompt, parse_decision
from ledger.memos.extraction.llm_prompt import PROMPT_VERSION, build_prompt, parse_extraction, prompt_hash
from ledger.memos.llm_chat import ContextTooLong


class ChatBackend(Protocol):
    """Sends chat messages to one model; ``model_id`` names it (recorded in every extraction)."""

    @property
    def model_id(self) -> str: ...

    def complete(self, messages: list[dict[str, str]]) -> str:
        """The model's raw text answer (raises ``ModelError`` when the model cannot be reached)."""
        ...


class LLMExtractor:
    """An :class:`~ledger.memos.extraction.base.Extractor` (and ``Decider``) over a chat backend."""

    def __init__(self, name: str, backend: ChatBackend):
        self.name = name
        self.version = f"{PROMPT_VERSION}+{DECIDE_VERSION}"
        self.backend = backend

    @property
    def model(self) -> str:
        return self.backend.model_id

    def extract(self, messages: Sequence[Message], context: Sequence[ExistingMemory] = ()) -> Extraction:
        """Candidate facts of ``messages``; malformed output gives none and the reason."""
        if not messages:
            return Extraction(candidates=(), model=self.model)
        chat = build_prompt(messages, context)
        sha = prompt_hash(chat)
        try:
            raw = self.backend.complete(chat)
        except ContextTooLong as exc:  # a property of the window, not a passing fault: record it
            return Extraction(candidates=(), model=self.model, prompt_hash=sha, error=str(exc))
        except ModelRequestRefused as exc:
            if not _window_too_long(exc):
                raise
            return Extraction(candidates=(), model=self.model, prompt_hash=sha, error=str(exc)[:4000])
        return parse_extraction(raw, messages, self.model, sha)

    def decide(self, candidate: Candidate, neighbours: Sequence[ExistingMemory]) -> Decision:
        """Let the model reconcile ``candidate``; with no neighbours it is an ADD without a call."""
        if not neighbours:
            return Decision("ADD", model=self.model)
        chat = build_decide_prompt(candidate, neighbours)
        sha = prompt_hash(chat)
        try:
            raw = self.backend.complete(chat)
        except ContextTooLong as exc:
            return Decision(None, model=self.model, prompt_hash=sha, error=str(exc))
        except ModelRequestRefused as exc:
            if not _window_too_long(exc):
                raise
            return Decision(None, model=self.model, prompt_hash=sha, error=str(exc)[:4000])
        return parse_decision(raw, candidate, neighbours, self.model, sha)


def _window_too_long(exc: ModelRequestRefused) -> bool:
    """Whether an endpoint refused the prompt for its length (a property of the window, recorded)."""
    return exc.code == "context_length_exceeded"
