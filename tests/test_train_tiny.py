"""The tiny CPU preset: a real Hugging Face model and tokenizer, saved and reloaded like any other."""

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook
from transformers import LlamaForCausalLM

from istar_gym.llm import load_model
from istar_gym.rl.rollout import context_builder
from istar_gym.rl.tiny import (
    ACTION_WORDS,
    TINY_CONTEXT,
    build_tiny_model,
    collect_demonstrations,
    tiny_context,
    unflattened_policy,
    warm_start,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_tokenizer_gives_one_token_per_cell_and_per_action_word():
    _, tokenizer = build_tiny_model()
    ids = tokenizer("P_X√" + "left>")["input_ids"]
    assert tokenizer.convert_ids_to_tokens(ids) == ["P", "_", "X", "√", "left", ">"]
    for word in ACTION_WORDS:
        (token,) = tokenizer(word)["input_ids"]
        assert tokenizer.decode([token, tokenizer.eos_token_id], skip_special_tokens=True) == word


def test_saved_tiny_model_reloads_through_the_llm_loader_with_its_context(tmp_path):
    model, tokenizer = build_tiny_model(seed=1)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded, loaded_tokenizer = load_model(tmp_path)
    assert isinstance(loaded, LlamaForCausalLM)
    assert loaded.config.istar_context == TINY_CONTEXT
    assert loaded_tokenizer.get_vocab() == tokenizer.get_vocab()
    ids = torch.tensor([tokenizer(tiny_context("#####\n#P_X#\n#__O#\n#####", None))["input_ids"]])
    torch.testing.assert_close(loaded(ids).logits, model(ids).logits)
    assert context_builder(loaded, "istar/Sokoban-v0")(None, {"board_text": "#####\n#P_X#\n#__O#\n#####"}, []) == "P_X__O#_#_none>"


def test_noise_free_demonstrations_solve_every_level_before_the_step_limit():
    turns = collect_demonstrations(episodes=40, noise=0.0, seed=0)
    assert {t.action_text for t in turns} <= set(ACTION_WORDS)
    last_step = {}
    for turn in turns:
        last_step[turn.episode] = turn.step
    # A truncated episode would end on step index 14 (the 15th move).
    assert len(last_step) == 40 and max(last_step.values()) < 14


def test_warm_start_lowers_the_imitation_loss():
    model, tokenizer = build_tiny_model(seed=0)
    demonstrations = collect_demonstrations(episodes=60, noise=0.0, seed=1, tokenizer=tokenizer)
    losses = warm_start(model, tokenizer, demonstrations, steps=30, batch_size=64)
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize(("anneal", "expected"), [(True, [1e-3, 7.5e-4, 5e-4, 2.5e-4]), (False, [1e-3] * 4)])
def test_warm_start_anneals_its_learning_rate_to_zero(anneal, expected):
    model, tokenizer = build_tiny_model(seed=0)
    demonstrations = collect_demonstrations(episodes=5, noise=0.0, seed=1, tokenizer=tokenizer)
    rates = []
    hook = register_optimizer_step_pre_hook(lambda optimizer, *_: rates.append(optimizer.param_groups[0]["lr"]))
    try:
        warm_start(model, tokenizer, demonstrations, steps=4, batch_size=8, lr=1e-3, anneal=anneal)
    finally:
        hook.remove()
    assert rates == pytest.approx(expected)


def test_unflattened_policy_takes_the_baked_temperature_out_again(tiny_policy, tmp_path):
    flat = LlamaForCausalLM.from_pretrained(tiny_policy)
    clean = LlamaForCausalLM.from_pretrained(unflattened_policy(tiny_policy, tmp_path / "clean", temperature=3.0))
    assert torch.allclose(clean.model.norm.weight, 3.0 * flat.model.norm.weight)
    # Every other weight (the features) is the warm start's.
    others = [(name, p) for name, p in flat.named_parameters() if name != "model.norm.weight"]
    assert all(torch.equal(p, clean.get_parameter(name)) for name, p in others)
