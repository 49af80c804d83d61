"""Chat completion with a local causal LM: the messages through the tokenizer's chat template, greedy.

Shared by the ``local`` extraction backend and the OpenAI-compatible server (``memledger llm
serve``), so a window sent to either gives the same tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ledger.errors import InvalidRequest
from ledger.llm import LocalModel

ROLES = ("system", "user", "assistant", "tool")


class ContextTooLong(InvalidRequest):
    """The prompt and the requested completion do not fit the model's context."""


@dataclass(frozen=True)
class Completion:
    """One greedy completion and its token counts."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" (end of sequence) | "length" (max_new_tokens reached)


class JsonEnd:
    """Watches generated text and says when a leading top-level JSON object or array has closed.

    Text before the first bracket other than whitespace (prose, a code fence) disables it, so the
    output is then left to run to the end of sequence or the token bound.
    """

    def __init__(self) -> None:
        self.depth = 0
        self.started = False
        self.disabled = False
        self.in_string = False
        self.escaped = False
        self.done = False

    def feed(self, text: str) -> bool:
        """Consume ``text``; True once the first JSON value is complete."""
        for ch in text:
            if self.disabled or self.done:
                return self.done
            if not self.started:
                if ch in "{[":
                    self.started, self.depth = True, 1
                elif not ch.isspace():
                    self.disabled = True
                continue
            if self.in_string:
                if self.escaped:
                    self.escaped = False
                elif ch == "\\":
                    self.escaped = True
                elif ch == '"':
                    self.in_string = False
            elif ch == '"':
                self.in_string = True
            elif ch in "{[":
                self.depth += 1
            elif ch in "}]":
                self.depth -= 1
                if self.depth == 0:
                    self.done = True
                    return True
        return False


def render_chat(model: LocalModel, messages: Sequence[dict[str, str]]) -> str:
    """The prompt text: the tokenizer's chat template when it has one, else ChatML or ``Role: text`` lines."""
    tok = model.tokenizer
    if getattr(tok, "chat_template", None):
        return str(tok.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True))
    if "<|im_start|>" in tok.get_vocab():
        body = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
        return body + "<|im_start|>assistant\n"
    return "".join(f"{m['role'].capitalize()}: {m['content']}\n" for m in messages) + "Assistant:"


def context_limit(model: LocalModel) -> int:
    """The model's context length in tokens (0: unknown)."""
    return int(getattr(model.model.config.get_text_config(), "max_position_embeddings", 0) or 0)


def complete(
    model: LocalModel, messages: Sequence[dict[str, str]], max_new_tokens: int, stop_at_json_end: bool = False
) -> Completion:
    """Greedy completion of ``messages`` (deterministic: the same messages give the same text).

    ``stop_at_json_end``: stop as soon as an answer that opened with a JSON object has closed it
    (small models tend to repeat themselves after it; what they would add is never parsed anyway).
    """
    from projections.kv_cache import generate

    if max_new_tokens < 1:
        raise InvalidRequest("max_new_tokens must be at least 1")
    for m in messages:
        if m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise InvalidRequest(f"each message needs a role in {ROLES} and string content")
    ids = model.encode(render_chat(model, messages))
    limit = context_limit(model)
    if limit and len(ids) + max_new_tokens > limit:
        raise ContextTooLong(
            f"the prompt needs {len(ids)} tokens plus {max_new_tokens} to generate; the model's context is {limit}"
        )
    watcher = JsonEnd()
    stop: Callable[[int], bool] | None = None
    if stop_at_json_end:

        def stop(token: int) -> bool:
            return watcher.feed(model.decode([token]))

    gen = generate(model, ids, None, max_new_tokens, stop=stop)
    finish = "length" if len(gen.token_ids) >= max_new_tokens and not watcher.done else "stop"
    return Completion(gen.text, len(ids), len(gen.token_ids), finish)
