"""Opening the vector view of a data directory with the configured embedder.

``memledger.toml``::

    [views.vector]
    embedder = "minilm"        # minilm (default) | hashing (tests and development only)
    exact_threshold = 20000    # at or below this many candidates, score exactly
    ann = "auto"               # "auto" (usearch HNSW for large queries) | "none" (always exact)
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from ledger.errors import InvalidRequest
from ledger.memory_state import Opener
from projections.vector.embedding import Embedder, HashingEmbedder, MiniLMEmbedder
from projections.vector.view import VectorView

EMBEDDERS = {"minilm": MiniLMEmbedder, "hashing": HashingEmbedder}


def embedder_by_name(name: str) -> Embedder:
    """An embedder by its configuration name."""
    try:
        return EMBEDDERS[name]()
    except KeyError:
        raise InvalidRequest(f"unknown embedder {name!r}; known: {', '.join(sorted(EMBEDDERS))}") from None


@functools.cache
def shared_embedder(name: str) -> Embedder:
    """One embedder per name for the whole process (a model is loaded once, whoever embeds)."""
    return embedder_by_name(name)


def vector_settings(config: Any) -> dict[str, Any]:
    """The ``[views.vector]`` table of a ``ledger.config.Config`` (empty when absent)."""
    views = config.section("views") if config is not None else {}
    value = views.get("vector", {}) if isinstance(views, dict) else {}
    return value if isinstance(value, dict) else {}


def open_vector_view(
    data_dir: str | Path, config: Any = None, opener: Opener | None = None, embedder: Embedder | None = None
) -> VectorView:
    """The embedded vector view at ``<data_dir>/views/vector.sqlite`` (cache: ``views/embedding_cache.sqlite``)."""
    settings = vector_settings(config)
    emb = embedder or embedder_by_name(str(settings.get("embedder", "minilm")))
    ann = settings.get("ann", "auto")
    if ann not in ("auto", "none", None):
        raise InvalidRequest(f"[views.vector] ann must be 'auto' or 'none', not {ann!r}")
    return VectorView(
        Path(data_dir) / "views" / "vector.sqlite",
        emb,
        opener,
        exact_threshold=int(settings.get("exact_threshold", 20_000)),
        ann=None if ann in ("none", None) else "auto",
    )
