"""Fixtures shared by every test module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.api import Ledger
from tests.ledgers import data_ledger, make_ledger
from tests.live_server import live_server  # noqa: F401  (a real `memledger serve` on loopback)


@pytest.fixture
def ledger(tmp_path) -> Iterator[Ledger]:
    """A bare ``Ledger`` over a fresh SQLite log (no data directory, no key store)."""
    led = make_ledger(tmp_path / "log.sqlite")
    yield led
    led.log.close()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random causal LM saved as a transformers directory ([llm] model = that path)."""
    from tests.memos_fixtures import tiny_model

    path = tmp_path_factory.mktemp("tiny-llm")
    m = tiny_model()
    m.model.save_pretrained(str(path))
    m.tokenizer.save_pretrained(str(path))
    return path


@pytest.fixture
def data_dir_ledger(tmp_path) -> Iterator[Ledger]:
    """The ledger of a fresh data directory ``tmp_path/data`` (key store and views, as the CLI has)."""
    led = data_ledger(tmp_path / "data")
    yield led
    led.log.close()
