"""The ``[extraction]`` keys the LLM backends read: model, base_url, api_key_env, max_new_tokens, timeout.

Example (``memledger.toml``)::

    [extraction]
    backend = "openai"                     # or "local"
    model = "smollm2"                      # local: "smollm2" or a model directory; openai: the served name
    base_url = "http://127.0.0.1:8400/v1"  # openai only (e.g. `memledger llm serve`)
    api_key_env = "OPENAI_API_KEY"         # openai only: the NAME of the variable holding the key
    max_new_tokens = 256                   # bound on each answer
    timeout = 120                          # openai only: seconds per request
    json_mode = false                      # openai only: send response_format {"type": "json_object"}

Other keys of the section belong to the extraction consumer and are ignored here. Every bad
value is one ``InvalidRequest`` line naming the key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ledger.errors import InvalidRequest
from ledger.llm import DEFAULT_MODEL

MAX_NEW_TOKENS_LIMIT = 4096
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def extraction_section(config: Any) -> Mapping[str, Any]:
    """The ``[extraction]`` table: given itself (a mapping, as the registry passes it), or read from a
    ``Config``; {} for None."""
    if config is None:
        return {}
    if hasattr(config, "section"):
        return dict(config.section("extraction"))
    if isinstance(config, Mapping):
        return config
    raise InvalidRequest(f"[extraction] must be a table, not {type(config).__name__}")


def _text(section: Mapping[str, Any], key: str, default: str | None = None) -> str | None:
    value = section.get(key, default)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(f"[extraction] {key} must be a non-empty string, not {value!r}"[:200])
    return value.strip()


def _number(section: Mapping[str, Any], key: str, default: float, low: float, high: float, kind: type) -> Any:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or (kind is int and not isinstance(value, int)):
        raise InvalidRequest(f"[extraction] {key} must be {'an integer' if kind is int else 'a number'}, not {value!r}")
    if not low <= value <= high:
        raise InvalidRequest(f"[extraction] {key} must be between {low:g} and {high:g}, not {value!r}")
    return kind(value)


@dataclass(frozen=True)
class LLMExtractionSettings:
    """What the ``local`` and ``openai`` extraction backends are configured with."""

    model: str = DEFAULT_MODEL
    base_url: str | None = None
    api_key_env: str | None = None
    max_new_tokens: int = 256
    timeout: float = 120.0
    json_mode: bool = False

    @staticmethod
    def from_config(config: Any, backend: str) -> LLMExtractionSettings:
        """Read and check the section for ``backend`` ("local" or "openai")."""
        section = extraction_section(config)
        model = _text(section, "model", DEFAULT_MODEL if backend == "local" else None)
        base_url = _text(section, "base_url")
        api_key_env = _text(section, "api_key_env")
        json_mode = section.get("json_mode", False)
        if not isinstance(json_mode, bool):
            raise InvalidRequest(f"[extraction] json_mode must be true or false, not {json_mode!r}")
        if backend == "openai":
            if base_url is None:
                raise InvalidRequest(
                    "[extraction] backend 'openai' needs base_url, e.g. http://127.0.0.1:8400/v1 (memledger llm serve)"
                )
            if not re.match(r"https?://[^/\s]+", base_url):
                raise InvalidRequest(f"[extraction] base_url must be an http(s) URL, not {base_url!r}")
            if model is None:
                raise InvalidRequest("[extraction] backend 'openai' needs model (the name the endpoint serves)")
        if api_key_env is not None and not _ENV_NAME.fullmatch(api_key_env):
            raise InvalidRequest(
                "[extraction] api_key_env must be the NAME of an environment variable holding the key, not the key"
            )
        return LLMExtractionSettings(
            model=model or DEFAULT_MODEL,
            base_url=base_url,
            api_key_env=api_key_env,
            max_new_tokens=_number(section, "max_new_tokens", 256, 1, MAX_NEW_TOKENS_LIMIT, int),
            timeout=_number(section, "timeout", 120.0, 0.1, 3600, float),
            json_mode=json_mode,
        )
