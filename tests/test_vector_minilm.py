"""The real model: MiniLM loads offline from its PyPI package and ranks a related sentence first."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from vector_events import make_event  # noqa: E402

from ledger import events as ev  # noqa: E402
from projections.vector.embedding import MiniLMEmbedder  # noqa: E402
from projections.vector.view import VectorView  # noqa: E402


@pytest.mark.slow
def test_minilm_offline_ranks_the_related_sentence_first(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    emb = MiniLMEmbedder()
    vecs = emb.embed(["The cat sat on the mat.", "Quarterly revenue grew by 12 percent."])
    assert vecs.shape == (2, 384) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, rtol=1e-4)
    texts = [
        "The stock market fell sharply on Monday.",
        "My dog loves to chase the ball in the park.",
        "The recipe needs two cups of flour and an egg.",
        "Melanie painted a sunrise over the lake last summer.",
    ]
    view = VectorView(tmp_path / "v.sqlite", emb)
    view.apply_batch(
        [make_event(i, "c", ev.MEMORY_ADDED, {"memory_id": f"m{i}", "text": t}) for i, t in enumerate(texts)]
    )
    hits = view.vector_search(view.embed_query("Which pet enjoys playing fetch outdoors?"), 4)
    assert hits[0][0] == "m1"
    assert hits[0][1] > hits[1][1] + 0.1
    hits = view.vector_search(view.embed_query("What did she paint?"), 1)
    assert hits[0][0] == "m3"
    view.close()
