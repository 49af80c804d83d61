"""An OpenAI-compatible HTTP server for a local causal LM (``memledger llm serve``).

Serves ``POST /v1/chat/completions`` and ``GET /v1/models`` in the OpenAI chat format: the
messages go through the tokenizer's chat template, decoding is greedy (``temperature`` absent or 0;
anything else is refused, since this server never samples), ``max_tokens`` (or
``max_completion_tokens``) bounds the answer, and ``usage`` counts real tokens. One request runs
at a time. Errors use OpenAI's ``{"error": {"message", "type", "param", "code"}}`` body. It binds
to loopback unless told otherwise: it has no authentication.
"""

from __future__ import annotations

import ipaddress
import threading
import time
import uuid
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from ledger.errors import InvalidRequest
from ledger.llm import LocalModel
from ledger.memos.llm_chat import ContextTooLong, complete

DEFAULT_MAX_TOKENS = 256
MAX_MESSAGES = 256
MAX_CONTENT_CHARS = 200_000


class ChatMessage(BaseModel):
    """One message of the conversation (text content only)."""

    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "user", "assistant", "tool"]
    content: str = Field(max_length=MAX_CONTENT_CHARS)
    name: str | None = Field(default=None, max_length=200)


class ResponseFormat(BaseModel):
    """Only plain text is produced; ``json_object`` is refused rather than silently not enforced."""

    type: Literal["text"]


class ChatRequest(BaseModel):
    """The subset of OpenAI's chat completion request this server implements."""

    model_config = ConfigDict(extra="ignore")
    model: str = Field(min_length=1, max_length=500)
    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_MESSAGES)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = None
    n: int | None = Field(default=None, ge=1, le=1)
    stream: bool | None = Field(default=None)
    response_format: ResponseFormat | None = None


def _error(status: int, message: str, kind: str = "invalid_request_error", code: str | None = None) -> JSONResponse:
    return JSONResponse(
        status_code=status, content={"error": {"message": message, "type": kind, "param": None, "code": code}}
    )


def create_llm_app(
    model: LocalModel, names: list[str] | None = None, max_tokens_limit: int = 1024, created: int | None = None
) -> FastAPI:
    """The server app for ``model``, answering to each of ``names`` (default: the model id)."""
    served = list(dict.fromkeys([*(names or []), model.model_id]))
    lock = threading.Lock()
    stamp = int(created if created is not None else time.time())
    app = FastAPI(title="memledger local LLM (OpenAI-compatible)", version="1")

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return _error(400, f"{where or 'body'}: {first.get('msg', 'invalid request')}")

    @app.get("/v1/models")
    def list_models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": n, "object": "model", "created": stamp, "owned_by": "memledger"} for n in served],
        }

    @app.post("/v1/chat/completions")
    def chat_completions(req: ChatRequest) -> Any:
        if req.model not in served:
            return _error(404, f"model {req.model!r} is not served here; try one of {served}", code="model_not_found")
        if req.temperature not in (None, 0):
            return _error(400, f"temperature is {req.temperature}; this server decodes greedily (temperature 0)")
        if req.stream:
            return _error(400, "stream is not supported by this server")
        wanted = req.max_completion_tokens or req.max_tokens or DEFAULT_MAX_TOKENS
        if wanted > max_tokens_limit:
            return _error(400, f"max_tokens is {wanted}; this server allows at most {max_tokens_limit}")
        messages = [{"role": m.role, "content": m.content} for m in req.messages]
        try:
            with lock:
                done = complete(model, messages, wanted)
        except ContextTooLong as exc:
            return _error(400, str(exc), code="context_length_exceeded")
        except InvalidRequest as exc:
            return _error(400, str(exc))
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": req.model,
            "system_fingerprint": model.model_id,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": done.text},
                    "finish_reason": done.finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": done.prompt_tokens,
                "completion_tokens": done.completion_tokens,
                "total_tokens": done.prompt_tokens + done.completion_tokens,
            },
        }

    return app


def check_host(host: str, allow_remote: bool) -> None:
    """Refuse a non-loopback bind address unless ``allow_remote`` (the server has no authentication)."""
    if allow_remote:
        return
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise InvalidRequest(
            f"--host {host} is not a loopback address; the server has no authentication (--allow-remote binds it)"
        )
