"""The extraction prompt every LLM backend sends, and the strict parser of what comes back.

The model is asked for exactly one JSON object::

    {"facts": [{"text": "Alice lives in Porto.", "retracts": false, "key": "alice|lives_in",
                "observed_at": "2023-05-08", "source": [1]}]}

where ``source`` lists the numbers the prompt gave the messages (``[0]``, ``[1]``, ...). The parser
accepts the whole output as JSON, or the content of exactly one fenced ```json block; anything else
(prose, truncation, a duplicated key, a wrong type, an out-of-window index, one bad fact among good
ones) rejects the whole output: :func:`parse_extraction` then returns an ``Extraction`` with no
candidates, the reason in ``error`` and the raw text kept, so nothing is ever half-applied.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ledger.memos.extraction.base import Candidate, ExistingMemory, Extraction, Message

PROMPT_VERSION = "llm-1"  # bump whenever SYSTEM or the user layout below changes
MAX_FACTS = 50
MAX_TEXT_CHARS = 500
MAX_KEY_CHARS = 120
MAX_OUTPUT_CHARS = 64_000
MAX_CONTEXT_MEMORIES = 10
FACT_FIELDS = frozenset({"text", "retracts", "key", "observed_at", "source"})

SYSTEM = """\
You extract durable facts about the people in a conversation.
Answer with one JSON object and nothing else, in this form:
{"facts": [{"text": "Sam works as a nurse.", "retracts": false, "key": "sam|job", \
"observed_at": "2021-03-08", "source": [0]}]}
Rules:
- text: one short third-person statement that names the person.
- retracts: true when the message withdraws the fact ("I no longer work as a nurse" gives \
text "Sam works as a nurse." with retracts true), else false.
- key: the person and the attribute in lowercase, "name|attribute"; facts with the same key replace each other.
- observed_at: the ISO-8601 date the fact was stated or refers to, or null.
- source: the numbers of the messages that state the fact.
Skip greetings, questions and small talk. With no facts, answer {"facts": []}."""

USER_LAYOUT = "Known facts:\n{known}\n\nConversation:\n{conversation}\n\nJSON:"


def _fact(text: str, key: str, source: list[int], retracts: bool = False, observed: str | None = None) -> dict:
    return {"text": text, "retracts": retracts, "key": key, "observed_at": observed, "source": source}


DEMOS: tuple[tuple[str, str], ...] = tuple(
    (conversation, json.dumps({"facts": facts}))
    for conversation, facts in (
        (
            "[0] user Sam (2021-03-08): I work as a nurse.\n[1] assistant: That sounds demanding.",
            [_fact("Sam works as a nurse.", "sam|job", [0], observed="2021-03-08")],
        ),
        (
            "[0] user Kim (2022-11-02): Hi! How are you?\n[1] assistant: Fine, thanks.\n"
            "[2] user Kim (2022-11-02): I no longer smoke, and I don't eat meat.",
            [
                _fact("Kim smokes.", "kim|smokes", [2], True, "2022-11-02"),
                _fact("Kim does not eat meat.", "kim|diet", [2], observed="2022-11-02"),
            ],
        ),
    )
)
"""Worked examples sent before the real window as earlier chat turns (small models need them)."""

PROMPT_SHA256 = hashlib.sha256(
    json.dumps([PROMPT_VERSION, SYSTEM, USER_LAYOUT, DEMOS], ensure_ascii=False).encode()
).hexdigest()
"""The prompt template's hash (what changes when the wording changes)."""

_FENCE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\n(.*?)```", re.DOTALL)


class MalformedOutput(ValueError):
    """The model's output is not one valid facts object; the message says why."""


class _NotJSON(MalformedOutput):
    """The text is not JSON at all (a fenced block inside it may still be)."""


# -- the prompt ------------------------------------------------------------------------------
def _speaker(message: Message) -> str:
    who = message.name
    if not who and message.role == "user":
        who = message.scope.get("user_id")
    return f"{message.role} {who}" if who else message.role


def render_window(messages: Sequence[Message]) -> str:
    """The numbered conversation lines the model's ``source`` indexes refer to."""
    lines = []
    for i, m in enumerate(messages):
        when = f" ({m.timestamp})" if m.timestamp else ""
        lines.append(f"[{i}] {_speaker(m)}{when}: {m.content}")
    return "\n".join(lines)


def build_prompt(messages: Sequence[Message], context: Sequence[ExistingMemory] = ()) -> list[dict[str, str]]:
    """The chat messages sent for one window: system, the worked examples, then the window."""
    chat = [{"role": "system", "content": SYSTEM}]
    for conversation, answer in DEMOS:
        chat.append({"role": "user", "content": USER_LAYOUT.format(known="(none)", conversation=conversation)})
        chat.append({"role": "assistant", "content": answer})
    known = "\n".join(f"- {c.text}" for c in list(context)[:MAX_CONTEXT_MEMORIES]) or "(none)"
    chat.append({"role": "user", "content": USER_LAYOUT.format(known=known, conversation=render_window(messages))})
    return chat


def prompt_hash(chat: Sequence[dict[str, str]]) -> str:
    """sha256 of the exact chat messages sent (canonical JSON), recorded with every extraction."""
    blob = json.dumps(list(chat), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


# -- the strict parser -----------------------------------------------------------------------
def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise MalformedOutput(f"duplicate key {k!r}")
        out[k] = v
    return out


def _no_constants(name: str) -> Any:
    raise MalformedOutput(f"{name} is not JSON")


def strict_json(text: str) -> Any:
    """``json.loads`` that refuses duplicate keys and NaN/Infinity."""
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except json.JSONDecodeError as exc:
        raise _NotJSON(f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise MalformedOutput("JSON nested too deeply") from None


def load_json_output(raw: str) -> Any:
    """The JSON value of a model's output: the whole text, or the one fenced block it contains."""
    if not isinstance(raw, str):
        raise MalformedOutput(f"output is {type(raw).__name__}, not text")
    if len(raw) > MAX_OUTPUT_CHARS:
        raise MalformedOutput(f"output is {len(raw)} characters (at most {MAX_OUTPUT_CHARS})")
    text = raw.strip()
    if not text:
        raise MalformedOutput("empty output")
    try:
        return strict_json(text)
    except _NotJSON:
        blocks = _FENCE.findall(text)
        if not blocks:
            raise
        if len(blocks) > 1:
            raise MalformedOutput(f"{len(blocks)} fenced blocks; expected exactly one") from None
        return strict_json(blocks[0].strip())


def _check_fact(i: int, fact: Any, window: Sequence[Message]) -> Candidate:
    where = f"facts[{i}]"
    if not isinstance(fact, dict):
        raise MalformedOutput(f"{where} is {type(fact).__name__}, not an object")
    extra = sorted(set(fact) - FACT_FIELDS)
    if extra:
        raise MalformedOutput(f"{where} has unknown field(s) {', '.join(map(repr, extra))}")
    text = fact.get("text")
    if not isinstance(text, str):
        raise MalformedOutput(f"{where}.text must be a string")
    text = " ".join(text.split())
    if not text:
        raise MalformedOutput(f"{where}.text is empty")
    if len(text) > MAX_TEXT_CHARS:
        raise MalformedOutput(f"{where}.text is {len(text)} characters (at most {MAX_TEXT_CHARS})")
    retracts = fact.get("retracts", False)
    if not isinstance(retracts, bool):
        raise MalformedOutput(f"{where}.retracts must be true or false")
    key = fact.get("key")
    if key is not None:
        if not isinstance(key, str):
            raise MalformedOutput(f"{where}.key must be a string or null")
        key = " ".join(key.split()).lower()
        if not key or len(key) > MAX_KEY_CHARS:
            raise MalformedOutput(f"{where}.key must be 1..{MAX_KEY_CHARS} characters")
    source = fact.get("source")
    if not isinstance(source, list) or not source:
        raise MalformedOutput(f"{where}.source must be a non-empty list of message numbers")
    for s in source:
        if not isinstance(s, int) or isinstance(s, bool) or not 0 <= s < len(window):
            raise MalformedOutput(f"{where}.source: {s!r} is not a message number (0..{len(window) - 1})")
    if len(set(source)) != len(source):
        raise MalformedOutput(f"{where}.source repeats a message number")
    observed = fact.get("observed_at")
    if observed is not None:
        if not isinstance(observed, str):
            raise MalformedOutput(f"{where}.observed_at must be an ISO-8601 string or null")
        try:
            datetime.fromisoformat(observed)
        except ValueError:
            raise MalformedOutput(f"{where}.observed_at {observed[:40]!r} is not ISO-8601") from None
    else:  # the fact was observed when its (latest) source message was written
        stamps = [t for t in (window[s].timestamp for s in source) if t]
        observed = max(stamps) if stamps else None
    return Candidate(
        text=text,
        source_offsets=tuple(sorted(window[s].offset for s in source)),
        retracts=retracts,
        key=key,
        observed_at=observed,
        rule=PROMPT_VERSION,
    )


def parse_facts(raw: str, window: Sequence[Message]) -> tuple[Candidate, ...]:
    """Every candidate of a model's output, or :class:`MalformedOutput` (nothing partial)."""
    value = load_json_output(raw)
    if not isinstance(value, dict):
        raise MalformedOutput(f"output is a JSON {type(value).__name__}, not an object with 'facts'")
    if set(value) != {"facts"}:
        extra = sorted(set(value) - {"facts"})
        raise MalformedOutput(f"unknown top-level field(s) {extra}" if extra else "missing 'facts'")
    facts = value["facts"]
    if not isinstance(facts, list):
        raise MalformedOutput("'facts' must be a list")
    if len(facts) > MAX_FACTS:
        raise MalformedOutput(f"{len(facts)} facts (at most {MAX_FACTS})")
    return tuple(_check_fact(i, f, window) for i, f in enumerate(facts))


def parse_extraction(raw: str, window: Sequence[Message], model: str | None, prompt_sha: str | None) -> Extraction:
    """The ``Extraction`` of one output: every candidate, or none and the reason (raw text kept)."""
    try:
        candidates = parse_facts(raw, window)
    except MalformedOutput as exc:
        return Extraction(candidates=(), model=model, prompt_hash=prompt_sha, raw_output=raw, error=str(exc))
    return Extraction(candidates=candidates, model=model, prompt_hash=prompt_sha, raw_output=raw)
