"""Extraction backends by name: a plain name -> factory mapping.

``[extraction] backend`` names one of ``EXTRACTORS`` (``rules``, ``local``: a transformers model
on this machine, ``openai``: any OpenAI-compatible endpoint; more with :func:`register_extractor`),
or a ``"module:function"`` factory of your own. A factory takes the ``[extraction]``
table (a dict; empty when there is no configuration) and returns an ``Extractor``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ledger.config import resolve
from ledger.errors import InvalidRequest
from ledger.memos.extraction.base import Extractor

Factory = Callable[[Mapping[str, Any]], Extractor]

# name -> factory, or "module:function" of one (imported on first use)
EXTRACTORS: dict[str, Factory | str] = {
    "rules": "ledger.memos.extraction.rules:build",
    "local": "ledger.memos.extraction.local:make_local_extractor",
    "openai": "ledger.memos.extraction.openai_compat:make_openai_extractor",
}


def register_extractor(name: str, factory: Factory | str) -> None:
    """Make ``name`` build its extractor with ``factory`` (replacing any earlier one)."""
    if not isinstance(name, str) or not name or ":" in name:
        raise InvalidRequest(f"extractor name must be a non-empty string without ':', not {name!r}")
    EXTRACTORS[name] = factory


def known_extractors() -> list[str]:
    """Every registered extractor name."""
    return sorted(EXTRACTORS)


def build_extractor(name: str, options: Mapping[str, Any] | None = None) -> Extractor:
    """The extractor called ``name`` (a registered name or ``"module:function"``), built with ``options``."""
    target = EXTRACTORS.get(name)
    if target is None:
        if ":" not in name:
            raise InvalidRequest(f"unknown extractor {name!r}; known: {', '.join(known_extractors())}")
        target = name
    factory = resolve(target, f"extractor {name!r}") if isinstance(target, str) else target
    return factory(dict(options or {}))
