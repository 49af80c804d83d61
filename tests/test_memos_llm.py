"""Model configuration and loading: settings validation, local directories, identities."""

from __future__ import annotations

import pytest

from ledger.config import Config
from ledger.errors import InvalidRequest
from ledger.llm import LLMSettings, ModelError, load_local_model, tokenizer_identity


def test_llm_settings_from_config(tmp_path):
    assert LLMSettings.from_config(Config(tmp_path, {})).backend == "local"
    s = LLMSettings.from_config(
        Config(
            tmp_path,
            {
                "llm": {
                    "backend": "openai",
                    "base_url": "http://127.0.0.1:11434/v1",
                    "model": "llama3",
                    "api_key_env": "KEY",
                }
            },
        )
    )
    assert (s.backend, s.model, s.api_key_env) == ("openai", "llama3", "KEY")
    with pytest.raises(InvalidRequest, match="backend must be"):
        LLMSettings.from_config(Config(tmp_path, {"llm": {"backend": "magic"}}))
    with pytest.raises(InvalidRequest, match="needs base_url"):
        LLMSettings.from_config(Config(tmp_path, {"llm": {"backend": "openai"}}))


def test_load_local_model_from_a_directory(tmp_path):
    from tests.memos_fixtures import tiny_model

    with pytest.raises(ModelError, match="not a transformers model directory"):
        load_local_model(str(tmp_path / "nothing"))
    m = tiny_model(seed=3)
    d = tmp_path / "m"
    m.model.save_pretrained(str(d))
    m.tokenizer.save_pretrained(str(d))
    loaded = load_local_model(str(d))
    assert loaded is load_local_model(str(d))  # loaded once per process
    assert loaded.model_id.startswith(f"path:{d.resolve()}:")
    assert loaded.tokenizer_id == tokenizer_identity(m.tokenizer)
    assert loaded.encode("abc") == m.encode("abc")
