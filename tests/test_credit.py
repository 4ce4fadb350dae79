"""Advantage estimators: hand-computed examples of each formula (istar_gym.credit)."""

import math

import pytest
import torch

from istar_gym.credit import (
    grpo_advantages,
    normalised_step_advantages,
    reinforce_pp_advantages,
    rloo_advantages,
    step_advantages,
    turn_advantages,
)


def close(actual, expected):
    torch.testing.assert_close(actual, torch.tensor(expected, dtype=actual.dtype), atol=1e-5, rtol=1e-5)


def test_rloo_subtracts_the_mean_of_the_other_group_members():
    returns = torch.tensor([1.0, 0.0, 0.0, 1.0, 5.0, 3.0])
    groups = torch.tensor([0, 0, 0, 0, 1, 1])
    # group 0: 1 - (0+0+1)/3, 0 - (1+0+1)/3, ...; group 1: 5 - 3, 3 - 5
    close(rloo_advantages(returns, groups), [2 / 3, -2 / 3, -2 / 3, 2 / 3, 2.0, -2.0])


def test_rloo_gives_zero_to_a_group_of_one():
    close(rloo_advantages(torch.tensor([4.0, 1.0, 3.0]), torch.tensor([7, 8, 8])), [0.0, -2.0, 2.0])


def test_grpo_is_the_group_z_score_with_unbiased_std():
    # mean 0.5, unbiased std sqrt(1/3): advantages +-0.5 / 0.57735
    a = math.sqrt(3) / 2
    close(grpo_advantages(torch.tensor([1.0, 0.0, 0.0, 1.0]), torch.tensor([0, 0, 0, 0]), eps=0.0), [a, -a, -a, a])


def test_grpo_gives_zero_when_all_returns_of_a_group_are_equal():
    close(grpo_advantages(torch.tensor([-1.5, -1.5, 2.0, 0.0]), torch.tensor([0, 0, 1, 1]), eps=1e-6)[:2], [0.0, 0.0])


def test_reinforce_pp_centres_each_group_then_whitens_over_the_batch():
    # centred: [-1, 1, -2, 2]; batch mean 0, unbiased std sqrt(10/3)
    s = math.sqrt(10 / 3)
    result = reinforce_pp_advantages(torch.tensor([1.0, 3.0, 10.0, 14.0]), torch.tensor([0, 0, 1, 1]), eps=0.0)
    close(result, [-1 / s, 1 / s, -2 / s, 2 / s])


def test_reinforce_pp_without_groups_whitens_the_returns():
    close(reinforce_pp_advantages(torch.tensor([0.0, 2.0, 4.0]), eps=0.0), [-1.0, 0.0, 1.0])


def test_step_advantages_normalise_over_all_steps_of_each_group():
    # group 0 has the steps of two trajectories: [0.2, 0.0, -0.2] -> mean 0, std 0.2
    rewards = torch.tensor([0.2, 0.0, -0.2, 7.0, 9.0])
    groups = torch.tensor([0, 0, 0, 1, 1])
    s = math.sqrt(2)
    close(step_advantages(rewards, groups, eps=0.0), [1.0, 0.0, -1.0, -1 / s, 1 / s])


def test_turn_advantages_broadcast_the_episode_advantage_to_every_turn():
    returns = torch.tensor([10.0, 0.0])
    groups = torch.tensor([3, 3])
    rows = torch.tensor([0, 0, 0, 1])
    close(turn_advantages(returns, groups, rows, "rloo"), [10.0, 10.0, 10.0, -10.0])


def test_istar_adds_alpha_times_the_step_advantage_to_the_episode_advantage():
    returns = torch.tensor([1.0, 0.0])
    groups = torch.tensor([0, 0])
    rows = torch.tensor([0, 0, 1])
    step_rewards = torch.tensor([0.2, 0.0, -0.2])  # A_S = [1, 0, -1]; A_E (RLOO) = [1, -1]
    result = turn_advantages(returns, groups, rows, "rloo", step_rewards=step_rewards, alpha=0.5, eps=0.0)
    close(result, [1.5, 1.0, -1.5])


def test_istar_with_grpo_uses_the_group_z_score_as_episode_channel():
    returns = torch.tensor([1.0, 0.0, 0.0, 1.0])
    rows = torch.tensor([0, 1, 2, 3])
    result = turn_advantages(returns, torch.zeros(4), rows, "grpo", step_rewards=torch.zeros(4), eps=0.0)
    close(result, grpo_advantages(returns, torch.zeros(4), eps=0.0).tolist())


def test_step_rewards_all_equal_add_nothing():
    returns = torch.tensor([1.0, 0.0, 1.0])
    rows = torch.tensor([0, 1, 1, 2])
    plain = turn_advantages(returns, torch.zeros(3), rows, "reinforce_pp")
    close(turn_advantages(returns, torch.zeros(3), rows, "reinforce_pp", step_rewards=torch.zeros(4)), plain.tolist())


def test_non_finite_rewards_are_rejected_with_their_index():
    with pytest.raises(ValueError, match=r"returns\[1\] is nan"):
        rloo_advantages(torch.tensor([0.0, float("nan")]), torch.tensor([0, 0]))


def test_mismatched_lengths_are_rejected():
    with pytest.raises(ValueError, match="one entry per row"):
        grpo_advantages(torch.tensor([0.0, 1.0, 2.0]), torch.tensor([0, 0]))


def test_turn_rows_pointing_past_the_trajectories_are_rejected():
    with pytest.raises(ValueError, match="there are 2 trajectories"):
        turn_advantages(torch.tensor([0.0, 1.0]), torch.tensor([0, 0]), torch.tensor([0, 2]))


def test_unknown_estimator_is_rejected():
    with pytest.raises(ValueError, match="estimator='ppo'"):
        turn_advantages(torch.tensor([0.0, 1.0]), torch.tensor([0, 0]), torch.tensor([0, 1]), "ppo")


def test_step_rewards_that_differ_only_by_float_noise_give_zero_advantage():
    noise = torch.tensor([1e-9, -2e-9, 0.0, 3e-9])
    assert torch.equal(step_advantages(noise, torch.zeros(4, dtype=torch.long)), torch.zeros(4))


# Step-advantage normalisation variants: two groups, trajectories 0-1 in group 0, 2 in group 1.
_REWARDS = torch.tensor([0.3, 0.1, -0.1, 0.5, 0.7])
_GROUPS = torch.tensor([0, 0, 1])
_ROWS = torch.tensor([0, 0, 1, 2, 2])


def test_trajectory_normalisation_z_scores_within_each_episode_so_its_total_is_unchanged():
    a = 1 / math.sqrt(2)  # [0.3, 0.1]: mean 0.2, unbiased std 0.1414
    result = normalised_step_advantages(_REWARDS, _GROUPS, _ROWS, "trajectory", eps=0.0)
    close(result, [a, -a, 0.0, -a, a])  # the one-turn episode has no spread: 0


def test_batch_normalisation_z_scores_over_every_step():
    expected = (_REWARDS - _REWARDS.mean()) / _REWARDS.std()
    close(normalised_step_advantages(_REWARDS, _GROUPS, _ROWS, "batch", eps=0.0), expected.tolist())


def test_no_normalisation_keeps_the_raw_step_reward_and_group_is_the_paper_default():
    close(normalised_step_advantages(_REWARDS, _GROUPS, _ROWS, "none"), _REWARDS.tolist())
    paper = turn_advantages(torch.tensor([1.0, 0.0, 0.0]), _GROUPS, _ROWS, "rloo", step_rewards=_REWARDS, eps=0.0)
    expected = rloo_advantages(torch.tensor([1.0, 0.0, 0.0]), _GROUPS)[_ROWS] + step_advantages(_REWARDS, _GROUPS[_ROWS], eps=0.0)
    close(paper, expected.tolist())


def test_unknown_step_normalisation_is_rejected():
    with pytest.raises(ValueError, match="step_normalisation='episode'"):
        turn_advantages(torch.tensor([0.0, 1.0]), _GROUPS[:2], torch.tensor([0, 1]), step_rewards=torch.zeros(2), step_normalisation="episode")
