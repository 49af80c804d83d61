"""The ``openai`` extraction backend: any OpenAI-compatible ``/v1/chat/completions`` endpoint.

``make_openai_extractor(config)`` reads ``[extraction] base_url, model, api_key_env,
max_new_tokens, timeout, json_mode``. Requests are greedy (temperature 0). ``Extraction.model`` is
``openai:<base_url>:<model the endpoint says answered>``; an unreachable endpoint raises
``ModelError`` (the window is retried), a malformed answer is recorded and skipped. An endpoint
that refuses ``response_format`` (``json_mode = true``) is asked again without it, once per
process (the prompt asks for JSON anyway, and the parser is strict either way); any other refusal
raises ``ModelRequestRefused`` and stops the consumer, since no retry cures it.
"""

from __future__ import annotations

import sys
from typing import Any

from ledger.llm import ModelRequestRefused, OpenAICompatibleLLM
from ledger.memos.extraction.llm_extractor import LLMExtractor
from ledger.memos.extraction.llm_settings import LLMExtractionSettings


class OpenAIChat:
    """A :class:`~ledger.memos.extraction.llm_extractor.ChatBackend` over HTTP."""

    def __init__(self, client: OpenAICompatibleLLM, max_new_tokens: int = 256, json_mode: bool = False):
        self.client = client
        self.max_new_tokens = max_new_tokens
        self.json_mode = json_mode
        self._served = client.model

    @property
    def model_id(self) -> str:
        return f"openai:{self.client.base_url}:{self._served}"

    def complete(self, messages: list[dict[str, str]]) -> str:
        fmt = {"type": "json_object"} if self.json_mode else None
        try:
            answer = self.client.chat_completion(messages, self.max_new_tokens, response_format=fmt)
        except ModelRequestRefused as exc:
            if fmt is None or exc.status != 400 or "response_format" not in str(exc):
                raise
            print(
                f"LLM endpoint {self.client.base_url} refuses response_format json_object; asking without it",
                file=sys.stderr,
            )
            self.json_mode = False
            answer = self.client.chat_completion(messages, self.max_new_tokens)
        self._served = answer.model
        return answer.text


def make_openai_extractor(config: Any = None) -> LLMExtractor:
    """The ``openai`` backend from ``[extraction]`` (one-line ``InvalidRequest`` on a bad key)."""
    s = LLMExtractionSettings.from_config(config, "openai")
    client = OpenAICompatibleLLM(str(s.base_url), s.model, s.api_key_env, s.timeout)
    return LLMExtractor("openai", OpenAIChat(client, s.max_new_tokens, s.json_mode))
