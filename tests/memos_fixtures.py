"""Shared helpers for the memos tests: a tiny random causal LM with a character tokenizer (offline)."""

from __future__ import annotations

import string

from tests.ledgers import make_ledger


def tiny_tokenizer():
    """A character-level fast tokenizer with ChatML special tokens; needs no download."""
    from tokenizers import Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast

    chars = sorted(set(string.printable) - {"\x0b", "\x0c"})
    vocab = {"<unk>": 0, "<|endoftext|>": 1}
    for c in chars:
        vocab[c] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tok.decoder = decoders.Fuse()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", eos_token="<|endoftext|>")
    fast.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    return fast


def tiny_model(seed: int = 0, arch: str = "llama", layers: int = 2):
    """A randomly initialised LlamaForCausalLM or GPT2LMHeadModel wrapped as a LocalModel."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    from ledger.llm import wrap_model

    tok = tiny_tokenizer()
    torch.manual_seed(seed)
    if arch == "llama":
        cfg = LlamaConfig(
            vocab_size=len(tok),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=layers,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=4096,
            eos_token_id=1,
            bos_token_id=1,
        )
        model = LlamaForCausalLM(cfg)
    else:
        cfg = GPT2Config(
            vocab_size=len(tok), n_embd=64, n_layer=layers, n_head=4, n_positions=4096, eos_token_id=1, bos_token_id=1
        )
        model = GPT2LMHeadModel(cfg)
    return wrap_model(model.to(torch.float32), tok)


def FakeSealer():  # noqa: N802 - the memos tests' stand-in: base64 ciphertext, nothing readable in files
    """The shared stand-in key ring (tests/fake_sealer.py) with unreadable (base64) ciphertext."""
    from tests.fake_sealer import FakeSealer as Shared

    return Shared(readable=False)


def new_ledger(path, sealer=None):
    """A ledger over a fresh SQLite log in ``path``."""
    return make_ledger(path / "log.sqlite", sealer=sealer)
