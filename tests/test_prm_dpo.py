"""The implicit PRM's losses, multi-turn DPO (iStar) and cross-entropy on outcome labels (PRIME):
pairs, labels, the losses, and the one update path moving pi_phi under either."""

import copy
import math

import gymnasium as gym
import pytest
import torch

import istar_gym  # noqa: F401
from istar_gym.prm import ImplicitPRM, Turn, action_logprobs, ce_loss, dpo_loss, outcome_labels, preference_pairs
from istar_gym.prompts import build_messages


@pytest.fixture(scope="module")
def sokoban_contexts():
    """Two consecutive Sokoban turns' contexts from the real env, built with the shared prompt."""
    env = gym.make("istar/Sokoban-v0")
    observation, info = env.reset(seed=3)
    first = build_messages(info["instruction"], observation, info["available_actions"])
    second_observation, *_ = env.step("<action>up</action>")
    history = [(observation, "<action>up</action>")]
    second = build_messages(info["instruction"], second_observation, info["available_actions"], history)
    return first, second


def trajectories_where_left_first_succeeds(contexts):
    """A group of four: two open with "left" and succeed, two open with "right" and fail."""
    first, second = contexts
    trajectories = [[Turn(first, f"<action>{opening}</action>"), Turn(second, "<action>up</action>")] for opening in ("left", "right", "left", "right")]
    return trajectories, [0, 0, 0, 0], [True, False, True, False]


def test_pairs_are_every_success_failure_combination_within_a_group():
    pairs = preference_pairs(["a", "a", "a", "b", "b"], [True, False, False, True, True])
    assert sorted(pairs) == [(0, 1), (0, 2)]


def test_groups_without_both_outcomes_give_no_pairs():
    assert preference_pairs([0, 0, 1, 1], [True, True, False, False]) == []


def test_scores_pair_by_threshold_like_sotopia_goal_above_six():
    assert sorted(preference_pairs([0, 0, 0], [7.0, 6.0, 8.5], threshold=6)) == [(0, 1), (2, 1)]


def test_scores_without_threshold_pair_by_order_and_skip_ties():
    assert sorted(preference_pairs([0, 0, 0], [3.0, 5.0, 3.0])) == [(1, 0), (1, 2)]


def test_failed_judgements_are_left_out_of_the_pairs():
    assert preference_pairs([0, 0, 0], [None, float("nan"), 4.0]) == []


def test_mismatched_outcomes_are_refused():
    with pytest.raises(ValueError, match="3 group ids but 2 outcomes"):
        preference_pairs([0, 0, 0], [True, False])


def test_dpo_loss_is_minus_log_sigmoid_of_beta_times_the_score_gap():
    scores = torch.tensor([2.0, 0.0, 1.0])
    expected = (-math.log(1 / (1 + math.exp(-1.0))) - math.log(1 / (1 + math.exp(-0.5)))) / 2
    assert dpo_loss(scores, [(0, 1), (0, 2)], beta=0.5).item() == pytest.approx(expected)


def test_update_gradient_reaches_pi_phi_and_moves_only_it(tiny, sokoban_contexts):
    model, tokenizer = tiny
    prm = ImplicitPRM(copy.deepcopy(model), tokenizer, lr=1e-3)
    before = copy.deepcopy(prm.model.state_dict())
    reference_before = copy.deepcopy(prm.reference_model.state_dict())
    result = prm.update(*trajectories_where_left_first_succeeds(sokoban_contexts))
    assert result.pairs == 4 and result.grad_norm > 0
    assert result.loss == pytest.approx(math.log(2))  # pi_phi == pi_ref before the step
    assert any(not torch.equal(before[k], v) for k, v in prm.model.state_dict().items())
    assert all(torch.equal(reference_before[k], v) for k, v in prm.reference_model.state_dict().items())


@pytest.mark.parametrize("loss", ["dpo", "ce"])
def test_update_without_a_step_reports_the_loss_and_leaves_pi_phi_as_it_is(tiny, sokoban_contexts, loss):
    model, tokenizer = tiny
    prm = ImplicitPRM(copy.deepcopy(model), tokenizer, lr=1e-3, loss=loss)
    before = copy.deepcopy(prm.model.state_dict())
    result = prm.update(*trajectories_where_left_first_succeeds(sokoban_contexts), step=False)
    assert result.loss == pytest.approx(math.log(2))  # pi_phi == pi_ref: sigmoid(0) for every pair or label
    assert (result.pairs, result.grad_norm, prm.version) == (4, 0.0, 0)
    assert all(torch.equal(before[k], v) for k, v in prm.model.state_dict().items())


@pytest.mark.parametrize("loss", ["dpo", "ce"])
@pytest.mark.parametrize("trajectory_score", ["sum", "mean"])
def test_update_gradient_equals_that_of_the_full_loss(tiny, sokoban_contexts, trajectory_score, loss):
    model, tokenizer = tiny
    trajectories, groups, outcomes = trajectories_where_left_first_succeeds(sokoban_contexts)
    trajectories[1] = trajectories[1][:1]  # unequal lengths, so the mean differs from a scaled sum
    prm = ImplicitPRM(copy.deepcopy(model), tokenizer, beta=2.0, batch_size=3, max_grad_norm=1e9, trajectory_score=trajectory_score, loss=loss)
    with torch.no_grad():
        prm.model.model.norm.weight.mul_(1.3)  # break the tie so dL/dS differs between pairs
    direct = copy.deepcopy(prm.model)
    prm.optimizer = torch.optim.SGD(prm.model.parameters(), lr=1.0)  # step = -gradient
    start = [p.detach().clone() for p in prm.model.parameters()]
    prm.update(trajectories, groups, outcomes)

    encoded = [[prm.encode(turn) for turn in trajectory] for trajectory in trajectories]
    scores = torch.stack(
        [
            (
                action_logprobs(direct, e, pad_token_id=tokenizer.pad_token_id) - action_logprobs(prm.reference_model, e, pad_token_id=tokenizer.pad_token_id)
            ).sum()
            / (len(e) if trajectory_score == "mean" else 1)
            for e in encoded
        ]
    )
    if loss == "ce":
        ce_loss(scores, [float(o) for o in outcomes], beta=2.0).backward()
    else:
        dpo_loss(scores, preference_pairs(groups, outcomes), beta=2.0).backward()
    for begin, after, reference in zip(start, prm.model.parameters(), direct.parameters()):
        torch.testing.assert_close(begin - after.detach(), reference.grad, atol=1e-6, rtol=1e-4)


def test_an_unknown_trajectory_score_is_refused(tiny):
    model, tokenizer = tiny
    with pytest.raises(ValueError, match="trajectory_score='max'"):
        ImplicitPRM(copy.deepcopy(model), tokenizer, trajectory_score="max")


def test_update_without_pairs_takes_no_step(tiny, sokoban_contexts):
    model, tokenizer = tiny
    prm = ImplicitPRM(copy.deepcopy(model), tokenizer, lr=1e-3)
    trajectories, groups, _ = trajectories_where_left_first_succeeds(sokoban_contexts)
    before = copy.deepcopy(prm.model.state_dict())
    result = prm.update(trajectories, groups, [True] * 4)
    assert (result.pairs, result.grad_norm, prm.version) == (0, 0.0, 0) and math.isnan(result.accuracy)
    assert all(torch.equal(before[k], v) for k, v in prm.model.state_dict().items())


@pytest.fixture(scope="module")
def trained(tiny, sokoban_contexts):
    """A PRM after six DPO steps on one fixed batch, with the pair accuracy seen at each step."""
    model, tokenizer = tiny
    prm = ImplicitPRM(copy.deepcopy(model), tokenizer, lr=3e-3)
    batch = trajectories_where_left_first_succeeds(sokoban_contexts)
    return prm, [prm.update(*batch).accuracy for _ in range(6)]


def test_repeated_updates_on_a_fixed_batch_reach_pair_accuracy_one(trained):
    _, accuracies = trained
    assert accuracies[0] == 0.0  # identical models: no pair is ranked yet
    assert accuracies[-1] == 1.0


def test_action_that_precedes_success_earns_the_higher_step_reward(trained, sokoban_contexts):
    prm, _ = trained
    first, _ = sokoban_contexts
    rewards = prm.step_rewards([Turn(first, f"<action>{move}</action>") for move in ("left", "right", "up", "down")])
    assert rewards[0] > rewards[1:].max()


def test_update_returns_the_step_rewards_from_before_the_step(tiny, sokoban_contexts):
    model, tokenizer = tiny
    prm = ImplicitPRM(copy.deepcopy(model), tokenizer, lr=3e-3)
    batch = trajectories_where_left_first_succeeds(sokoban_contexts)
    prm.update(*batch)
    expected = prm.step_rewards([turn for trajectory in batch[0] for turn in trajectory])
    result = prm.update(*batch)
    torch.testing.assert_close(torch.cat(result.step_rewards), expected)


def test_update_with_supplied_reference_log_probs(tiny, sokoban_contexts):
    model, tokenizer = tiny
    prm = ImplicitPRM(copy.deepcopy(model), tokenizer, reference="supplied", lr=1e-3)
    trajectories, groups, outcomes = trajectories_where_left_first_succeeds(sokoban_contexts)
    with torch.no_grad():
        old = [action_logprobs(model, [prm.encode(t) for t in trajectory], pad_token_id=tokenizer.pad_token_id).tolist() for trajectory in trajectories]
    result = prm.update(trajectories, groups, outcomes, reference_logprobs=old)
    assert result.pairs == 4 and result.grad_norm > 0
    assert torch.cat(result.step_rewards).abs().max() < 1e-6


def test_update_refuses_mismatched_inputs(tiny, sokoban_contexts):
    prm = ImplicitPRM(*tiny)
    trajectories, groups, outcomes = trajectories_where_left_first_succeeds(sokoban_contexts)
    with pytest.raises(ValueError, match="4 trajectories, 3 group ids"):
        prm.update(trajectories, groups[:3], outcomes)


def test_success_flags_are_the_cross_entropy_labels():
    assert outcome_labels([True, False, None]) == [1.0, 0.0, None]


def test_scores_become_labels_by_threshold():
    assert outcome_labels([7.0, 6.0, float("nan")], threshold=6) == [1.0, 0.0, None]


def test_scores_in_the_unit_interval_are_soft_labels():
    assert outcome_labels([0.0, 0.25, 1.0]) == [0.0, 0.25, 1.0]


def test_scores_outside_the_unit_interval_without_threshold_are_refused():
    with pytest.raises(ValueError, match="outcome 1 is 10.9, outside \\[0, 1\\].*threshold"):
        outcome_labels([0.0, 10.9])


def test_ce_loss_is_the_binary_cross_entropy_of_sigmoid_beta_score():
    # beta * S = [1.0, -0.5, 0.0]; labels 1, 0, unlabelled:
    # -(log sigmoid(1) + log(1 - sigmoid(-0.5))) / 2 = -(log sigmoid(1) + log sigmoid(0.5)) / 2
    expected = -(math.log(1 / (1 + math.exp(-1.0))) + math.log(1 / (1 + math.exp(-0.5)))) / 2
    assert ce_loss(torch.tensor([2.0, -1.0, 0.0]), [1.0, 0.0, None], beta=0.5).item() == pytest.approx(expected)


def test_ce_loss_gradient_is_beta_times_prediction_minus_label_over_the_labelled_count():
    scores = torch.tensor([2.0, -1.0, 0.0], requires_grad=True)
    ce_loss(scores, [1.0, 0.0, None], beta=0.5).backward()
    predicted = torch.sigmoid(torch.tensor([1.0, -0.5]))  # sigmoid(beta * S) of the labelled two
    torch.testing.assert_close(scores.grad, torch.cat([0.5 * (predicted - torch.tensor([1.0, 0.0])) / 2, torch.zeros(1)]))


def test_ce_loss_without_labels_is_zero():
    assert ce_loss(torch.tensor([1.0, 2.0]), [None, None], beta=0.05).item() == 0.0


def test_ce_update_gradient_reaches_pi_phi_and_moves_only_it(tiny, sokoban_contexts):
    model, tokenizer = tiny
    prm = ImplicitPRM(copy.deepcopy(model), tokenizer, lr=1e-3, loss="ce")
    before = copy.deepcopy(prm.model.state_dict())
    reference_before = copy.deepcopy(prm.reference_model.state_dict())
    result = prm.update(*trajectories_where_left_first_succeeds(sokoban_contexts))
    assert result.examples == 4 and result.grad_norm > 0
    assert result.loss == pytest.approx(math.log(2))  # S = 0: sigmoid(0) = 1/2 for every label
    assert any(not torch.equal(before[k], v) for k, v in prm.model.state_dict().items())
    assert all(torch.equal(reference_before[k], v) for k, v in prm.reference_model.state_dict().items())


def test_ce_update_learns_from_a_group_with_a_single_outcome(tiny, sokoban_contexts):
    model, tokenizer = tiny
    prm = ImplicitPRM(copy.deepcopy(model), tokenizer, lr=1e-3, loss="ce")
    trajectories, groups, _ = trajectories_where_left_first_succeeds(sokoban_contexts)
    result = prm.update(trajectories, groups, [False] * 4)
    assert (result.pairs, result.examples, prm.version) == (0, 4, 1) and result.grad_norm > 0


def test_ce_update_moves_scores_toward_the_labels(tiny, sokoban_contexts):
    model, tokenizer = tiny
    prm = ImplicitPRM(copy.deepcopy(model), tokenizer, beta=1.0, lr=3e-3, loss="ce")
    trajectories, groups, outcomes = trajectories_where_left_first_succeeds(sokoban_contexts)
    losses = [prm.update(trajectories, groups, outcomes).loss for _ in range(5)]
    scores = torch.stack([prm.log_ratios(trajectory).sum() for trajectory in trajectories])
    assert losses[-1] < losses[0]
    assert (scores[[0, 2]] > 0).all() and (scores[[1, 3]] < 0).all()


def test_ce_update_refuses_returns_it_cannot_read_as_labels(tiny, sokoban_contexts):
    model, tokenizer = tiny
    prm = ImplicitPRM(copy.deepcopy(model), tokenizer, loss="ce")
    trajectories, groups, _ = trajectories_where_left_first_succeeds(sokoban_contexts)
    with pytest.raises(ValueError, match="outcome 0 is 10.9"):
        prm.update(trajectories, groups, [10.9, -1.3, 10.9, -1.3])


def test_an_unknown_loss_is_refused(tiny):
    model, tokenizer = tiny
    with pytest.raises(ValueError, match="loss='kto'"):
        ImplicitPRM(copy.deepcopy(model), tokenizer, loss="kto")
