"""MOS chat: answer with a cube's memory and write the exchange back as memories.

One turn (:meth:`ChatSession.send`):

1. **Activation memory**: the cube's activated memories are the system prompt; with a local
   model their KV cache comes from :class:`~projections.kv_cache.KVCacheView` (built once,
   content addressed), so only the rest of the prompt is prefilled.
2. **Retrieval**: ``retrieve(cube, query, k)`` ranks the cube's other memories for the
   message. By default the hybrid retriever of ``projections.view_set`` is used when that
   module is installed, else :func:`scan_retriever` (BM25 over a fold of the cube).
3. **Generation**: the local transformers model (greedy), or an OpenAI-compatible endpoint
   when ``[llm] backend = "openai"`` (then the activated memories go in as plain text).
4. **Write-back**, in one atomic batch: a ``memory.read`` of everything the prompt used
   (operation ``chat``, with the query), the user turn and the assistant turn (with model id,
   cache address and retrieved ids in its metadata).
5. **Facts**: the user's message is ingested (``message.added``) and decided by the configured
   extractor (:mod:`ledger.memos.extraction`) like any conversation: reconciled against the
   cube's facts (ADD / UPDATE / DELETE / NOOP), derived from the message event (lineage).
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ledger import events as ev
from ledger.api import Ledger, _check_cube_name, new_memory_id
from ledger.errors import InvalidRequest, present
from ledger.events import NewEvent
from ledger.lifecycle import SEARCHABLE_BY_DEFAULT
from ledger.llm import LocalModel, OpenAICompatibleLLM
from ledger.memory_state import MemoryState, SealedSource, content_keys

Retriever = Callable[[str, str, int], list[tuple[str, float]]]
Retrieved = tuple[str, str, str, "MemoryState"]  # memory id, text, cube, state
MAX_MEMORY_CHARS = 600
_TOKEN = re.compile(r"\w+", re.U)


def _tokens(text: str) -> list[str]:
    return [t.lower() for t in _TOKEN.findall(text)]


def scan_retriever(ledger: Ledger) -> Retriever:
    """BM25 over the searchable memories of the cube, folded from the log on each call.

    The fallback when the projection views are not installed; fine for cubes of a few
    thousand memories, and always exactly consistent with the log.
    """

    def retrieve(cube: str, query: str, k: int) -> list[tuple[str, float]]:
        q = set(_tokens(query))
        if not q or not ledger.cube_exists(cube):
            return []
        docs = {
            mid: Counter(_tokens(m.text))
            for mid, m in ledger.cube_memories(cube).items()
            if m.text and m.state in SEARCHABLE_BY_DEFAULT
        }
        if not docs:
            return []
        n = len(docs)
        avg = sum(sum(c.values()) for c in docs.values()) / n
        df = Counter(t for c in docs.values() for t in set(c) if t in q)
        scores = []
        for mid, c in docs.items():
            length = sum(c.values())
            s = 0.0
            for t in q:
                if c[t]:
                    idf = math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5))
                    s += idf * c[t] * 2.2 / (c[t] + 1.2 * (0.25 + 0.75 * length / avg))
            if s > 0:
                scores.append((mid, s))
        scores.sort(key=lambda x: (-x[1], x[0]))
        return scores[:k]

    return retrieve


def default_retriever(ledger: Ledger, data_dir: str | None = None) -> Retriever:
    """The hybrid retriever of the data directory's search views (``projections.view_set``)."""
    from projections.view_set import ViewSet

    views = ViewSet.open(ledger, data_dir)

    def retrieve(cube: str, query: str, k: int) -> list[tuple[str, float]]:
        return [(h.memory_id, float(h.score)) for h in views.search(query, cube=cube, k=k, record_read=False)]

    def many(cubes: list[str], query: str, k: int) -> list[tuple[str, float]]:
        """One ranking over several cubes (the graph expansion spans them too)."""
        return [(h.memory_id, float(h.score)) for h in views.search(query, cube=cubes, k=k, record_read=False)]

    retrieve.many = many  # type: ignore[attr-defined]
    return retrieve


@dataclass
class ChatTurn:
    """What one exchange produced."""

    answer: str
    retrieved: list[str]
    activated: list[str]
    user_memory: str
    assistant_memory: str
    facts: list[dict[str, str]]
    cache_key: str | None = None
    cached_tokens: int = 0
    prefilled_tokens: int = 0
    time_to_first_token_s: float | None = None
    offsets: tuple[int, int] = (-1, -1)
    retrieved_cubes: dict[str, str] = field(default_factory=dict)
    # the memories the answer was derived from (its seal needs all their keys)
    sources: list[MemoryState] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "answer": self.answer,
            "retrieved": self.retrieved,
            "activated": self.activated,
            "user_memory": self.user_memory,
            "assistant_memory": self.assistant_memory,
            "facts": self.facts,
            "kv_cache": self.cache_key,
            "cached_tokens": self.cached_tokens,
            "prefilled_tokens": self.prefilled_tokens,
            "time_to_first_token_s": self.time_to_first_token_s,
            "offsets": list(self.offsets),
            "retrieved_cubes": self.retrieved_cubes,
        }


@dataclass
class ChatSession:
    """A conversation of ``actor`` with the memory of ``cube``.

    Give ``model`` (local, with optional ``kv_view`` for activation memory) or ``remote``.
    ``retrieve`` is any ``(cube, query, k) -> [(memory_id, score)]`` callable.
    ``shared_cubes`` are other cubes searched too (the caller checks the actor may read them,
    e.g. with :func:`ledger.memos.cubes.readable_cubes`); the exchange is written to ``cube`` only.
    """

    ledger: Ledger
    cube: str
    actor: str
    retrieve: Retriever
    model: LocalModel | None = None
    remote: OpenAICompatibleLLM | None = None
    kv_view: Any = None
    k: int = 5
    max_new_tokens: int = 128
    history_turns: int = 3
    repetition_penalty: float = 1.2
    include_assistant_turns: bool = False
    subject: str | None = None
    extract: bool = True
    shared_cubes: list[str] = field(default_factory=list)
    session_id: str = field(default_factory=lambda: "chat_" + os.urandom(6).hex())
    history: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        _check_cube_name(self.cube)
        if (self.model is None) == (self.remote is None):
            raise InvalidRequest("a chat session needs exactly one of a local model or a remote endpoint")
        if not isinstance(self.k, int) or not 0 <= self.k <= 100:
            raise InvalidRequest(f"k (memories retrieved per turn) must be between 0 and 100, not {self.k!r}")
        if not isinstance(self.max_new_tokens, int) or not 1 <= self.max_new_tokens <= 8192:
            raise InvalidRequest(f"max_new_tokens must be between 1 and 8192, not {self.max_new_tokens!r}")

    # -- retrieval ---------------------------------------------------------------------------
    def _retrieve(self, message: str, own: dict[str, Any], act_ids: set[str]) -> list[Retrieved]:
        """The top ``k`` usable memories of the cube and the ``shared_cubes``.

        With shared cubes, a retriever that offers ``.many(cubes, query, k)`` (the hybrid search
        views do) ranks all cubes at once; otherwise each cube is ranked separately and the lists
        are fused by reciprocal rank (scores of different corpora are not comparable; ranks are).
        """
        fused: dict[str, float] = {}
        texts: dict[str, tuple[str, str, MemoryState]] = {}
        cubes = [self.cube, *[c for c in self.shared_cubes if c != self.cube]]
        many = getattr(self.retrieve, "many", None)
        if len(cubes) > 1 and many is not None:  # one ranking across the cubes (and their graph)
            mems_by_cube = {c: (own if c == self.cube else self.ledger.cube_memories(c)) for c in cubes}
            rank = 0
            for mid, _score in many(cubes, message, self.k + len(act_ids)):
                m, cube = next(((ms[mid], c) for c, ms in mems_by_cube.items() if mid in ms), (None, ""))
                if m is None or mid in act_ids or m.text is None or m.state not in SEARCHABLE_BY_DEFAULT:
                    continue
                if m.metadata.get("session") == self.session_id or self._skip_turn(m):
                    continue
                rank += 1
                fused[mid] = 1.0 / (60 + rank)
                texts[mid] = (cube, m.text, m)
                if rank >= self.k:
                    break
            cubes = []
        for cube in cubes:
            mems = own if cube == self.cube else self.ledger.cube_memories(cube)
            rank = 0
            for mid, _score in self.retrieve(cube, message, self.k + len(act_ids)):
                m = mems.get(mid)
                if m is None or mid in act_ids or m.text is None or m.state not in SEARCHABLE_BY_DEFAULT:
                    continue
                if m.metadata.get("session") == self.session_id or self._skip_turn(m):
                    continue  # this conversation's own turns are in the prompt's history already
                rank += 1
                fused[mid] = fused.get(mid, 0.0) + 1.0 / (60 + rank)
                texts[mid] = (cube, m.text, m)
                if rank >= self.k:
                    break
        best = sorted(fused, key=lambda i: (-fused[i], i))[: self.k]
        return [(mid, texts[mid][1], texts[mid][0], texts[mid][2]) for mid in best]

    def _skip_turn(self, m: Any) -> bool:
        """Earlier answers of the model are kept for audit but not fed back as memories (by default):
        a small model's own mistakes would otherwise come back to it as facts."""
        return not self.include_assistant_turns and "assistant-turn" in m.tags

    # -- prompt ----------------------------------------------------------------------------
    def _recent(self) -> list[tuple[str, str]]:
        n = max(0, int(self.history_turns))
        return self.history[len(self.history) - n :] if n else []

    def _user_block(self, message: str, retrieved: list[Retrieved]) -> str:
        if not retrieved:
            return message
        lines = "\n".join(f"- {text[:MAX_MEMORY_CHARS]}" for _, text, _, _ in retrieved)
        return f"Relevant memories:\n{lines}\n\n{message}"

    def send(self, message: str) -> ChatTurn:
        """One exchange: retrieve, generate, write back. Raises on empty input (nothing written)."""
        if not isinstance(message, str) or not message.strip():
            raise InvalidRequest("chat message must be a non-empty string")
        from projections.kv_cache import (
            DEFAULT_SYSTEM,
            activated_memories,
            assistant_start,
            format_block,
            generate,
            system_text,
        )

        exists = self.ledger.cube_exists(self.cube)
        activated = activated_memories(self.ledger, self.cube) if exists else []
        act_ids = {m.memory_id for m in activated}
        mems = self.ledger.cube_memories(self.cube) if exists else {}
        retrieved = self._retrieve(message, mems, act_ids)
        user_block = self._user_block(message, retrieved)
        turn = ChatTurn(
            "",
            [r[0] for r in retrieved],
            sorted(act_ids),
            "",
            "",
            [],
            retrieved_cubes={mid: c for mid, _, c, _ in retrieved},
            sources=[*activated, *(state for *_, state in retrieved)],
        )
        if self.model is not None:
            model = self.model
            if self.kv_view is not None and exists:
                cache = self.kv_view.get_or_build(model, self.cube)
                turn.cache_key = cache.key
                system = ""
            else:
                cache = None
                system = format_block(model, "system", system_text(activated, DEFAULT_SYSTEM))
            limit = int(getattr(model.model.config.get_text_config(), "max_position_embeddings", 0) or 0)
            turns = self._recent()
            while True:  # drop the oldest turns of the history until the prompt fits the context
                history = "".join(
                    format_block(model, "user", u) + format_block(model, "assistant", a) for u, a in turns
                )
                new_ids = model.encode(
                    system + history + format_block(model, "user", user_block) + assistant_start(model)
                )
                total = len(new_ids) + (cache.n_tokens if cache else 0) + self.max_new_tokens
                if not limit or total <= limit:
                    break
                if not turns:
                    raise InvalidRequest(
                        f"the prompt needs {total} tokens but the model's context is {limit}: "
                        "shorten the message, retrieve fewer memories (k) or activate fewer"
                    )
                turns = turns[1:]
            gen = generate(model, new_ids, cache, self.max_new_tokens, self.repetition_penalty)
            turn.answer, turn.cached_tokens = gen.text, gen.cached_tokens
            turn.prefilled_tokens, turn.time_to_first_token_s = gen.prefilled_tokens, gen.time_to_first_token_s
            model_id = model.model_id
        else:
            remote = present(self.remote, "the chat session's remote endpoint")
            messages = [{"role": "system", "content": system_text(activated, DEFAULT_SYSTEM)}]
            for u, a in self._recent():
                messages += [{"role": "user", "content": u}, {"role": "assistant", "content": a}]
            messages.append({"role": "user", "content": user_block})
            turn.answer = remote.chat(messages, self.max_new_tokens).strip()
            model_id = f"openai:{remote.base_url}:{remote.model}"
        if not turn.answer:
            turn.answer = "(no answer)"
        self._write_back(message, turn, model_id)
        self.history.append((message, turn.answer))
        return turn

    # -- write-back ------------------------------------------------------------------------
    def _write_back(self, message: str, turn: ChatTurn, model_id: str) -> None:
        led, cube, actor = self.ledger, self.cube, self.actor
        batch: list[NewEvent] = []
        version = led.log.stream_version(cube)
        if version == 0:
            batch.append(
                NewEvent(
                    cube,
                    ev.CUBE_CREATED,
                    {"cube": cube, "owner": actor, "visibility": "private", "metadata": {}},
                    actor,
                )
            )
        origin = turn.retrieved_cubes
        used = turn.activated + [m for m in turn.retrieved if origin.get(m, cube) == cube]
        if used:
            batch.append(
                NewEvent(
                    cube,
                    ev.MEMORY_READ,
                    {"memory_ids": used, "operation": "chat", "query": message[:100_000], "as_of": None},
                    actor,
                )
            )
        for other in sorted({c for c in origin.values() if c != cube}):  # reads of shared cubes, audited there
            batch.append(
                NewEvent(
                    other,
                    ev.MEMORY_READ,
                    {
                        "memory_ids": [m for m in turn.retrieved if origin[m] == other],
                        "operation": "chat",
                        "query": message[:100_000],
                        "as_of": None,
                    },
                    actor,
                )
            )

        own = [self.subject] if self.subject else []

        def memory(
            text: str,
            who: str,
            tags: list[str],
            meta: dict[str, Any],
            sources: Sequence[MemoryState | SealedSource] = (),
            derived_from: Sequence[str] = (),
        ) -> SealedSource:
            mid = new_memory_id()
            content = led.content_fields(text, meta, mid, own, derived_from=sources)
            payload = {"memory_id": mid, "tags": tags, "state": "generated", **content}
            payload.setdefault("metadata", {})
            payload["source"] = f"chat:{self.session_id}"
            if derived_from:
                payload["derived_from"] = list(dict.fromkeys(derived_from))
            batch.append(NewEvent(cube, ev.MEMORY_ADDED, payload, who))
            ids.append(mid)
            return SealedSource([*own, *(x for src in sources for x in src.subjects)], content_keys(content))

        ids: list[str] = []
        user = memory(message, actor, ["chat", "user-turn"], {"role": "user", "session": self.session_id})
        turn.user_memory = ids[-1]
        # the answer may repeat anything the prompt held: it is sealed under the keys of every memory
        # the prompt held (activated and retrieved) and of the user's turn
        memory(
            turn.answer,
            f"assistant:{model_id}"[:200],
            ["chat", "assistant-turn"],
            {
                "role": "assistant",
                "session": self.session_id,
                "model": model_id,
                "kv_cache": turn.cache_key,
                "retrieved": turn.retrieved,
                "reply_to": turn.user_memory,
            },
            [*turn.sources, user],
            [*turn.activated, *turn.retrieved, turn.user_memory],
        )
        turn.assistant_memory = ids[-1]
        written = led.append(batch, {cube: 0} if version == 0 else None)
        turn.offsets = (written[0].offset, written[-1].offset)
        if self.extract:
            turn.facts = self._extract(message)

    def _extract(self, message: str) -> list[dict[str, Any]]:
        """Hand the user's message to the ledger's extraction (a ``message.added`` event, decided by
        the configured extractor like any ingested conversation: reconciled with the cube's facts, so
        "I moved to Porto" supersedes "lives in Oslo"); return what its decision wrote, once decided
        (at once when extraction runs in-process; empty when a separate consumer will decide it)."""
        from ledger.memos.extraction.runtime import describe, settings_of, wait_for

        when = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        said = {"role": "user", "content": message, "name": self.actor, "timestamp": when}
        ingested = self.ledger.ingest(self.cube, [said], self.actor, session_id=self.session_id, subject=self.subject)
        if not settings_of(self.ledger).in_process:
            return []
        facts = []
        for decision in wait_for(self.ledger, ingested.offsets):
            for d in describe(self.ledger, decision):
                if d["kind"] in ("ADD", "UPDATE", "DELETE"):
                    facts.append({"id": d["memory_id"], "text": d["text"], "kind": d["kind"], "reason": d["reason"]})
        return facts


def open_chat(
    ledger: Ledger,
    cube: str,
    actor: str,
    data_dir: str | None = None,
    retrieve: Retriever | None = None,
    **options: Any,
) -> ChatSession:
    """A chat session configured from ``[llm]`` of the data directory (local model by default)."""
    from ledger.llm import LLMSettings, load_local_model

    settings = LLMSettings.from_config(ledger.config)
    options.setdefault("max_new_tokens", settings.max_new_tokens)
    retrieve = retrieve or default_retriever(ledger, data_dir)
    if settings.backend == "openai":
        remote = OpenAICompatibleLLM(settings.base_url or "", settings.model, settings.api_key_env, settings.timeout)
        return ChatSession(ledger, cube, actor, retrieve, remote=remote, **options)
    model = load_local_model(settings.model)
    kv_view = None
    if data_dir is not None:
        from projections.kv_cache import KVCacheView

        kv_view = KVCacheView.open(ledger, data_dir)
    return ChatSession(ledger, cube, actor, retrieve, model=model, kv_view=kv_view, **options)
