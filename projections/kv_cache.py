"""KV-cache activation memory: a cube's promoted (``activated``) memories as a model's KV cache.

The activated memories of a cube, oldest first, form a fixed system-prompt prefix. Its token
ids are run through the model once; the resulting keys and values are stored in a
:class:`~projections.kv_store.KVStore` under the hash of (model id, tokenizer, token ids).
Generation then prefills only the new tokens (retrieved memories, the user's turn) on top of a
*copy* of that cache, which gives the same logits as prefilling everything (to float error).

As a projection the view only has to react to erasure: on an erasure event (``subject.forgotten``)
it deletes every cache whose context contained an erased memory (those of the subject, and those the
event lists: derived memories sealed under the subject's key). Every cache records the memories it
was built from (its lineage). ``ledger.governance.forget`` always catches this view up, so caches
are gone before it checks for residue. Everything else is content addressed: a changed activated
set is a new address, and stale ones age out by LRU.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger.api import Ledger
from ledger.events import Event
from ledger.llm import LocalModel
from ledger.memory_state import Erasure, MemoryState, erasure_of
from projections.kv_store import DEFAULT_BUDGET_BYTES, KVCache, KVStore, cache_key

DEFAULT_SYSTEM = "You are a helpful assistant with a long-term memory."


# -- prompt layout ---------------------------------------------------------------------------
def _chatml(model: LocalModel) -> bool:
    return "<|im_start|>" in model.tokenizer.get_vocab()


def format_block(model: LocalModel, role: str, text: str) -> str:
    """One conversation block in the model's format (ChatML when the tokenizer has it)."""
    if _chatml(model):
        return f"<|im_start|>{role}\n{text}<|im_end|>\n"
    return f"{role.capitalize()}: {text}\n"


def assistant_start(model: LocalModel) -> str:
    """The text that opens the assistant's answer."""
    return "<|im_start|>assistant\n" if _chatml(model) else "Assistant:"


def activated_memories(ledger: Ledger, cube: str, as_of: int | None = None) -> list[MemoryState]:
    """The cube's activated, readable memories as of ``as_of``, in creation order."""
    mems = [
        m
        for m in ledger.cube_memories(cube, as_of).values()
        if m.state == "activated" and m.text is not None and not m.forgotten
    ]
    return sorted(mems, key=lambda m: (m.created_offset, m.memory_id))


def system_text(memories: Sequence[MemoryState], system: str = DEFAULT_SYSTEM) -> str:
    """The cached system prompt: instructions plus the activated memories as a list."""
    if not memories:
        return system
    lines = "\n".join(f"- {m.text}" for m in memories)
    return f"{system}\nWhat you know (long-term memory):\n{lines}"


# -- model calls -----------------------------------------------------------------------------
def check_cache_fits(model: LocalModel, cache: KVCache) -> None:
    """Refuse a cache from another model or tokenizer, or with the wrong layer count."""
    cache.check_model(model.model_id, model.tokenizer_id)
    n_layers = getattr(model.model.config.get_text_config(), "num_hidden_layers", None)
    if n_layers is not None and len(cache.layers) != n_layers:
        from projections.kv_store import KVCacheMismatch

        raise KVCacheMismatch(f"KV cache {cache.key[:12]} has {len(cache.layers)} layers; the model has {n_layers}")


def forward(
    model: LocalModel, token_ids: Sequence[int], cache: KVCache | None = None, last_only: bool = False
) -> tuple[Any, Any]:
    """Run ``token_ids`` after the (copied) ``cache``; return (logits [1, n, vocab], dynamic cache).

    ``last_only`` computes the logits of the last position only (what generation needs; the
    vocabulary projection of every position is a large share of a long prefill's cost).
    """
    import torch

    if not token_ids:
        raise ValueError("forward needs at least one new token")
    past = None
    if cache is not None:
        check_cache_fits(model, cache)
        past = cache.to_dynamic_cache()
    ids = torch.tensor([list(token_ids)], dtype=torch.long)
    kwargs: dict[str, Any] = {"use_cache": True}
    if last_only:
        kwargs["logits_to_keep"] = 1
    if past is not None:
        kwargs["cache"] = past
    with torch.no_grad():
        out = model.model(input_ids=ids, **kwargs)
    return out.logits, out.cache


def build_cache(model: LocalModel, token_ids: Sequence[int], **info: Any) -> KVCache:
    """Prefill ``token_ids`` and capture their keys and values as a :class:`KVCache`."""
    _, dyn = forward(model, token_ids)
    layers = [(layer.keys.detach().clone(), layer.values.detach().clone()) for layer in dyn.layers]
    key = cache_key(model.model_id, model.tokenizer_id, token_ids)
    return KVCache(key, model.model_id, model.tokenizer_id, list(token_ids), layers, **info)


@dataclass
class Generation:
    """What :func:`generate` produced, and how much work it took."""

    text: str
    token_ids: list[int]
    prefilled_tokens: int
    cached_tokens: int
    time_to_first_token_s: float
    total_s: float


def _pick(logits: Any, generated: list[int], repetition_penalty: float) -> int:
    """Greedy choice; tokens already generated have their logit divided (if > 0) or multiplied
    by ``repetition_penalty`` (CTRL-style), which curbs the loops small models fall into."""
    import torch

    row = logits[0, -1]
    if repetition_penalty != 1.0 and generated:
        row = row.clone()
        idx = torch.tensor(sorted(set(generated)), dtype=torch.long)
        vals = row[idx]
        row[idx] = torch.where(vals > 0, vals / repetition_penalty, vals * repetition_penalty)
    return int(torch.argmax(row).item())


def generate(
    model: LocalModel,
    new_ids: Sequence[int],
    cache: KVCache | None = None,
    max_new_tokens: int = 128,
    repetition_penalty: float = 1.0,
    stop: Callable[[int], bool] | None = None,
) -> Generation:
    """Greedy generation after ``cache`` (if any): only ``new_ids`` are prefilled.

    Deterministic: the same prompt gives the same tokens with or without the cache. ``stop``, when
    given, sees each generated token id (after it is kept) and ends generation by returning True.
    """
    import torch

    t0 = time.perf_counter()
    logits, past = forward(model, new_ids, cache, last_only=True)
    nxt = _pick(logits, [], repetition_penalty)
    ttft = time.perf_counter() - t0
    eos = model.eos_ids
    out: list[int] = []
    with torch.no_grad():
        for _ in range(max_new_tokens):
            if nxt in eos:
                break
            out.append(nxt)
            if len(out) >= max_new_tokens or (stop is not None and stop(nxt)):
                break
            step = model.model(input_ids=torch.tensor([[nxt]]), cache=past, use_cache=True, logits_to_keep=1)
            past = step.cache
            nxt = _pick(step.logits, out, repetition_penalty)
    return Generation(
        model.decode(out).strip(), out, len(new_ids), cache.n_tokens if cache else 0, ttft, time.perf_counter() - t0
    )


# -- the view ----------------------------------------------------------------------------------
class KVCacheView:
    """Builds, stores and finds the KV caches of cubes' activated context; erases on forget."""

    name = "kv_cache"

    def __init__(self, ledger: Ledger, store: KVStore, system: str = DEFAULT_SYSTEM):
        self.ledger = ledger
        self.store = store
        self.system = system

    @staticmethod
    def open(ledger: Ledger, data_dir: str | Path, budget_bytes: int | None = None) -> KVCacheView:
        """The view of a data directory: caches under ``<data>/kv_cache`` (budget from ``[kv_cache]``)."""
        config = ledger.config
        section = config.section("kv_cache") if config is not None else {}
        budget = budget_bytes or int(section.get("budget_bytes", DEFAULT_BUDGET_BYTES))
        return KVCacheView(ledger, KVStore(Path(data_dir) / "kv_cache", budget))

    def prefix_ids(self, model: LocalModel, cube: str, as_of: int | None = None) -> tuple[list[int], list[MemoryState]]:
        """Token ids of the cube's cached prefix, and the memories it holds."""
        mems = activated_memories(self.ledger, cube, as_of)
        return model.encode(format_block(model, "system", system_text(mems, self.system))), mems

    def get_or_build(self, model: LocalModel, cube: str, as_of: int | None = None) -> KVCache:
        """The KV cache of ``cube``'s activated context for ``model`` (built and stored when missing)."""
        self.catch_up()
        end = self.ledger.resolve_as_of(as_of)
        ids, mems = self.prefix_ids(model, cube, end)
        key = cache_key(model.model_id, model.tokenizer_id, ids)
        found = self.store.get(key, model.model_id, model.tokenizer_id)
        if found is not None:
            return found
        cache = build_cache(
            model,
            ids,
            cube=cube,
            basis_offset=end,
            memory_ids=[m.memory_id for m in mems],
            subjects=sorted({s for m in mems for s in m.subjects}),
        )
        return self.store.put(cache)

    # -- projection protocol: forget erases caches -------------------------------------------
    def checkpoint(self) -> int:
        return self.store.checkpoint()

    def apply_batch(self, events: Sequence[Event]) -> None:
        last = self.checkpoint()
        for e in events:
            if e.offset <= last:
                continue
            erasure = erasure_of(e)
            if erasure is not None:
                self.purge(erasure)
            last = e.offset
        if last > self.checkpoint():
            self.store.set_checkpoint(last)

    def purge(self, erasure: Erasure) -> list[str]:
        """Delete every cache built from an erased memory (or a memory of an erased subject)."""
        deleted = [k for subject in erasure.subjects for k in self.store.delete_for_subject(subject)]
        deleted += [k for mid in erasure.memory_ids for k in self.store.delete_for_memory(mid)]
        return deleted

    def catch_up(self) -> int:
        from projections.base import catch_up

        return catch_up(self.ledger.events, self)

    def reset(self) -> None:
        self.store.clear()
        self.store.set_checkpoint(-1)

    def close(self) -> None:
        self.store.close()


def kv_warmer(view: KVCacheView, model: LocalModel) -> Any:
    """An ``on_run`` hook for the scheduler: after a pass, (re)build the KV cache of every cube
    whose activated set it changed, so promoted memories are in activation memory at once."""

    def warm(result: Any) -> list[str]:
        cubes = sorted(
            {
                d.cube
                for d in result.plan.decisions
                if d.kind in ("promote", "demote") or (d.kind == "merge" and d.activate_merged)
            }
            - set(result.skipped_cubes)
        )
        return [view.get_or_build(model, cube).key for cube in cubes]

    return warm
