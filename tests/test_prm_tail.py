"""The last decoder layer run only where logits are read (`istar_gym.prm.tail`): same logits, same
gradients, same samples' cache, for the tiny presets' Llama and for grouped-query attention."""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import DynamicCache, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM
from transformers.models.llama.modeling_llama import LlamaDecoderLayer

from istar_gym.prm import action_logprobs
from istar_gym.prm.scoring import forward_with_cache
from istar_gym.prm.tail import TailDecoderLayer, tail_kwargs, trim_last_layer

VOCAB = 40


def _llama(attention: str = "eager", kv_heads: int = 4, layers: int = 2, seed: int = 0) -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=kv_heads,
        max_position_embeddings=64,
        pad_token_id=0,
        attn_implementation=attention,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).eval()


def _pair(**kwargs) -> tuple[LlamaForCausalLM, LlamaForCausalLM]:
    full = _llama(**kwargs)
    trimmed = copy.deepcopy(full)
    assert trim_last_layer(trimmed)
    return full, trimmed


def _left_padded(lengths: list[int], seed: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    width = max(lengths)
    ids = torch.zeros(len(lengths), width, dtype=torch.long)
    mask = torch.zeros(len(lengths), width, dtype=torch.long)
    for row, length in enumerate(lengths):
        ids[row, width - length :] = torch.randint(1, VOCAB, (length,), generator=generator)
        mask[row, width - length :] = 1
    return ids, mask, (mask.cumsum(-1) - 1).clamp(min=0)


@pytest.mark.parametrize(("attention", "kv_heads"), [("eager", 4), ("eager", 2), ("sdpa", 4), ("sdpa", 1)])
def test_the_tail_gives_the_full_forwards_last_logits_and_gradients(attention, kv_heads):
    full, trimmed = _pair(attention=attention, kv_heads=kv_heads, layers=3)
    ids, mask, positions = _left_padded([9, 5, 12, 12, 7])
    targets = torch.randint(VOCAB, (ids.shape[0], 3), generator=torch.Generator().manual_seed(2))
    grads = []
    for model, extra in ((full, {}), (trimmed, tail_kwargs(trimmed, 3))):
        logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=3, **extra).logits
        torch.log_softmax(logits, -1).gather(-1, targets[..., None]).sum().backward()
        grads.append((logits.detach(), [p.grad.clone() for p in model.parameters()]))
    (full_logits, full_grads), (tail_logits, tail_grads) = grads
    assert tail_logits.shape == full_logits.shape == (5, 3, VOCAB)
    torch.testing.assert_close(tail_logits, full_logits, atol=1e-5, rtol=1e-5)
    for tail_grad, full_grad in zip(tail_grads, full_grads, strict=True):
        torch.testing.assert_close(tail_grad, full_grad, atol=1e-5, rtol=1e-4)


def test_the_tail_fills_the_kv_cache_that_later_tokens_read():
    """Sampling reads one position per step; the prompt's cache must hold every position's keys."""
    full, trimmed = _pair()
    ids, mask, positions = _left_padded([6, 10, 8])
    next_token = torch.tensor([[3], [7], [11]])
    outputs = []
    for model, extra in ((full, {}), (trimmed, tail_kwargs(trimmed, 1))):
        first, cache = forward_with_cache(
            model, DynamicCache(config=model.config), input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=1, **extra
        )
        step_mask = torch.cat([mask, torch.ones(3, 1, dtype=torch.long)], -1)
        second, _ = forward_with_cache(
            model, cache, input_ids=next_token, attention_mask=step_mask, position_ids=positions[:, -1:] + 1, logits_to_keep=1, **extra
        )
        outputs.append((first.logits, second.logits))
    for tail, expected in zip(outputs[1], outputs[0], strict=True):
        torch.testing.assert_close(tail, expected, atol=1e-5, rtol=1e-5)


def test_action_logprobs_under_bfloat16_autocast_agree_with_the_full_forward():
    full, trimmed = _pair()
    generator = torch.Generator().manual_seed(3)
    turns = [(torch.randint(1, VOCAB, (n,), generator=generator).tolist(), [5, 2][: 1 + n % 2]) for n in (4, 9, 22, 22, 13)]
    for autocast, tolerance in ((None, 1e-5), (torch.bfloat16, 0.05)):
        expected = action_logprobs(full, turns, pad_token_id=0, autocast=autocast)
        got = action_logprobs(trimmed, turns, pad_token_id=0, autocast=autocast)
        torch.testing.assert_close(got, expected, atol=tolerance, rtol=0)


def test_trimming_keeps_the_weights_names_and_saved_model(tmp_path):
    full, trimmed = _pair()
    assert type(trimmed.model.layers[-1]) is TailDecoderLayer and type(trimmed.model.layers[0]) is LlamaDecoderLayer
    assert list(trimmed.state_dict()) == list(full.state_dict())
    trimmed.save_pretrained(tmp_path)
    reloaded = LlamaForCausalLM.from_pretrained(tmp_path)
    assert type(reloaded.model.layers[-1]) is LlamaDecoderLayer  # the saved model is a plain Llama
    ids, mask, positions = _left_padded([7, 4])
    plain = trimmed(input_ids=ids, attention_mask=mask, position_ids=positions).logits  # no tail keyword: every position
    torch.testing.assert_close(plain, full(input_ids=ids, attention_mask=mask, position_ids=positions).logits)
    assert trim_last_layer(trimmed)  # trimming twice is a no-op


def test_models_without_a_llama_last_layer_are_left_alone():
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=1, n_head=2, n_positions=32))
    assert not trim_last_layer(gpt2)
    assert tail_kwargs(gpt2, 3) == {}
    assert tail_kwargs(_llama(), 3) == {}  # an untrimmed Llama gets no keyword either


def test_a_trimmed_policy_samples_the_same_actions_and_logprobs():
    from istar_gym.rl.rollout import sample_actions

    full, trimmed = _pair()
    ids, _, _ = _left_padded([6, 9, 9, 4])
    contexts = [[token for token in row.tolist() if token] for row in ids]
    results = [
        sample_actions(model, contexts, max_new_tokens=3, eos_token_id=2, pad_token_id=0, generator=torch.Generator().manual_seed(5))
        for model in (full, trimmed)
    ]
    assert results[0][0] == results[1][0]
    torch.testing.assert_close(torch.tensor(sum(results[1][1], [])), torch.tensor(sum(results[0][1], [])), atol=1e-5, rtol=0)
