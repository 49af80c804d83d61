"""Reconciliation: each candidate fact against the scope's current memories -> ADD, UPDATE, DELETE, NOOP.

For a candidate stating a fact, in this order:

* **NOOP** when a current memory of the scope says the same: the same normalised text (case,
  punctuation, white space and articles ignored), or a similarity at or above
  ``duplicate_threshold``. No memory is written; the decision names the existing memory.
* **UPDATE** when a writable memory has the same fact key (``alice|residence``), or a similarity at
  or above ``update_threshold``, and different content: a new version of that memory.
* **ADD** otherwise.

For a candidate that retracts a fact (``retracts=True``): **DELETE** (a ``memory.deleted``
tombstone) of the memory stating it: the same normalised text, or the same fact key, a
similarity at or above ``retract_threshold`` and word sets one of which contains the other (a
retraction of "lives in Oslo" never deletes the memory that already says "lives in Porto"), or the
same fact key and the same names and numbers ("moved to Porto" for a retracted "lives in Porto"),
or any similarity at or above ``duplicate_threshold``;
a **NOOP** when no memory states it. Candidates of one batch are reconciled in order, each against
the memories as the earlier ones left them. Similarity is lexical (Jaccard over word sets) and, with
``[extraction] similarity = "hybrid"`` (the default), also the cosine of the memories' embeddings
(the vector view's embedder): a candidate whose cosine to a current memory reaches
``vector_duplicate_threshold`` and that says it with the same polarity (both negated or neither) and
the same names and numbers is a NOOP, a paraphrase ("Alice is living in Oslo these days" of "Alice
lives in Oslo"), and a retraction deletes such a paraphrase too. Cosines only ever make NOOPs and
DELETEs of what a memory already says; an UPDATE needs a fact key or word overlap, since different
values of one attribute embed close together ("likes tea" / "likes coffee": 0.8). Every decision is
recorded, so a replay never embeds again.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ledger.memory_state import MemoryState
from ledger.memos.extraction.base import Candidate, ExistingMemory
from ledger.memos.extraction.settings import Thresholds

ADD, UPDATE, DELETE, NOOP = "ADD", "UPDATE", "DELETE", "NOOP"
KINDS = (ADD, UPDATE, DELETE, NOOP)
_WORD = re.compile(r"\w+", re.U)
_ARTICLES = frozenset({"a", "an", "the"})
_NEGATIONS = re.compile(r"\b(?:not|no|never|nobody|nothing|longer)\b|n't\b|n’t\b", re.I)
Embed = Callable[[Sequence[str]], np.ndarray]  # texts -> unit-norm rows
MAX_CACHED_VECTORS = 50_000


_ANCHOR = re.compile(r"\w*\d\w*|(?<!^)(?<![.!?]\s)\b[A-Z]\w*", re.U)


def anchors(text: str) -> frozenset[str]:
    """Names and numbers of ``text`` (capitalised words after its first, tokens with digits): an
    embedding hardly tells "thing21" from "thing22" or Oslo from Bergen, so a paraphrase must keep them."""
    return frozenset(w.lower() for w in _ANCHOR.findall(text.strip()))


def negated(text: str) -> bool:
    """Whether ``text`` is said negatively (an odd number of negations)."""
    return len(_NEGATIONS.findall(text)) % 2 == 1


class VectorCache:
    """Embeddings of texts (reconciliation embeds a scope's memories once per process, not per batch)."""

    def __init__(self, embed: Embed, limit: int = MAX_CACHED_VECTORS):
        self.embed = embed
        self.limit = limit
        self._rows: dict[str, np.ndarray] = {}

    def of(self, texts: Sequence[str]) -> np.ndarray:
        """A ``(len(texts), dim)`` array of the texts' unit vectors."""
        missing = sorted({t for t in texts if t not in self._rows})
        if missing:
            if len(self._rows) + len(missing) > self.limit:
                self._rows.clear()
            for t, row in zip(missing, self.embed(missing), strict=True):
                self._rows[t] = np.asarray(row, dtype=np.float32)
        return np.stack([self._rows[t] for t in texts]) if texts else np.zeros((0, 0), dtype=np.float32)


def normalise(text: str) -> str:
    """Lower-case words without punctuation and articles, single-spaced (what "the same text" means)."""
    return " ".join(w for w in _WORD.findall(text.lower()) if w not in _ARTICLES)


def similarity(a: str, b: str) -> float:
    """Jaccard similarity of the word sets of ``a`` and ``b`` (1.0: the same normalised words)."""
    x, y = set(normalise(a).split()), set(normalise(b).split())
    if not x or not y:
        return 0.0
    return len(x & y) / len(x | y)


@dataclass(slots=True)
class Current:
    """A current memory of the scope as reconciliation sees it."""

    id: str
    text: str
    key: str | None
    writable: bool = True
    held: bool = False  # a legal hold covers it: it is never deleted or updated
    norm: str = ""
    words: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        self.set_text(self.text)

    def set_text(self, text: str) -> None:
        self.text, self.norm = text, normalise(text)
        self.words = frozenset(self.norm.split())

    def similarity(self, norm: str, words: frozenset[str]) -> float:
        """1.0 for the same normalised text, else the Jaccard similarity of the word sets."""
        if norm == self.norm:
            return 1.0
        if not words or not self.words:
            return 0.0
        return len(words & self.words) / len(words | self.words)


def _states_it(memory: Current, retracted: str) -> bool:
    """Whether ``memory`` states the retracted fact, not another value of its key: one's words contain
    the other's ("lives in Oslo" / "lives in Oslo, Norway"), so a retraction of Oslo never deletes the
    memory that already says Porto."""
    words = frozenset(normalise(retracted).split())
    return bool(words) and (words <= memory.words or memory.words <= words)


@dataclass(frozen=True, slots=True)
class Decision:
    """What became of candidate ``candidate``: the memory written (``memory_id``) or matched (``target``)."""

    kind: str
    candidate: int
    memory_id: str | None = None
    target: str | None = None
    score: float | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"kind": self.kind, "candidate": self.candidate, "reason": self.reason}
        out.update({"memory_id": self.memory_id, "target": self.target, "score": self.score})
        return out


@dataclass(slots=True)
class Pool:
    """The scope's current memories, changed as the decisions of a batch are taken."""

    memories: list[Current] = field(default_factory=list)
    vectors: VectorCache | None = None  # hybrid similarity; None: lexical only

    @staticmethod
    def of(states: Sequence[MemoryState], held: set[str] | None = None, vectors: VectorCache | None = None) -> Pool:
        out = []
        for s in states:
            if s.text is None:
                continue
            key = s.metadata.get("fact_key")
            out.append(
                Current(
                    s.memory_id, s.text, key if isinstance(key, str) else None, s.state in ("generated", "activated")
                )
            )
            out[-1].held = s.memory_id in (held or set())
        return Pool(out, vectors)

    def _cosines(self, text: str, only: list[Current] | None = None) -> list[tuple[float, Current]]:
        """Cosine of ``text`` to each memory (empty without vectors)."""
        pool = self.memories if only is None else only
        if self.vectors is None or not pool:
            return []
        rows = self.vectors.of([m.text for m in pool] + [text])
        sims = rows[:-1] @ rows[-1]
        return [(float(x), m) for x, m in zip(sims, pool, strict=True)]

    def _paraphrased(self, text: str, t: Thresholds) -> tuple[Current | None, float]:
        """The memory saying ``text`` in other words: the best cosine at or above the threshold, with the
        same polarity and the same names and numbers."""
        polarity, names = negated(text), anchors(text)
        best, score = None, 0.0
        for cos, m in self._cosines(text):
            if cos >= t.vector_duplicate and cos > score and negated(m.text) == polarity and anchors(m.text) == names:
                best, score = m, cos
        return best, score

    def context(self, texts: Sequence[str], k: int) -> list[ExistingMemory]:
        """The ``k`` memories most similar to any of ``texts`` (the extractor's context)."""
        if k == 0:
            return []
        probes = [(normalise(t), frozenset(normalise(t).split())) for t in texts]
        best: dict[str, float] = {}
        for text in texts if self.vectors is not None else ():
            for cos, m in self._cosines(text):
                best[m.id] = max(best.get(m.id, 0.0), cos)
        scored = [(max([m.similarity(n, w) for n, w in probes] + [best.get(m.id, 0.0)]), m) for m in self.memories]
        scored = [x for x in scored if x[0] > 0]
        scored.sort(key=lambda x: (-x[0], x[1].id))
        return [ExistingMemory(m.id, m.text, round(s, 6)) for s, m in scored[:k]]

    def _best(self, text: str, only: list[Current] | None = None) -> tuple[Current | None, float]:
        best, score = None, 0.0
        norm = normalise(text)
        words = frozenset(norm.split())
        for m in self.memories if only is None else only:
            s = m.similarity(norm, words)
            if s > score:
                best, score = m, s
        return best, score

    def decide(self, i: int, c: Candidate, t: Thresholds, new_id: str) -> Decision:
        """The decision for candidate ``i`` (``new_id``: the id an ADD gives), applied to the pool."""
        same_key = [m for m in self.memories if c.key is not None and m.key == c.key]
        if c.retracts:
            best, score = self._best(c.text)
            keyed, kscore = self._best(c.text, same_key)
            target = None
            if best is not None and score >= t.duplicate:
                target, why = best, "states the retracted fact"
            elif keyed is not None and kscore >= t.retract and _states_it(keyed, c.text):
                target, score, why = keyed, kscore, "same fact key as the retracted fact"
            elif keyed is not None and anchors(c.text) and anchors(keyed.text) == anchors(c.text):
                target, score, why = keyed, kscore, "same fact key and names as the retracted fact"
            else:
                near, cos = self._paraphrased(c.text, t)
                if near is not None:
                    target, score, why = near, cos, "states the retracted fact in other words"
            if target is None:
                return Decision(NOOP, i, score=round(score, 6), reason="retracts nothing current")
            if target.held or not target.writable:
                why = "under a legal hold" if target.held else "not writable"
                return Decision(NOOP, i, target=target.id, score=round(score, 6), reason=f"would delete, but {why}")
            self.memories.remove(target)
            return Decision(DELETE, i, memory_id=target.id, target=target.id, score=round(score, 6), reason=why)
        best, score = self._best(c.text)
        if best is not None and score >= t.duplicate:
            return Decision(NOOP, i, target=best.id, score=round(score, 6), reason="duplicate of a current memory")
        near, cos = self._paraphrased(c.text, t)
        if near is not None:
            return Decision(NOOP, i, target=near.id, score=round(cos, 6), reason="paraphrase of a current memory")
        open_keyed = [m for m in same_key if m.writable and not m.held]
        if open_keyed:
            target, why = open_keyed[-1], "same fact key"
        elif best is not None and score >= t.update and best.writable and not best.held:
            target, why = best, "similar memory with different content"
        else:
            self.memories.append(Current(new_id, c.text, c.key))
            return Decision(ADD, i, memory_id=new_id, score=round(score, 6) if best else None, reason="new fact")
        target.set_text(c.text)
        target.key = c.key or target.key
        return Decision(UPDATE, i, memory_id=target.id, target=target.id, score=round(score, 6), reason=why)
