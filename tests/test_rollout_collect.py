"""Multi-turn rollouts: groups, per-turn rows, sampler log-probs and the context builders."""

import copy

import numpy as np
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from istar_gym.adapters import adapter_for
from istar_gym.llm.hf import HFBackend
from istar_gym.prm import action_logprobs
from istar_gym.rl.rollout import (
    Actor,
    collect_rollouts,
    context_builder,
    group_seeds,
    make_vector_env,
    sample_actions,
)
from istar_gym.rl.tiny import build_tiny_model, tiny_context

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SOKOBAN = "istar/Sokoban-v0"


@pytest.fixture(scope="module")
def tiny():
    return build_tiny_model(seed=0)


@pytest.fixture(scope="module")
def rollouts(tiny):
    model, tokenizer = tiny
    envs = make_vector_env("istar/Sokoban-v0", 6)
    seeds = group_seeds(np.random.default_rng(0), num_groups=2, group_size=3)
    actor = Actor(model, tokenizer, context_builder(model, SOKOBAN), max_new_tokens=2, generator=torch.Generator().manual_seed(0))
    result = collect_rollouts(envs, actor, seeds, group_size=3, max_turns=5, state_key=adapter_for(SOKOBAN).state_key)
    envs.close()
    return result


def test_group_seeds_repeat_each_task_group_size_times():
    seeds = group_seeds(np.random.default_rng(1), num_groups=3, group_size=4)
    assert len(seeds) == 12
    assert [len(set(seeds[g * 4 : (g + 1) * 4])) for g in range(3)] == [1, 1, 1]
    assert len(set(seeds)) == 3


def test_episodes_of_a_group_start_from_the_same_board(rollouts):
    first = {t.episode: t.state for t in rollouts.turns if t.step == 0}
    assert first[0] == first[1] == first[2]
    assert first[3] == first[4] == first[5]
    assert first[0] != first[3]


def test_turn_rows_carry_tokens_logprobs_and_rewards(rollouts):
    for turn in rollouts.turns:
        assert turn.context_ids and turn.action_ids
        assert len(turn.old_logprobs) == len(turn.action_ids)
        assert all(value <= 0.0 for value in turn.old_logprobs)
        assert turn.group == turn.episode // 3
    returns = np.zeros(6)
    for turn in rollouts.turns:
        returns[turn.episode] += turn.reward
    np.testing.assert_allclose(returns, rollouts.episode_return)
    lengths = np.bincount([t.episode for t in rollouts.turns], minlength=6)
    np.testing.assert_array_equal(lengths, rollouts.length)
    assert rollouts.length.max() <= 5


def test_invalid_actions_are_counted_not_raised(rollouts):
    # An untrained model writes mostly non-action tokens: the env rejects them, the rollout goes on.
    invalid = sum(not t.action_is_valid for t in rollouts.turns)
    assert invalid == rollouts.invalid_actions.sum() > 0
    assert 0.0 < rollouts.summary()["invalid_rate"] <= 1.0


def test_sampler_logprobs_match_a_full_forward_pass(tiny, rollouts):
    model, tokenizer = tiny
    turns = [(t.context_ids, t.action_ids) for t in rollouts.turns[:20]]
    with torch.no_grad():
        full = action_logprobs(model, turns, pad_token_id=tokenizer.pad_token_id, batch_size=64)
    sampled = torch.tensor([sum(t.old_logprobs) for t in rollouts.turns[:20]])
    torch.testing.assert_close(sampled, full, atol=1e-4, rtol=1e-4)


def test_sampling_stops_at_eos_and_greedy_is_deterministic(tiny):
    model, tokenizer = tiny
    contexts = [tokenizer(tiny_context("######\n#P_X_#\n#___O#\n#____#\n#____#\n######", None))["input_ids"]] * 3
    kwargs = {"max_new_tokens": 4, "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id, "temperature": 0}
    first, _ = sample_actions(model, contexts, **kwargs)
    second, _ = sample_actions(model, contexts, **kwargs)
    assert first == second and first[0] == first[1]
    for tokens in first:
        assert len(tokens) <= 4
        assert tokenizer.eos_token_id not in tokens[:-1]


def test_tiny_context_is_the_board_without_its_ring_the_player_neighbours_and_the_last_action():
    board = "######\n#P_X_#\n#___O#\n#____#\n#____#\n######"
    assert tiny_context(board, None) == "P_X____O________" + "#_#_" + "none>"
    assert tiny_context(board, " Up ").endswith("up>")
    assert tiny_context(board, "<action>jump</action>").endswith("bad>")


def test_chat_models_get_the_shared_prompt():
    chat_model = LlamaForCausalLM(LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2))
    build = context_builder(chat_model, SOKOBAN, history_window=2)
    messages = build("#P#", {"instruction": "Push.", "available_actions": ["up"]}, [("#P#", "up")])
    assert messages[-1]["role"] == "user" and "Push." in messages[-1]["content"] and "up" in messages[-1]["content"]


def test_tiny_context_needs_a_board_and_says_so(tiny):
    model, _ = tiny
    with pytest.raises(ValueError, match="board_text"):
        context_builder(model, SOKOBAN)("some page", {"instruction": "buy"}, [])


def test_a_tiny_model_refuses_an_env_whose_adapter_names_another_preset(tiny):
    model, _ = tiny
    with pytest.raises(ValueError, match="tiny 'tiny_sokoban' policy"):
        context_builder(model, "istar/WebShop-v0")


def test_turns_carry_the_adapter_state_key_of_the_state_they_were_taken_in(tiny, rollouts):
    # Sokoban's exact state is the board: each turn's context was built from the board it stores.
    _, tokenizer = tiny
    for turn in rollouts.turns:
        board_and_neighbours = tiny_context(turn.state, None).removesuffix("none>")
        assert tokenizer.decode(turn.context_ids, skip_special_tokens=True).startswith(board_and_neighbours)


def test_a_backend_can_write_the_actions_instead(tiny):
    model, tokenizer = tiny
    envs = make_vector_env("istar/Sokoban-v0", 4)
    actor = Actor(
        model,
        tokenizer,
        context_builder(model, SOKOBAN),
        max_new_tokens=2,
        generator=torch.Generator().manual_seed(0),
        backend=HFBackend(model, tokenizer, batch_size=4),
    )
    result = collect_rollouts(envs, actor, [7, 7, 8, 8], group_size=2, max_turns=3)
    envs.close()
    assert len(result.turns) >= 4
    for turn in result.turns:
        assert tokenizer.decode(turn.action_ids) == turn.action_text
        assert turn.old_logprobs == []


def test_async_vector_env_for_rollouts_starts_spawned_workers():
    from istar_gym.rl.rollout import make_vector_env

    envs = make_vector_env("istar/Sokoban-v0", num_envs=2, mode="async")
    try:
        obs, _ = envs.reset(seed=[3, 3])
        assert obs[0] == obs[1]
        envs.step(("<action>up</action>",) * 2)
    finally:
        envs.close()


def _forward_batch_sizes(model) -> list[int]:
    sizes: list[int] = []
    model.get_decoder().layers[0].register_forward_hook(lambda module, args, output: sizes.append(args[0].shape[0]))
    return sizes


def test_copies_in_one_state_share_a_prompt_forward_and_still_sample_apart(tiny):
    model, tokenizer = copy.deepcopy(tiny[0]), tiny[1]
    sizes = _forward_batch_sizes(model)
    board = tokenizer(tiny_context("######\n#P_X_#\n#___O#\n#____#\n#____#\n######", None))["input_ids"]
    other = tokenizer(tiny_context("######\n#_PX_#\n#___O#\n#____#\n#____#\n######", None))["input_ids"]
    contexts = [board] * 8 + [other] * 4
    kwargs = {"max_new_tokens": 2, "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id}
    tokens, logprobs = sample_actions(model, contexts, temperature=1.0, generator=torch.Generator().manual_seed(0), **kwargs)
    assert sizes == [2, 12]  # the prompt forward of the two distinct contexts, then one decode step per row
    assert len({tuple(t) for t in tokens[:8]}) > 1  # eight copies at temperature 1 do not all come back identical
    turns = list(zip(contexts, tokens))
    with torch.no_grad():
        full = action_logprobs(model, turns, pad_token_id=tokenizer.pad_token_id, batch_size=64)
    torch.testing.assert_close(torch.tensor([sum(p) for p in logprobs]), full, atol=1e-4, rtol=1e-4)


def test_an_actor_tokenises_a_short_prompt_once_and_keeps_long_ones_out(tiny):
    from istar_gym.rl import rollout

    _, tokenizer = tiny
    known: dict[str, list[int]] = {}
    short, other, long = "#_P_>", "#O_P>", "#" * (rollout._KNOWN_PROMPT_CHARS + 1)
    first = rollout._encode_prompts(tokenizer, [short, long, short, other], known)
    assert first == [tokenizer(text)["input_ids"] for text in (short, long, short, other)]
    assert set(known) == {short, other}
    known[short] = [99]  # a kept prompt is read back, not tokenised again
    assert rollout._encode_prompts(tokenizer, [short, other], known) == [[99], tokenizer(other)["input_ids"]]
    full = {f"{index}>": [index] for index in range(rollout._KNOWN_PROMPTS)}
    rollout._encode_prompts(tokenizer, ["#>"], full)
    assert list(full) == ["#>"]  # a full store starts over


class _SolverActor:
    """Plays the project's optimal Sokoban agent, so episodes end at different turns (the rollout's
    env handling is under test here, not a model)."""

    def __init__(self):
        from agents.scripted import SokobanSolverAgent

        self.agent = SokobanSolverAgent()

    def build_context(self, observation, info, history):
        return info

    def act(self, infos):
        moves = [self.agent.act(None, info) for info in infos]
        return [[0]] * len(moves), [[0]] * len(moves), [[0.0]] * len(moves), moves


def test_an_episode_that_ends_early_is_reset_to_its_own_task_not_to_a_random_one():
    # A vector env's autoreset would start a new random level on the next step (for Sokoban,
    # generated and solved for nothing); the rollout resets the sub-env to its own seed instead.
    seeds = group_seeds(np.random.default_rng(3), num_groups=6, group_size=2)
    envs = make_vector_env(SOKOBAN, len(seeds))
    try:
        result = collect_rollouts(envs, _SolverActor(), seeds, group_size=2, max_turns=15)
        levels = [env.unwrapped.level for env in envs.envs]
    finally:
        envs.close()
    assert result.success.all() and len(set(result.length)) > 1  # episodes ended at different turns
    reference = make_vector_env(SOKOBAN, 1)
    for seed, level, length in zip(seeds, levels, result.length):
        reference.reset(seed=[seed])
        start = reference.envs[0].unwrapped.level
        if length < result.length.max():
            assert level == start  # back at its own start, the empty actions since then rejected
        else:
            assert (level.walls, level.targets) == (start.walls, start.targets)  # the last to finish is left solved
    reference.close()
