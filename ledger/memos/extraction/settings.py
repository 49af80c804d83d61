"""``[extraction]`` of ``memledger.toml``: which backend extracts, and the reconciliation thresholds.

::

    [extraction]
    backend = "rules"            # rules | local | openai | "module:function"
    in_process = true            # serve and the CLI's catch-up run it (false: only `memledger consume --extractor`)
    duplicate_threshold = 0.9    # similarity at or above which a candidate is a duplicate (NOOP)
    update_threshold = 0.75      # similarity at or above which it supersedes a memory (UPDATE)
    retract_threshold = 0.5      # similarity a retraction needs to a memory of its fact key (DELETE)
    similarity = "hybrid"        # hybrid: word sets and [views.vector]'s embedder | lexical: word sets only
    vector_duplicate_threshold = 0.93  # cosine at or above which a paraphrase is a duplicate (NOOP)
    context = 10                 # current memories handed to the extractor as context
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ledger.errors import InvalidRequest

SIMILARITIES = ("hybrid", "lexical")


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Reconciliation thresholds (similarities from 0 to 1)."""

    duplicate: float = 0.9
    update: float = 0.75
    retract: float = 0.5
    vector_duplicate: float = 0.93


@dataclass(frozen=True, slots=True)
class ExtractionSettings:
    """The parsed ``[extraction]`` table."""

    backend: str = "rules"
    in_process: bool = True
    thresholds: Thresholds = field(default_factory=Thresholds)
    context: int = 10
    options: dict[str, Any] = field(default_factory=dict)
    similarity: str = "hybrid"

    @staticmethod
    def from_config(config: Any) -> ExtractionSettings:
        """From a ``Config`` (None: the defaults); one clear error for a bad value."""
        raw = config.section("extraction") if config is not None else {}
        backend = raw.get("backend", "rules")
        if not isinstance(backend, str) or not backend:
            raise InvalidRequest("[extraction] backend must be a non-empty string")
        in_process = raw.get("in_process", True)
        if not isinstance(in_process, bool):
            raise InvalidRequest("[extraction] in_process must be true or false")
        values = {}
        for key, default in (("duplicate", 0.9), ("update", 0.75), ("retract", 0.5), ("vector_duplicate", 0.93)):
            v = raw.get(f"{key}_threshold", default)
            if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= 1:
                raise InvalidRequest(f"[extraction] {key}_threshold must be a number from 0 to 1")
            values[key] = float(v)
        if values["update"] > values["duplicate"]:
            raise InvalidRequest("[extraction] update_threshold must not exceed duplicate_threshold")
        context = raw.get("context", 10)
        if isinstance(context, bool) or not isinstance(context, int) or not 0 <= context <= 100:
            raise InvalidRequest("[extraction] context must be an integer from 0 to 100")
        similarity = raw.get("similarity", "hybrid")
        if similarity not in SIMILARITIES:
            raise InvalidRequest(
                f"[extraction] similarity must be one of {', '.join(SIMILARITIES)}, not {similarity!r}"
            )
        return ExtractionSettings(backend, in_process, Thresholds(**values), context, dict(raw), similarity)
