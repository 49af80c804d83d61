"""Extractors for the extraction tests: a slow one (to be killed mid-run), one that must never be
called, and one whose output is malformed."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from ledger.memos.extraction.base import Candidate, ExistingMemory, Extraction, Message
from ledger.memos.extraction.rules import RulesExtractor


class SlowRules(RulesExtractor):
    """The rules, 50 ms per call: a consumer running it can be killed between and inside batches."""

    def extract(self, messages: Sequence[Message], context: Sequence[ExistingMemory]) -> Extraction:
        time.sleep(0.05)
        return super().extract(messages, context)


class NeverCalled:
    name = "never"
    version = "1"

    def extract(self, messages: Sequence[Message], context: Sequence[ExistingMemory]) -> Extraction:
        raise AssertionError("the extractor was called")


class Malformed:
    """Cites a message outside its window: the output must be recorded with an error, nothing applied."""

    name = "malformed"
    version = "1"
    model = "test-model"

    def extract(self, messages: Sequence[Message], context: Sequence[ExistingMemory]) -> Extraction:
        return Extraction(
            (Candidate("Alice lives on the Moon.", (10**9,)),),
            model=self.model,
            prompt_hash="0" * 64,
            raw_output='{"facts": [{"text": "Alice lives on the Moon.", "source": 1000000000}]}',
        )


def build_slow(options: Mapping[str, Any]) -> SlowRules:
    return SlowRules()


def build_never(options: Mapping[str, Any]) -> NeverCalled:
    return NeverCalled()


class Down:
    """A backend whose model server is unreachable."""

    name = "down"
    version = "1"

    def extract(self, messages: Sequence[Message], context: Sequence[ExistingMemory]) -> Extraction:
        from ledger.errors import BackendUnavailable

        raise BackendUnavailable("model server at http://127.0.0.1:9 is unavailable")


def build_down(options: Mapping[str, Any]) -> Down:
    return Down()
