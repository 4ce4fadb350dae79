"""One full training iteration of every algorithm, with and without iStar, on Sokoban with the tiny model."""

import math

import pytest
import torch
from safetensors.torch import load_file

from istar_gym.credit import GiGPOSteps, turn_advantages
from istar_gym.rl.config import PRESETS, TrainConfig
from istar_gym.rl.trainer import Trainer, ppo_clip_loss, train


def small_config(model, out, **changes) -> TrainConfig:
    values = {
        **PRESETS["tiny"],
        "model": str(model),
        "out": str(out),
        "iterations": 1,
        "groups": 6,
        "group_size": 4,
        "eval_episodes": 0,
        "progress": False,
        "tensorboard": False,
    }
    values.update(changes)
    return TrainConfig(**values)


def test_ppo_clip_loss_on_a_hand_built_batch():
    old = torch.zeros(4)
    new = torch.log(torch.tensor([1.5, 0.5, 1.1, 0.9]))
    advantages = torch.tensor([1.0, 1.0, -2.0, -2.0])
    loss, stats = ppo_clip_loss(new, old, advantages, clip_eps=0.2)
    # Per row min(rho A, clip(rho, 0.8, 1.2) A): 1.2 (clipped), 0.5 (unclipped: the pessimistic side),
    # -2.2 (unclipped), -1.8 (rho 0.9 lies inside the range).
    expected = -torch.tensor([1.2, 0.5, -2.2, -1.8]).mean()
    torch.testing.assert_close(loss, expected)
    assert stats["clip_fraction"] == pytest.approx(0.5)


def test_ppo_clip_loss_gradient_vanishes_outside_the_trust_region():
    new = torch.log(torch.tensor([1.5, 1.1])).requires_grad_(True)
    loss, _ = ppo_clip_loss(new, torch.zeros(2), torch.tensor([1.0, 1.0]), clip_eps=0.2)
    loss.backward()
    assert new.grad[0] == 0.0 and new.grad[1] < 0.0


@pytest.mark.parametrize("istar", [False, True], ids=["plain", "istar"])
@pytest.mark.parametrize("algo", ["rloo", "grpo", "reinforce_pp"])
def test_one_iteration_updates_the_policy_and_logs_finite_metrics(tiny_policy, tmp_path, algo, istar):
    history = train(small_config(tiny_policy, tmp_path / "run", algo=algo, istar=istar))
    metrics = history[0]
    for name in ("success", "episode_length", "invalid_rate", "policy_loss", "policy_grad_norm", "tokens_per_s", "env_steps_per_s"):
        assert math.isfinite(metrics[name]), name
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert state["iteration"] == 1
    initial = load_file(str(tiny_policy / "model.safetensors"))
    assert any(not torch.equal(initial[name], value) for name, value in state["policy"].items() if name in initial)
    if istar:
        assert metrics["prm_pairs"] > 0 and metrics["prm_grad_norm"] > 0
        assert any(not torch.equal(initial[name], value) for name, value in state["prm"]["model"].items() if name in initial)
        # Iteration 1: the PRM equals pi_old, so every step reward is exactly zero (paper Alg. 1).
        assert metrics["step_reward_std"] == 0.0
        assert "credit_step_gap" in metrics
    else:
        assert "prm_loss" not in metrics and "prm" not in state
    assert "credit_gap" in metrics


def test_time_budget_ends_the_run_and_training_seconds_are_logged(tiny_policy, tmp_path):
    history = train(small_config(tiny_policy, tmp_path / "run", iterations=5, time_budget_s=1e-3))
    assert len(history) == 1  # the budget is spent by the first iteration
    assert history[0]["train_seconds_total"] == pytest.approx(history[0]["time_iteration"])


def test_rollouts_can_go_through_the_hf_backend(tiny_policy, tmp_path):
    history = train(small_config(tiny_policy, tmp_path / "run", rollout_backend="hf"))
    assert math.isfinite(history[0]["policy_loss"]) and history[0]["env_steps"] > 0


def test_optional_kl_penalty_to_the_initial_policy_is_applied_and_logged(tiny_policy, tmp_path):
    metrics = train(small_config(tiny_policy, tmp_path / "run", kl_coef=0.1))[0]
    assert metrics["kl"] >= 0.0 and math.isfinite(metrics["kl"])


def test_prm_variants_frozen_reference_extra_dpo_steps_mean_score_and_accuracy_gate(tiny_policy, tmp_path):
    config = small_config(
        tiny_policy,
        tmp_path / "run",
        istar=True,
        iterations=2,
        prm_reference="initial",
        prm_updates=3,
        prm_trajectory_score="mean",
        prm_accuracy_gate=0.75,
    )
    history = train(config)
    # The step advantage is used exactly when the PRM ranked this batch's pairs well enough.
    assert [m["step_advantage_used"] for m in history] == [float(m["prm_pair_accuracy"] >= 0.75) for m in history]
    # After three DPO steps the PRM has moved away from its frozen reference.
    assert history[1]["step_reward_std"] > 1e-4
    assert all(math.isfinite(m["prm_loss"]) for m in history)


@pytest.mark.parametrize(("schedule", "expected"), [("constant", [1e-3, 1e-3, 1e-3]), ("linear", [1e-3, 2e-3 / 3, 1e-3 / 3])])
def test_learning_rate_schedule_over_the_iterations(tiny_policy, tmp_path, schedule, expected):
    history = train(small_config(tiny_policy, tmp_path / schedule, iterations=3, policy_lr=1e-3, lr_schedule=schedule))
    assert [m["policy_lr"] for m in history] == pytest.approx(expected)


def test_linear_learning_rate_follows_the_env_step_budget_when_it_ends_the_run(tiny_policy, tmp_path):
    config = small_config(tiny_policy, tmp_path / "run", iterations=1000, env_step_budget=100, policy_lr=1e-3, lr_schedule="linear", algo="ppo")
    with Trainer(config) as trainer:
        trainer.env_steps = 50
        trainer._schedule_learning_rates()
        assert trainer.budget_spent() == 0.5
        assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(5e-4)
        assert trainer.critic_optimizer.param_groups[0]["lr"] == pytest.approx(config.critic_lr / 2)


def test_adaptive_learning_rate_follows_the_kl_of_each_update(tiny_policy, tmp_path):
    config = small_config(tiny_policy, tmp_path / "run", policy_lr=1e-3, lr_schedule="adaptive", target_kl=0.01)
    same, far, near = torch.zeros(4), torch.full((4,), -1.0), torch.full((4,), 0.14)  # log pi_theta - log pi_old
    with Trainer(config) as trainer:
        group = trainer.optimizer.param_groups[0]
        assert group["lr"] == pytest.approx(1e-4)  # starts 10x below policy_lr
        trainer._adapt_learning_rate(same, torch.zeros(4), rows=4)  # KL 0 < target / 2: up 1.5x
        assert group["lr"] == pytest.approx(1.5e-4)
        trainer._adapt_learning_rate(far, torch.zeros(4), rows=4)  # KL e^-1 - 1 + 1 = 0.37 > 2 target: down 1.5x
        assert group["lr"] == pytest.approx(1e-4)
        trainer._adapt_learning_rate(near, torch.zeros(4), rows=4)  # KL e^0.14 - 1 - 0.14 = 0.0103: kept
        assert group["lr"] == pytest.approx(1e-4)
        for _ in range(20):
            trainer._adapt_learning_rate(same, torch.zeros(4), rows=4)
        assert group["lr"] == pytest.approx(1e-3)  # never above policy_lr
        for _ in range(40):
            trainer._adapt_learning_rate(far, torch.zeros(4), rows=4)
        assert group["lr"] == pytest.approx(1e-5)  # nor below policy_lr / 100


def test_an_adaptive_run_logs_its_rate_within_bounds(tiny_policy, tmp_path):
    history = train(small_config(tiny_policy, tmp_path / "run", iterations=3, policy_lr=1e-3, lr_schedule="adaptive"))
    assert all(1e-5 <= m["policy_lr"] <= 1e-3 for m in history)
    assert history[0]["policy_lr"] != 1e-4  # the rate moved within the first iteration


def test_step_rewards_scored_after_the_prm_update_see_this_batch(tiny_policy, tmp_path):
    # At iteration 1 the PRM equals pi_old, so rewards scored before its update are exactly 0 and
    # rewards scored after it are not.
    before, after = (train(small_config(tiny_policy, tmp_path / when, istar=True, prm_lr=1e-2, prm_rewards=when))[0] for when in ("before", "after"))
    assert before["step_reward_std"] == 0.0
    assert after["step_reward_std"] > 1e-4


@pytest.mark.parametrize("follows", [False, True])
def test_a_prm_that_follows_the_policy_moves_by_the_policy_update(tiny_policy, tmp_path, follows):
    config = small_config(tiny_policy, tmp_path / str(follows), istar=True, prm_lr=1e-12, prm_follows_policy=follows)
    with Trainer(config) as trainer:
        trainer.iteration_step()
        same = all(torch.allclose(a, b, atol=1e-9) for a, b in zip(trainer.prm.model.parameters(), trainer.policy.parameters()))
    # The PRM started as the policy and learnt (almost) nothing itself: following, it is the policy again.
    assert same == follows


def test_istar_prm_can_use_the_cross_entropy_loss(tiny_policy, tmp_path):
    with Trainer(small_config(tiny_policy, tmp_path / "run", istar=True, prm_loss="ce")) as trainer:
        assert trainer.prm.loss == "ce"
        assert math.isfinite(trainer.iteration_step()["prm_loss"])


def _sharper_copy(tiny_policy, target):
    from istar_gym.llm import load_model
    from istar_gym.rl.tiny import bake_temperature

    model, tokenizer = load_model(str(tiny_policy))
    with torch.no_grad():
        bake_temperature(model, 0.5)
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return model, tokenizer


def test_the_prm_can_start_from_another_model_than_the_policy(tiny_policy, tmp_path):
    sharper, _ = _sharper_copy(tiny_policy, tmp_path / "sharper")
    config = small_config(tiny_policy, tmp_path / "run", istar=True, prm_model=str(tmp_path / "sharper"), prm_lr=1e-12)
    with Trainer(config) as trainer:
        assert torch.equal(trainer.prm.model.model.norm.weight, sharper.model.norm.weight)
        assert not torch.equal(trainer.prm.model.model.norm.weight, trainer.policy.model.norm.weight)
        # Against pi_old, a PRM sharper than the policy gives non-zero step rewards from iteration 1.
        assert trainer.iteration_step()["step_reward_std"] > 1e-4


def test_a_static_prm_gives_step_rewards_from_its_start_and_never_moves(tiny_policy, tmp_path):
    sharper, _ = _sharper_copy(tiny_policy, tmp_path / "sharper")
    config = small_config(tiny_policy, tmp_path / "run", istar=True, iterations=2, prm_model=str(tmp_path / "sharper"), prm_updates=0)
    with Trainer(config) as trainer:
        history = [trainer.iteration_step() for _ in range(2)]
        assert all(torch.equal(a, b) for a, b in zip(trainer.prm.model.parameters(), sharper.parameters()))
    assert all(m["prm_grad_norm"] == 0.0 and m["step_reward_std"] > 1e-4 for m in history)


def test_a_prm_model_with_another_tokenizer_is_refused(tiny_policy, tmp_path):
    _, tokenizer = _sharper_copy(tiny_policy, tmp_path / "other")
    tokenizer.add_tokens(["zebra"])
    tokenizer.save_pretrained(tmp_path / "other")
    with pytest.raises(ValueError, match="another tokenizer"):
        Trainer(small_config(tiny_policy, tmp_path / "run", istar=True, prm_model=str(tmp_path / "other")))


def test_prm_warmup_iterations_train_the_prm_alone_before_the_policy_moves(tiny_policy, tmp_path):
    start = load_file(str(tiny_policy / "model.safetensors"))
    warmup = small_config(tiny_policy, tmp_path / "warmup", istar=True, iterations=1, prm_warmup_iterations=1, prm_lr=1e-3)
    history = train(warmup)
    state = torch.load(tmp_path / "warmup" / "checkpoint.pt", weights_only=False)
    assert history[0]["policy_updated"] == 0.0 and "policy_loss" not in history[0]
    assert all(torch.equal(start[name], value) for name, value in state["policy"].items() if name in start)
    assert state["prm"]["version"] == 1 and history[0]["env_steps"] > 0
    # The iteration after the warm-up updates the policy as usual.
    history = train(TrainConfig(**{**warmup.to_dict(), "iterations": 2, "resume": True}))
    assert [m["policy_updated"] for m in history] == [1.0] and math.isfinite(history[0]["policy_loss"])


@pytest.mark.parametrize("method", ["gigpo", "prime", "ppo"])
def test_one_iteration_of_each_step_level_method_logs_finite_metrics(tiny_policy, tmp_path, method):
    history = train(small_config(tiny_policy, tmp_path / "run", **({"algo": "ppo"} if method == "ppo" else {method: True})))
    metrics = history[0]
    for name in ("success", "policy_loss", "advantage_std", "credit_gap"):
        assert math.isfinite(metrics[name]), name
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    if method == "prime":
        # PRIME's cross-entropy step moves the PRM (every rollout is an example, not only mixed groups).
        initial = load_file(str(tiny_policy / "model.safetensors"))
        assert any(not torch.equal(initial[name], value) for name, value in state["prm"]["model"].items() if name in initial)
        assert math.isfinite(metrics["prm_loss"])
    else:
        assert "prm" not in state
    if method == "ppo":
        # The critic learnt from its zero start: its head is no longer zero, and its loss was logged.
        assert math.isfinite(metrics["value_loss"]) and state["critic"]["model"]["head.weight"].abs().sum() > 0


def test_gigpo_adds_the_same_state_step_advantage_of_the_library(tiny_policy, tmp_path):
    config = small_config(tiny_policy, tmp_path / "run", gigpo=True, invalid_action_penalty=0.0)
    with Trainer(config) as trainer:
        rollouts = trainer.rollout()
        episode_of_turn = torch.tensor([t.episode for t in rollouts.turns])
        outcomes = torch.as_tensor(rollouts.episode_return, dtype=torch.float32)
        steps = GiGPOSteps(
            torch.tensor([t.reward for t in rollouts.turns]),
            torch.tensor([t.step for t in rollouts.turns]),
            [t.state for t in rollouts.turns],
            normalisation="mean_std",
        )
        expected = turn_advantages(outcomes, torch.as_tensor(rollouts.group), episode_of_turn, "rloo", gigpo=steps)
        plain = turn_advantages(outcomes, torch.as_tensor(rollouts.group), episode_of_turn, "rloo")
        torch.testing.assert_close(trainer.advantages(rollouts, episode_of_turn, None), expected)
    assert not torch.equal(expected, plain)  # the first turn of a group always shares its state


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("changes", [{"istar": True}, {"algo": "ppo"}], ids=["istar", "ppo"])
def test_precision_is_the_dtype_of_every_forward_and_keeps_iteration_one_exact(tiny_policy, tmp_path, precision, changes):
    with Trainer(small_config(tiny_policy, tmp_path / "run", precision=precision, **changes)) as trainer:
        models = [trainer.policy] + ([trainer.prm.model] if trainer.prm else []) + ([trainer.critic.body] if trainer.critic else [])
        seen = set()
        for model in models:
            model.get_decoder().layers[0].mlp.down_proj.register_forward_hook(lambda module, args, output: seen.add(output.dtype))
        metrics = trainer.iteration_step()
        assert seen == {torch.bfloat16 if precision == "bf16" else torch.float32}
        assert all(next(model.parameters()).dtype == torch.float32 for model in models)  # weights stay float32
        # bf16 on a CPU: the tiny model's short contexts use eager attention (docs/learning.md)
        assert trainer.policy.config._attn_implementation == ("eager" if precision == "bf16" else "sdpa")
    assert metrics["first_ratio_deviation"] < 1e-4  # sampling and update see one distribution
    if trainer.prm is not None:
        assert metrics["step_reward_std"] == 0.0
