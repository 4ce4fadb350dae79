"""Implicit PRM scoring: the step reward, batched vs incremental, truncation and bad input."""

import copy

import pytest
import torch

from istar_gym.llm.hf import left_pad, tokenize_context_completion
from istar_gym.prm import ImplicitPRM, Turn, action_logprobs, truncate_turn
from istar_gym.prm.scoring import forward_with_cache
from istar_gym.prompts import build_messages
from istar_gym.wrappers import conversation_context


def perturbed_prm(model, tokenizer, scale=0.02, seed=1, **kwargs):
    """A PRM whose pi_phi differs from its frozen reference by random noise, so rewards are non-zero."""
    prm = ImplicitPRM(copy.deepcopy(model), tokenizer, **kwargs)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in prm.model.parameters():
            parameter.add_(scale * torch.randn(parameter.shape, generator=generator))
    return prm


def sokoban_episode(turns=5, context="conversation"):
    """Turns of a plausible Sokoban episode, contexts built as the wrapper builds them."""
    info = {"instruction": "Push the box X onto the target O.", "available_actions": ["up", "down", "left", "right"]}
    history, episode = [], []
    for t in range(turns):
        board = "#####\n#P_X#\n#__O#\n#####".replace("P", "_P" if t % 2 else "P_")[:23]
        action = f"<think>the box is {'right' if t % 2 else 'below'}</think><action>{['right', 'down'][t % 2]}</action>"
        if context == "conversation":
            messages = conversation_context(board, info, history)
        else:
            messages = build_messages(info["instruction"], board, info["available_actions"], history)
        episode.append(Turn(messages, action))
        history.append((board, action))
    return episode


def test_prm_identical_to_its_reference_gives_exactly_zero(tiny):
    prm = ImplicitPRM(*tiny)
    assert prm.step_rewards(sokoban_episode()).tolist() == [0.0] * 5


def test_step_reward_is_beta_times_the_summed_log_ratio_of_the_action_tokens(tiny):
    prm = perturbed_prm(*tiny, beta=0.5)
    turn = sokoban_episode(1)[0]
    context_ids, action_ids = tokenize_context_completion(prm.tokenizer, turn.context, turn.action)
    ids = torch.tensor([context_ids + action_ids])

    def summed(model):
        logits = model(ids).logits[0, len(context_ids) - 1 : -1]
        return torch.log_softmax(logits, -1).gather(-1, torch.tensor(action_ids)[:, None]).sum()

    with torch.no_grad():
        expected = 0.5 * (summed(prm.model) - summed(prm.reference_model))
    torch.testing.assert_close(prm.step_rewards([turn])[0], expected, atol=1e-5, rtol=1e-4)


def test_batched_scoring_does_not_depend_on_the_batch_size(tiny):
    turns = sokoban_episode(6, context="window")
    one = perturbed_prm(*tiny, batch_size=1).step_rewards(turns)
    many = perturbed_prm(*tiny, batch_size=8).step_rewards(turns)
    torch.testing.assert_close(one, many, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("context", ["conversation", "window"])
def test_incremental_scoring_equals_batched_scoring(tiny, context):
    prm = perturbed_prm(*tiny)
    turns = sokoban_episode(6, context)
    scorer = prm.episode_scorer()
    incremental = torch.tensor([scorer.step_reward(turn) for turn in turns])
    torch.testing.assert_close(incremental, prm.step_rewards(turns), atol=1e-6, rtol=1e-4)


def test_incremental_scoring_of_a_growing_chat_processes_each_token_once(tiny):
    prm = perturbed_prm(*tiny)
    turns = sokoban_episode(8)
    scorer = prm.episode_scorer()
    for turn in turns:
        scorer.step_reward(turn)
    final_length = sum(map(len, prm.encode(turns[-1])))
    naive_tokens = sum(sum(map(len, prm.encode(turn))) for turn in turns)
    assert scorer.tokens_processed == final_length < naive_tokens / 4


def test_episode_scorer_reset_starts_a_new_episode(tiny):
    prm = perturbed_prm(*tiny)
    first, second = sokoban_episode(3), sokoban_episode(3, "window")
    scorer = prm.episode_scorer()
    for turn in first:
        scorer.step_reward(turn)
    scorer.reset()
    fresh = prm.episode_scorer()
    assert [scorer.step_reward(t) for t in second] == pytest.approx([fresh.step_reward(t) for t in second], abs=1e-7)


def test_empty_action_scores_exactly_zero(tiny):
    prm = perturbed_prm(*tiny)
    turn = Turn(sokoban_episode(1)[0].context, "")
    assert prm.step_rewards([turn]).tolist() == [0.0]
    assert prm.episode_scorer().step_reward(turn) == 0.0


def test_action_longer_than_the_window_keeps_its_first_tokens_and_the_latest_context():
    assert truncate_turn([1, 2, 3, 4], [5, 6, 7], max_length=5) == ([3, 4], [5, 6, 7])
    assert truncate_turn([1, 2, 3, 4], list(range(10, 20)), max_length=5) == ([4], [10, 11, 12, 13])
    assert truncate_turn([1, 2], [3], max_length=8) == ([1, 2], [3])


def test_over_long_turns_are_scored_after_truncation(tiny):
    prm = perturbed_prm(*tiny, max_length=64)
    turn = Turn("Describe the board.", "left right " * 200)
    context_ids, action_ids = prm.encode(turn)
    assert (len(context_ids), len(action_ids)) == (1, 63)
    incremental = prm.episode_scorer().step_reward(turn)
    assert incremental == pytest.approx(prm.step_rewards([turn]).item(), abs=1e-6)


def test_token_id_turns_score_like_the_text_they_encode(tiny):
    prm = perturbed_prm(*tiny)
    turn = sokoban_episode(1)[0]
    ids = tokenize_context_completion(prm.tokenizer, turn.context, turn.action)
    torch.testing.assert_close(prm.step_rewards([ids]), prm.step_rewards([turn]))


def test_supplied_reference_log_probs_replace_the_frozen_copy(tiny):
    model, tokenizer = tiny
    prm = ImplicitPRM(copy.deepcopy(model), tokenizer, reference="supplied")
    turns = sokoban_episode(3)
    per_token = []
    for turn in turns:
        context_ids, action_ids = tokenize_context_completion(tokenizer, turn.context, turn.action)
        with torch.no_grad():
            logits = model(torch.tensor([context_ids + action_ids])).logits[0, len(context_ids) - 1 : -1]
        per_token.append(torch.log_softmax(logits, -1).gather(-1, torch.tensor(action_ids)[:, None])[:, 0].tolist())
    torch.testing.assert_close(prm.step_rewards(turns, per_token), torch.zeros(3), atol=1e-6, rtol=0)
    summed = [sum(values) for values in per_token]
    torch.testing.assert_close(prm.step_rewards(turns, summed), torch.zeros(3), atol=1e-6, rtol=0)


def test_supplied_reference_is_required_when_the_prm_holds_none(tiny):
    prm = ImplicitPRM(*tiny, reference="supplied")
    with pytest.raises(ValueError, match="pass reference_logprobs"):
        prm.step_rewards(sokoban_episode(1))
    with pytest.raises(ValueError, match="reference='copy'"):
        prm.episode_scorer()


def test_reference_token_log_probs_from_another_tokenizer_are_refused(tiny):
    prm = ImplicitPRM(*tiny, reference="supplied")
    with pytest.raises(ValueError, match="share one tokenizer"):
        prm.step_rewards(sokoban_episode(1), [[-0.5, -0.5]])


def test_non_finite_reference_log_probs_are_refused(tiny):
    prm = ImplicitPRM(*tiny, reference="supplied")
    with pytest.raises(ValueError, match="turn 0 is nan"):
        prm.step_rewards(sokoban_episode(1), [float("nan")])


def test_nan_in_the_model_is_detected_with_a_clear_error(tiny):
    prm = perturbed_prm(*tiny)
    with torch.no_grad():
        prm.model.model.norm.weight.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="pi_phi returned a non-finite log-prob"):
        prm.step_rewards(sokoban_episode(2))
    with pytest.raises(FloatingPointError, match="pi_phi"):
        prm.episode_scorer().step_reward(sokoban_episode(1)[0])


def test_a_reference_with_another_vocabulary_is_refused(tiny):
    from istar_gym.rl.tiny import build_tiny_model

    model, tokenizer = tiny
    other_model, _other_tokenizer = build_tiny_model()
    with pytest.raises(ValueError, match="token embeddings"):
        ImplicitPRM(copy.deepcopy(model), tokenizer, reference=other_model)


def test_a_reference_tokenizer_that_differs_is_refused(tiny):
    from istar_gym.rl.tiny import build_tiny_tokenizer

    model, tokenizer = tiny
    with pytest.raises(ValueError, match="map text to different ids"):
        ImplicitPRM(copy.deepcopy(model), tokenizer, reference=copy.deepcopy(model), reference_tokenizer=build_tiny_tokenizer())


def test_non_positive_beta_is_refused(tiny):
    with pytest.raises(ValueError, match="beta=0"):
        ImplicitPRM(*tiny, beta=0)


def test_malformed_turns_are_refused(tiny):
    prm = ImplicitPRM(*tiny)
    with pytest.raises(TypeError, match="generated text"):
        prm.step_rewards([Turn("context", 3)])
    with pytest.raises(TypeError, match="Turn\\(context, action\\)"):
        prm.step_rewards(["just a string"])


@pytest.mark.slow
def test_default_prm_is_smollm2_with_a_frozen_copy_and_incremental_equals_batched():
    prm = ImplicitPRM.from_pretrained()
    assert prm.beta == 0.05 and prm.model.config.num_hidden_layers == 30
    assert not any(p.requires_grad for p in prm.reference_model.parameters())
    turns = sokoban_episode(2)
    assert prm.step_rewards(turns).tolist() == [0.0, 0.0]
    with torch.no_grad():
        prm.model.model.layers[-1].mlp.down_proj.weight.mul_(1.5)
    scorer = prm.episode_scorer()
    incremental = torch.tensor([scorer.step_reward(turn) for turn in turns])
    batched = prm.step_rewards(turns)
    assert batched.abs().min() > 1e-4
    torch.testing.assert_close(incremental, batched, atol=2e-5, rtol=1e-3)


def test_identical_turns_are_scored_once_with_the_gradient_of_every_copy(tiny):
    model, tokenizer = tiny
    turns = [([5, 6, 7], [8, 9]), ([5, 6], [8]), ([5, 6, 7], [8, 9]), ([5, 6, 7], [8, 9]), ([4], [])]
    sizes = []
    hook = model.get_decoder().layers[0].register_forward_hook(lambda module, args, output: sizes.append(args[0].shape[0]))
    try:
        shared = action_logprobs(model, turns, pad_token_id=tokenizer.pad_token_id, batch_size=64)
        weights = torch.tensor([1.0, -2.0, 3.0, 0.5, 7.0])
        (shared * weights).sum().backward()
        grad_shared = [p.grad.clone() for p in model.parameters()]
    finally:
        hook.remove()
    assert sizes == [2]  # two distinct turns with an action: one forward of two rows
    model.zero_grad()
    one_by_one = torch.stack([action_logprobs(model, [turn], pad_token_id=tokenizer.pad_token_id)[0] for turn in turns])
    (one_by_one * weights).sum().backward()
    torch.testing.assert_close(shared, one_by_one, atol=1e-5, rtol=1e-5)
    assert shared[4] == 0.0
    for a, p in zip(grad_shared, model.parameters()):
        torch.testing.assert_close(a, p.grad, atol=1e-4, rtol=1e-3)  # float noise of batch composition
    model.zero_grad()


def test_forward_with_cache_continues_a_sequence_as_one_forward_would(tiny):
    # The prefix's cache plus the rest gives the logits of the whole sequence in one pass, whichever
    # name (cache or past_key_values) this transformers version gives the KV cache.
    model, _ = tiny
    ids = torch.randint(10, 1000, (2, 9), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        whole = model(input_ids=ids).logits
        first, cache = forward_with_cache(model, None, input_ids=ids[:, :6])
        rest, cache = forward_with_cache(model, cache, input_ids=ids[:, 6:], position_ids=torch.arange(6, 9).expand(2, 3))
    assert cache.get_seq_length() == 9
    torch.testing.assert_close(torch.cat([first.logits, rest.logits], 1), whole, atol=1e-4, rtol=1e-4)


def test_left_pad_right_aligns_each_sequence_and_masks_the_padding():
    ids, mask = left_pad([[5, 6, 7], [], (8,), [9, 10]], pad_token_id=0)
    assert ids.tolist() == [[5, 6, 7], [0, 0, 0], [0, 0, 8], [0, 9, 10]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 0], [0, 0, 1], [0, 1, 1]]
    assert ids.dtype == mask.dtype == torch.long
    wide, _ = left_pad([[1, 2]], pad_token_id=3, width=4)
    assert wide.tolist() == [[3, 3, 1, 2]]
    with pytest.raises(ValueError, match="does not fit in width 1"):
        left_pad([[1, 2]], pad_token_id=0, width=1)
