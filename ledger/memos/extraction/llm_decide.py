"""An optional capability of the LLM backends: the model reconciles one candidate with its neighbours.

Reconciliation normally decides by thresholds (keyword + vector similarity, fact keys). A backend
that also implements :class:`Decider` lets the model pick instead: given the candidate and the
scope's nearest current memories (numbered), it answers one JSON object::

    {"action": "UPDATE", "target": 0, "text": "Alice lives in Porto."}

``action`` is ADD (a new memory), UPDATE (a new version of memory ``target``, with ``text``),
DELETE (tombstone ``target``: the candidate contradicts or retracts it) or NOOP (``target``
already says it). The answer is parsed as strictly as extraction: anything else gives a
``Decision`` with ``action=None`` and the reason, and the caller falls back to its thresholds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ledger.memos.extraction.base import Candidate, ExistingMemory
from ledger.memos.extraction.llm_prompt import MAX_TEXT_CHARS, MalformedOutput, load_json_output

DECIDE_VERSION = "decide-1"
ACTIONS = ("ADD", "UPDATE", "DELETE", "NOOP")
MAX_NEIGHBOURS = 10

DECIDE_SYSTEM = """\
You keep a memory of facts up to date. Given a new fact and the numbered existing memories,
answer with one JSON object and nothing else: {"action": "ADD"|"UPDATE"|"DELETE"|"NOOP", \
"target": <memory number or null>, "text": <the updated fact or null>}.
- ADD: the fact is new. target null.
- UPDATE: the fact replaces memory <target> (same person and attribute, new value); text is the new fact.
- DELETE: the fact withdraws or contradicts memory <target> without replacing it.
- NOOP: memory <target> already states the fact."""

DECIDE_LAYOUT = "Existing memories:\n{memories}\n\nNew fact{retracts}: {fact}\n\nJSON:"

DECIDE_PROMPT_SHA256 = hashlib.sha256(f"{DECIDE_VERSION}\n{DECIDE_SYSTEM}\n{DECIDE_LAYOUT}".encode()).hexdigest()


@dataclass(frozen=True)
class Decision:
    """The model's reconciliation of one candidate; ``action`` None means: rejected, see ``error``."""

    action: str | None  # ADD | UPDATE | DELETE | NOOP
    target: str | None = None  # the memory id UPDATE/DELETE/NOOP acts on
    text: str | None = None  # the new text for UPDATE
    model: str | None = None
    prompt_hash: str | None = None
    raw_output: str | None = None
    error: str | None = None


@runtime_checkable
class Decider(Protocol):
    """A backend that can let its model reconcile a candidate (optional; see module doc)."""

    def decide(self, candidate: Candidate, neighbours: Sequence[ExistingMemory]) -> Decision:
        """ADD / UPDATE / DELETE / NOOP for ``candidate`` among ``neighbours``."""
        ...


def build_decide_prompt(candidate: Candidate, neighbours: Sequence[ExistingMemory]) -> list[dict[str, str]]:
    """The chat messages for one decision (neighbours numbered from 0, at most MAX_NEIGHBOURS)."""
    shown = list(neighbours)[:MAX_NEIGHBOURS]
    memories = "\n".join(f"[{i}] {n.text}" for i, n in enumerate(shown)) or "(none)"
    retracts = " (withdrawn by the speaker)" if candidate.retracts else ""
    user = DECIDE_LAYOUT.format(memories=memories, retracts=retracts, fact=candidate.text)
    return [{"role": "system", "content": DECIDE_SYSTEM}, {"role": "user", "content": user}]


def parse_decision(
    raw: str,
    candidate: Candidate,
    neighbours: Sequence[ExistingMemory],
    model: str | None = None,
    prompt_sha: str | None = None,
) -> Decision:
    """The ``Decision`` of one output, or ``action=None`` with the reason (raw text kept)."""
    try:
        action, target, text = _check(load_json_output(raw), candidate, list(neighbours)[:MAX_NEIGHBOURS])
    except MalformedOutput as exc:
        return Decision(None, model=model, prompt_hash=prompt_sha, raw_output=raw, error=str(exc))
    return Decision(action, target, text, model=model, prompt_hash=prompt_sha, raw_output=raw)


def _check(value: object, candidate: Candidate, shown: list[ExistingMemory]) -> tuple[str, str | None, str | None]:
    if not isinstance(value, dict):
        raise MalformedOutput(f"output is a JSON {type(value).__name__}, not an object")
    extra = sorted(set(value) - {"action", "target", "text"})
    if extra:
        raise MalformedOutput(f"unknown field(s) {extra}")
    action = value.get("action")
    if action not in ACTIONS:
        raise MalformedOutput(f"action must be one of {', '.join(ACTIONS)}, not {action!r}"[:200])
    target = value.get("target")
    if action == "ADD":
        if target is not None:
            raise MalformedOutput("ADD takes no target")
        target_id = None
    else:
        if not isinstance(target, int) or isinstance(target, bool) or not 0 <= target < len(shown):
            bound = f"0..{len(shown) - 1}" if shown else "none: there are no existing memories"
            raise MalformedOutput(f"{action} needs a target memory number ({bound}), not {target!r}"[:200])
        target_id = shown[target].id
    text = value.get("text")
    if text is not None and not isinstance(text, str):
        raise MalformedOutput("text must be a string or null")
    if action == "UPDATE":
        text = " ".join((text or candidate.text).split())
        if not text or len(text) > MAX_TEXT_CHARS:
            raise MalformedOutput(f"UPDATE text must be 1..{MAX_TEXT_CHARS} characters")
    else:
        text = None
    return action, target_id, text
