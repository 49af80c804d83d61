"""Index terms: the memoised analysis equals the plain definition, also when its memo starts again."""

from __future__ import annotations

from projections.text_analysis import STOPWORDS, _TermMemo, stem, terms, tokens

TEXTS = [
    "The runners were running quickly to the stopped cars",
    "Alice's dogs chased 42 cats_and mice",
    "Ça va? Café au lait, naïve résumé",
    "",
    "  ",
    "I'm OK, yes oh",
    "Stories of studies and classes",
    "x_y_z 3.14 under_score",
    "MAKING made makes maker loved loving",
]


def plain(text: str) -> list[str]:
    return [stem(t) for t in tokens(text) if t not in STOPWORDS]


def test_memoised_terms_equal_the_definition() -> None:
    for text in TEXTS:
        assert terms(text) == plain(text)
        assert terms(text) == plain(text)  # second time from the memo
    assert terms("The running dogs") == ["run", "dog"]


def test_a_full_memo_starts_again_without_changing_terms() -> None:
    memo = _TermMemo(limit=5)
    for _ in range(3):
        for text in TEXTS:
            assert memo.terms(text) == plain(text)
    assert len(memo.memo) <= 5 + max(len(tokens(t)) for t in TEXTS)
