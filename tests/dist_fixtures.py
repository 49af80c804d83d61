"""Small helpers shared by the distributed-tier tests."""

from __future__ import annotations

import hashlib
import re

import numpy as np


class WordHashEmbedder:
    """Deterministic bag-of-words embedder for tests: texts sharing words get similar vectors."""

    model_id = "test/word-hash-64"
    dim = 64

    def embed(self, texts):
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in re.findall(r"\w+", t.lower()):
                h = int.from_bytes(hashlib.blake2b(w.encode(), digest_size=4).digest(), "little")
                out[i, h % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return out / norms
