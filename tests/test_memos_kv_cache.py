"""KV-cache activation memory: exactness, content addressing, refusal, LRU, immutability, erasure."""

from __future__ import annotations

import hashlib

import pytest
import torch

from ledger import events as ev  # noqa: E402
from ledger.events import NewEvent  # noqa: E402
from projections.kv_cache import (  # noqa: E402
    KVCacheView,
    assistant_start,
    build_cache,
    format_block,
    forward,
    generate,
)
from projections.kv_store import KVCacheCorrupt, KVCacheMismatch, KVStore, cache_key  # noqa: E402
from tests.memos_fixtures import FakeSealer, new_ledger, tiny_model  # noqa: E402


def _activated_cube(ledger, cube="alice", texts=("Alice lives in Lyon.", "Alice's cat is called Miso.")):
    ids = []
    for t in texts:
        w = ledger.add(cube, t, "alice")
        ledger.change_state(w.id, "activated", "scheduler")
        ids.append(w.id)
    return ids


def _file_digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_injected_cache_logits_equal_full_prefill(tmp_path, arch):
    model = tiny_model(arch=arch)
    ledger = new_ledger(tmp_path)
    _activated_cube(ledger)
    view = KVCacheView(ledger, KVStore(tmp_path / "kv"))
    cache = view.get_or_build(model, "alice")
    prefix, _ = view.prefix_ids(model, "alice")
    assert cache.token_ids == prefix and cache.n_tokens > 20
    suffix = model.encode(format_block(model, "user", "Where does Alice live?") + assistant_start(model))
    with_cache, _ = forward(model, suffix, cache)
    full, _ = forward(model, prefix + suffix)
    diff = (with_cache[0] - full[0, len(prefix) :]).abs().max().item()
    assert diff < 1e-4
    # and the cache really was used: without it the suffix alone gives other logits
    alone, _ = forward(model, suffix)
    assert (alone[0] - full[0, len(prefix) :]).abs().max().item() > 1e-3


def test_cache_is_content_addressed_and_reused(tmp_path):
    model = tiny_model()
    ledger = new_ledger(tmp_path)
    _activated_cube(ledger)
    store = KVStore(tmp_path / "kv")
    view = KVCacheView(ledger, store)
    first = view.get_or_build(model, "alice")
    assert first.key == cache_key(model.model_id, model.tokenizer_id, first.token_ids)
    again = view.get_or_build(model, "alice")
    assert again.key == first.key and len(store.entries()) == 1
    assert sorted(again.memory_ids) == sorted(first.memory_ids) and again.cube == "alice"
    # a new activated memory changes the context, hence the address
    w = ledger.add("alice", "Alice plays the cello.", "alice")
    ledger.change_state(w.id, "activated", "scheduler")
    third = view.get_or_build(model, "alice")
    assert third.key != first.key and w.id in third.memory_ids
    assert len(store.entries()) == 2
    # demoting it goes back to the first address (no rebuild)
    ledger.change_state(w.id, "generated", "scheduler")
    assert view.get_or_build(model, "alice").key == first.key
    assert len(store.entries()) == 2


def test_cache_from_another_model_is_refused(tmp_path):
    a, b = tiny_model(seed=0), tiny_model(seed=1)
    assert a.model_id != b.model_id
    ledger = new_ledger(tmp_path)
    _activated_cube(ledger)
    store = KVStore(tmp_path / "kv")
    cache = KVCacheView(ledger, store).get_or_build(a, "alice")
    suffix = b.encode("hello")
    with pytest.raises(KVCacheMismatch, match="built by model"):
        forward(b, suffix, cache)
    with pytest.raises(KVCacheMismatch, match="built by model"):
        generate(b, suffix, cache, max_new_tokens=2)
    with pytest.raises(KVCacheMismatch):
        store.get(cache.key, b.model_id, b.tokenizer_id)
    # same model id claimed, but a different layer count: refused too
    deeper = tiny_model(seed=0, layers=3)
    deeper.model_id = a.model_id
    with pytest.raises(KVCacheMismatch, match="layers"):
        forward(deeper, suffix, cache)


def test_lru_eviction_under_budget(tmp_path):
    model = tiny_model()
    probe = build_cache(model, model.encode("x" * 40))
    store = KVStore(tmp_path / "kv", budget_bytes=10**9)
    store.put(probe)
    one = store.entries()[0]["size"]
    store.clear()
    store.budget_bytes = int(one * 2.5)  # room for two caches of this size
    caches = [build_cache(model, model.encode(c * 40)) for c in "abc"]
    store.put(caches[0])
    store.put(caches[1])
    assert store.get(caches[0].key) is not None  # a is now more recently used than b
    store.put(caches[2])
    keys = {e["key"] for e in store.entries()}
    assert keys == {caches[0].key, caches[2].key}
    assert not store.has(caches[1].key) and store.get(caches[1].key) is None
    assert store.total_bytes() <= store.budget_bytes
    # a cache larger than the whole budget is not kept
    store.budget_bytes = one // 2
    store.put(build_cache(model, model.encode("d" * 40)))
    assert store.entries() == []


def test_generation_never_mutates_the_stored_cache(tmp_path):
    model = tiny_model()
    ledger = new_ledger(tmp_path)
    _activated_cube(ledger)
    store = KVStore(tmp_path / "kv")
    view = KVCacheView(ledger, store)
    cache = view.get_or_build(model, "alice")
    path = store.path_of(cache.key)
    digest = _file_digest(path)
    before = [(k.clone(), v.clone()) for k, v in cache.layers]
    suffix = model.encode(format_block(model, "user", "hi") + assistant_start(model))
    g1 = generate(model, suffix, cache, max_new_tokens=8)
    g2 = generate(model, suffix, cache, max_new_tokens=8)
    assert g1.token_ids == g2.token_ids  # the second run saw the same, unextended prefix
    assert g1.prefilled_tokens == len(suffix) and g1.cached_tokens == cache.n_tokens
    for (k0, v0), (k1, v1) in zip(before, cache.layers, strict=True):
        assert torch.equal(k0, k1) and torch.equal(v0, v1) and k1.shape[-2] == cache.n_tokens
    assert _file_digest(path) == digest
    reloaded = store.get(cache.key, model.model_id, model.tokenizer_id)
    assert reloaded.n_tokens == cache.n_tokens
    assert all(torch.equal(a[0], b[0]) for a, b in zip(before, reloaded.layers, strict=True))
    # and greedy generation with the cache equals generation after a full prefill
    full = generate(model, cache.token_ids + suffix, None, max_new_tokens=8)
    assert full.token_ids == g1.token_ids


def test_damaged_cache_file_is_detected(tmp_path):
    model = tiny_model()
    store = KVStore(tmp_path / "kv")
    cache = store.put(build_cache(model, model.encode("hello there")))
    path = store.path_of(cache.key)
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    other = store.put(build_cache(model, model.encode("general kenobi")))
    path.write_bytes(store.path_of(other.key).read_bytes())  # right format, wrong address
    with pytest.raises(KVCacheCorrupt, match="does not match its address"):
        store.get(cache.key)
    with pytest.raises(KVCacheCorrupt):
        store.path_of("../../etc/passwd")


def test_forgetting_a_subject_deletes_caches_built_from_it(tmp_path):
    model = tiny_model()
    sealer = FakeSealer()
    ledger = new_ledger(tmp_path, sealer)
    w1 = ledger.add("bob", "Bob's phone number is 555-0100.", "bob", subject="bob")
    w2 = ledger.add("bob", "The office closes at six.", "bob")
    for w in (w1, w2):
        ledger.change_state(w.id, "activated", "scheduler")
    store = KVStore(tmp_path / "kv")
    view = KVCacheView(ledger, store)
    with_bob = view.get_or_build(model, "bob")
    assert with_bob.subjects == ["bob"]
    unrelated = store.put(build_cache(model, model.encode("unrelated context")))
    sealer.forgotten.add("bob")
    forgotten = ledger.append([NewEvent("_system", ev.SUBJECT_FORGOTTEN, {"subject": "bob"}, "dpo")])[0]
    # the erasure participant of a data directory deletes at once (governance.forget always runs it)
    from ledger.config import Config
    from projections.erasure import KVCaches

    ledger.config = Config(tmp_path, {})
    store_at_data = KVStore(tmp_path / "kv_cache")
    in_data_dir = store_at_data.put(build_cache(model, with_bob.token_ids, subjects=["bob"]))
    KVCaches(tmp_path).erase(ledger, forgotten)
    assert not KVStore(tmp_path / "kv_cache").has(in_data_dir.key)
    view.catch_up()
    assert not store.has(with_bob.key)
    assert store.has(unrelated.key)
    # the rebuilt context no longer contains the forgotten memory
    rebuilt = view.get_or_build(model, "bob")
    assert rebuilt.memory_ids == [w2.id] and rebuilt.subjects == []
    assert "555" not in model.decode(rebuilt.token_ids)


@pytest.mark.slow
def test_smollm2_injected_cache_matches_full_prefill(tmp_path):
    from ledger.llm import ModelError, load_local_model

    try:
        model = load_local_model()
    except ModelError as exc:
        pytest.skip(str(exc))
    ledger = new_ledger(tmp_path)
    _activated_cube(ledger, texts=[f"Fact {i}: the meeting room {i} is on floor {i % 7}." for i in range(30)])
    a_view = KVCacheView(ledger, KVStore(tmp_path / "kv"))
    cache = a_view.get_or_build(model, "alice")
    prefix = cache.token_ids
    suffix = model.encode(format_block(model, "user", "Which floor is meeting room 12 on?") + assistant_start(model))
    with_cache, _ = forward(model, suffix, cache)
    full, _ = forward(model, prefix + suffix)
    assert (with_cache[0] - full[0, len(prefix) :]).abs().max().item() < 1e-4
    # generation on a copy: the stored file and the loaded tensors are untouched, and greedy
    # generation with the cache gives the same tokens as after a full prefill
    path = a_view.store.path_of(cache.key)
    digest = _file_digest(path)
    before = [k.clone() for k, _ in cache.layers]
    g = generate(model, suffix, cache, max_new_tokens=12)
    assert _file_digest(path) == digest
    assert all(torch.equal(a, k) for a, (k, _) in zip(before, cache.layers, strict=True))
    assert generate(model, prefix + suffix, None, max_new_tokens=12).token_ids == g.token_ids
    # a tiny budget evicts it
    a_view.store.budget_bytes = 1
    a_view.store.evict()
    assert not a_view.store.has(cache.key)
    other = tiny_model()
    with pytest.raises(KVCacheMismatch):
        forward(other, other.encode("hi"), cache)


def test_scheduler_promotion_warms_the_kv_cache(tmp_path):
    from ledger.memos.scheduler import Scheduler
    from ledger.memos.scheduler_policy import SchedulerPolicy
    from projections.kv_cache import kv_warmer

    model = tiny_model()
    ledger = new_ledger(tmp_path)
    hot = ledger.add("alice", "Alice's favourite tea is sencha.", "alice").id
    for _ in range(3):
        ledger.get(hot, actor="chat")
    view = KVCacheView(ledger, KVStore(tmp_path / "kv"))
    policy = SchedulerPolicy(stable_for_s=0, promote_min_score=1.0)
    sched = Scheduler(ledger, policy, on_run=kv_warmer(view, model))
    sched.run_once()
    entries = view.store.entries()
    assert len(entries) == 1 and entries[0]["memory_ids"] == [hot] and entries[0]["cube"] == "alice"
    assert view.get_or_build(model, "alice").key == entries[0]["key"]  # found, not rebuilt
