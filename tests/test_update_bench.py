"""The fact-change case generator is seeded and balanced, and the update bench's checks can fail."""

from __future__ import annotations

from bench.update_bench import open_bench_ledger, run_backend
from bench.update_cases import KINDS, generate_cases
from ledger.memos.extraction.base import Extraction
from ledger.memos.extraction.rules import RulesExtractor


def test_the_generator_is_seeded_balanced_and_varied():
    cases = generate_cases(350, seed=13)
    assert cases == generate_cases(350, seed=13) and cases != generate_cases(350, seed=14)
    assert len(cases) == 350 and {k: sum(c.kind == k for c in cases) for k in KINDS} == dict.fromkeys(KINDS, 50)
    for c in cases:
        assert c.turns and all(m["content"].strip() for call in c.turns for m in call)
        if c.kind in ("move", "job", "preference"):
            assert c.new and c.new != c.old and c.new in c.turns[-1][0]["content"]
        if c.kind == "paraphrase":  # the same value in other words
            assert c.new is None and c.old in c.turns[-1][0]["content"] and c.turns[-1][0]["content"] != c.initial
        assert c.old.lower() in c.initial.lower()
    assert len({c.speaker for c in cases}) > 10 and len({c.old for c in cases}) > 40


class _Nothing:
    name, version = "nothing", "0"

    def extract(self, messages, context):
        return Extraction(candidates=())


def test_the_checks_pass_for_the_rules_and_fail_for_an_extractor_that_finds_nothing(tmp_path):
    led = open_bench_ledger(tmp_path / "data")
    cases = generate_cases(12, seed=3)
    rules = run_backend(led, RulesExtractor(), cases, "rules")
    nothing = run_backend(led, _Nothing(), cases, "nothing")
    assert rules["by_kind"]["move"]["latest"] == 1.0 and rules["by_kind"]["duplicate"]["noop"] == 1.0
    assert all(row["as_of"] == 0.0 and row["case"] == 0.0 for row in nothing["by_kind"].values())
    assert nothing["by_kind"]["move"]["latest"] == 0.0 and nothing["by_kind"]["retraction"]["latest"] == 1.0
    led.log.close()
