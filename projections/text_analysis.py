"""Text analysis shared by the keyword and graph views: tokens, light stemming, entities.

Pure functions, deterministic, no model: the same text always yields the same terms, which is
what makes a rebuilt view equal to the one it replaces.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache

# Bump when terms() would give other terms for some text: views indexed with the old analysis
# are then dropped and folded again (their postings and erasure depend on it).
ANALYSIS_VERSION = 1

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_ENTITY = re.compile(r"\b[A-Z][\w'&-]*(?:\s+(?:of\s+|the\s+|de\s+)?[A-Z][\w'&-]*)*")

STOPWORDS = frozenset(
    """
a about above after again against all am an and any are aren as at be because been before being below
between both but by can cannot could couldn did didn do does doesn doing don down during each few for from
further had hadn has hasn have haven having he her here hers herself him himself his how i if in into is
isn it its itself just let me more most mustn my myself no nor not now of off on once only or other ought
our ours ourselves out over own same shan she should shouldn so some such than that the their theirs them
themselves then there these they this those through to too under until up very was wasn we were weren what
when where which while who whom why will with won would wouldn you your yours yourself yourselves s t d ll
m re ve y o also yes oh ok okay
""".split()
)

# Capitalised words that start sentences or questions but are not names.
_NOT_ENTITIES = frozenset(
    """
i im i'm it its the a an and but so oh hey hi hello yes no yeah wow what when where who why how which
did do does is are was were have has had can could would should will my your our their this that these
those there here thanks thank sure okay ok well great good nice awesome cool love sounds that's it's
mr mrs ms dr
""".split()
)


@lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    """A light, conservative English suffix stripper (plural, -ing, -ed, -ly); memoised."""
    return _stem(word)


def _stem(word: str) -> str:
    w = word
    if len(w) <= 3 or not w.isalpha():
        return w
    if w.endswith("ies") and len(w) > 4:
        w = w[:-3] + "y"
    elif w.endswith("sses"):
        w = w[:-2]
    elif w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    for suffix in ("ingly", "edly", "ing", "ed", "ly"):
        if w.endswith(suffix) and len(w) - len(suffix) >= 3:
            base = w[: -len(suffix)]
            if len(base) >= 2 and base[-1] == base[-2] and base[-1] not in "lsz":
                base = base[:-1]  # running -> run, stopped -> stop
            w = base
            break
    if w.endswith("e") and len(w) > 4:
        w = w[:-1]  # make / making -> mak, love / loved -> lov
    return w


def tokens(text: str) -> list[str]:
    """Lower-cased word tokens (letters and digits), before stop-word removal."""
    return _WORD.findall(text.lower())


class _TermMemo:
    """Token -> index term ('' for a stop word), memoised: indexing maps millions of tokens.

    Bounded: past ``limit`` distinct tokens the memo starts again (the mapping is a pure
    function of the token, so forgetting it only costs time).
    """

    def __init__(self, limit: int = 500_000):
        self.limit = limit
        self.memo: dict[str, str] = {}

    def terms(self, text: str) -> list[str]:
        toks = _WORD.findall(text.lower())
        memo = self.memo
        found = list(map(memo.get, toks))
        if None in found:  # tokens seen for the first time
            if len(memo) > self.limit:
                memo.clear()
            for i, term in enumerate(found):
                if term is None:
                    t = toks[i]
                    found[i] = memo[t] = "" if t in STOPWORDS else _stem(t)  # a stem is never ''
        return list(filter(None, found))


_MEMO = _TermMemo()


def terms(text: str) -> list[str]:
    """Index terms of ``text``: tokens without stop words, stemmed."""
    return _MEMO.terms(text)


def term_frequencies(text: str) -> tuple[Counter[str], int]:
    """(term -> frequency, document length in terms)."""
    ts = terms(text)
    return Counter(ts), len(ts)


def entities(text: str) -> set[str]:
    """Named entities as normalised strings: runs of capitalised words, minus sentence openers.

    A heuristic, not NER: it finds people, places and titled things ("Caroline", "New York",
    "Charlotte's Web") well enough to link memories that mention the same ones.
    """
    found: set[str] = set()
    for m in _ENTITY.finditer(text):
        words = [w.strip("'&-").lower() for w in m.group(0).split()]
        words = [w[:-2] if w.endswith("'s") else w for w in words]
        while words and words[0] in _NOT_ENTITIES:
            words = words[1:]
        while words and words[-1] in _NOT_ENTITIES:
            words = words[:-1]
        if not words or all(w in STOPWORDS for w in words):
            continue
        name = " ".join(words)
        if len(name) >= 2:
            found.add(name)
    return found
