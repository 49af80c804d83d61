"""A tiny random causal LM taught, in the test run, to give chosen answers to chosen chat prompts.

Plumbing tests of the LLM extraction backends need a model whose greedy output is valid JSON (a
random model's never is). ``taught_model`` trains a small BPE tokenizer on the texts and a tiny
Llama on (prompt, answer) pairs until its greedy answer to each prompt is the wanted text and then
the end of sequence: a real model, run through the real chat layout and decoding, not a canned reply.
"""

from __future__ import annotations

import functools
import json
import string
from collections.abc import Sequence

from ledger.llm import LocalModel, wrap_model
from ledger.memos.extraction.base import Candidate, ExistingMemory, Message
from ledger.memos.llm_chat import complete, render_chat

SPECIAL = ["<unk>", "<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def _tokenizer(texts: Sequence[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([*texts, string.printable], trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", eos_token="<|endoftext|>")
    fast.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    return fast


def taught_model(
    pairs: Sequence[tuple[list[dict[str, str]], str]], seed: int = 1, max_steps: int = 300, lr: float = 1e-2
) -> LocalModel:
    """A tiny model trained until ``complete(model, prompt)`` gives each answer exactly."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    texts = [m["content"] for prompt, _ in pairs for m in prompt] + [a for _, a in pairs]
    tok = _tokenizer(texts)
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        eos_token_id=tok.eos_token_id,
        bos_token_id=tok.eos_token_id,
    )
    local = wrap_model(LlamaForCausalLM(cfg), tok)
    model = local.model
    rows = []
    for prompt, answer in pairs:
        p = local.encode(render_chat(local, prompt))
        rows.append((torch.tensor([p + local.encode(answer) + [tok.eos_token_id]]), len(p)))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for step in range(max_steps):
        model.train()
        for ids, n_prompt in rows:
            labels = ids.clone()
            labels[0, :n_prompt] = -100
            loss = model(input_ids=ids, labels=labels).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
        if step % 10 == 9:
            model.eval()
            if all(complete(local, p, len(local.encode(a)) + 2).text == a for p, a in pairs):
                return wrap_model(model, tok)  # named by its trained weights
    raise AssertionError(f"the tiny model did not learn its answers in {max_steps} steps")


WINDOW = [
    Message(40, "msg_a", "user", "I live in Oslo.", name="Alice", timestamp="2023-05-01T10:00:00"),
    Message(41, "msg_b", "assistant", "Oslo is lovely."),
    Message(47, "msg_c", "user", "I moved to Porto.", scope={"user_id": "alice"}, timestamp="2023-09-02T09:30:00"),
]
CAND = Candidate("Alice lives in Porto.", (47,), key="alice|lives_in")
NEIGHBOURS = [
    ExistingMemory("mem_oslo", "Alice lives in Oslo.", 0.8),
    ExistingMemory("mem_cat", "Alice has a cat.", 0.2),
]
ANSWERS = {
    "window": json.dumps(
        {
            "facts": [
                {
                    "text": "Alice lives in Oslo.",
                    "retracts": True,
                    "key": "Alice|lives_in",
                    "observed_at": "2023-09-02",
                    "source": [2, 0],
                },
                {"text": "Alice lives in Porto.", "retracts": False, "key": "alice|lives_in", "source": [2]},
            ]
        }
    ),
    "short": "Alice lives in Oslo.",  # prose, not JSON
    "decide": json.dumps({"action": "UPDATE", "target": 0, "text": None}),
}


@functools.cache
def shared_taught_model() -> LocalModel:
    """One model per test process, taught the three answers above (``WINDOW``, ``WINDOW[:2]``, a decision)."""
    from ledger.memos.extraction.llm_decide import build_decide_prompt
    from ledger.memos.extraction.llm_prompt import build_prompt

    return taught_model(
        [
            (build_prompt(WINDOW), ANSWERS["window"]),
            (build_prompt(WINDOW[:2]), ANSWERS["short"]),
            (build_decide_prompt(CAND, NEIGHBOURS), ANSWERS["decide"]),
        ]
    )
