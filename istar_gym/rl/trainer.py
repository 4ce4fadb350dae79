"""Multi-turn RL for LLM agents: RLOO, GRPO or REINFORCE++, each optionally with iStar's implicit step
rewards or GiGPO's same-state step advantages; and PRIME.

    istar-train --env istar/Sokoban-v0 --algo rloo --istar --model tiny --iterations 100 --out runs/x

    >>> from istar_gym.rl import PRESETS, TrainConfig, Trainer
    >>> config = TrainConfig(**{**PRESETS["tiny"], "iterations": 5, "out": "runs/x"})
    >>> with Trainer(config) as trainer:                    # doctest: +SKIP
    ...     records = trainer.train()                       # exactly the records of metrics.jsonl

A `Trainer` holds the run's state (models, optimisers, PRM, processes, envs, log); each
iteration (`Trainer.iteration`, iStar's Algorithm 1) reads top to bottom:

1. roll out ``groups x group_size`` episodes, G copies of each task (`istar_gym.rl.rollout`);
2. log-probs of every action under the rollout policy pi_old;
3. with ``--istar``: step rewards r_t = beta * log pi_phi/pi_old from the PRM of the previous
   iteration, then one multi-turn DPO step on the PRM (`istar_gym.prm.ImplicitPRM.update`); with
   ``--prime`` the same against the frozen starting policy, and a cross-entropy step on outcome labels;
4. advantages A = A_E + alpha * A_S (`istar_gym.credit.turn_advantages`; ``--gigpo`` adds
   w * A_GiGPO; ``--prime`` uses `istar_gym.credit.prime_advantages` instead; ``--algo ppo`` GAE
   from a critic, `istar_gym.rl.critic`), minus a penalty on turns whose action the env rejected
   (as the paper's code does);
5. PPO-clip update of the policy with a step-level ratio (paper Eq. 6), no KL by default, on the
   turn rows whose advantage is not 0 (the others have no gradient); with PPO, the critic's regression;
6. theta_old <- theta: the next rollout samples from the updated policy.

Every iteration appends a line to ``out/metrics.jsonl`` (and TensorBoard) and writes
``out/checkpoint.pt`` atomically; ``--resume`` continues a killed run from it with no lost iteration.
The final policy is saved to ``out/policy`` (``save_pretrained``, for ``istar-evaluate --model``).
A NaN/inf loss, gradient or logit stops the run with `TrainingDiverged`, naming that checkpoint.

With ``--processes N`` (or under ``torchrun --nproc_per_node N -m istar_gym.rl.trainer ...`` or
``accelerate launch``) the same loop runs data-parallel (`istar_gym.rl.distributed`): each process plays
``groups / N`` of the groups and ``1 / N`` of every minibatch, DDP averages the policy and PRM
gradients, and process 0 alone logs, checkpoints and evaluates.

Logged per iteration: ``success``, ``episode_return`` (WebShop: the score), ``episode_length``,
``invalid_rate``, ``policy_loss``, ``policy_grad_norm``, ``clip_fraction``, ``approx_kl``,
``update_rows`` (turn rows with a non-zero advantage, the ones the update trains on),
``first_ratio_deviation`` (max |log pi_theta/pi_old| on the first minibatch, before any step: 0 up
to float noise when sampling and update see one distribution), timings, ``env_steps_total`` and
``train_seconds_total`` (what the ``env_step_budget`` and ``time_budget_s`` limits count),
``env_steps_per_s`` and ``tokens_per_s`` (context + action tokens of all turns per second); with
iStar ``prm_loss``, ``prm_pair_accuracy``, ``prm_pairs``, ``prm_grad_norm``, ``step_reward_mean/std``;
where the env's adapter names a credit oracle (Sokoban) the credit-assignment accuracy of the
advantages (``credit_*``, and ``credit_step_*`` for the step reward alone; `istar_gym.rl.credit_metrics`); ``eval_*`` on held-out tasks every ``eval_every``.

Beyond the paper, behind flags (see `istar_gym.rl.config`): a frozen reference for the step reward
(``--prm-reference initial``), several DPO steps per iteration, a mean instead of a sum as the DPO
trajectory score, PRM-only warm-up iterations on the starting policy's rollouts, gating the step advantage on the PRM's
pair accuracy, per-trajectory loss weighting, an env-step budget, and rollouts written by an
`istar_gym.llm` backend instead of sampled here (``--rollout-backend vllm``: a vLLM engine that is
sent the policy's weights before every rollout).
"""

from __future__ import annotations

import copy
import dataclasses
import os
import random
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.distributed.elastic.multiprocessing.errors import record

from istar_gym.adapters import adapter_for, load_entry_point
from istar_gym.credit import (
    GiGPOSteps,
    gae_advantages,
    normalised_step_advantages,
    prime_advantages,
    reinforce_pp_advantages,
    turn_advantages,
)
from istar_gym.prm import ImplicitPRM, action_logprobs
from istar_gym.prm.scoring import autocast_forward
from istar_gym.prm.tail import trim_last_layer
from istar_gym.rl.checkpoint import RunLog, load_checkpoint, save_checkpoint
from istar_gym.rl.config import TrainConfig, parse_config
from istar_gym.rl.credit_metrics import credit_assignment_metrics
from istar_gym.rl.critic import Critic
from istar_gym.rl.distributed import init_world, launch_processes, launched, map_location_for, restore_generator_state
from istar_gym.rl.rollout import Actor, ContextBuilder, Rollouts, collect_rollouts, context_builder, group_seeds, make_vector_env

__all__ = ["Trainer", "TrainingDiverged", "evaluate_policy", "load_policy", "main", "mixed_precision", "ppo_clip_loss", "train"]

# Settings a resumed run may change (length, logging, evaluation, where the folder lives, the device
# and the forwards' precision, since weights and optimizer state are float32 either way); anything
# else must match the checkpoint's.
_RESUMABLE = {
    "iterations",
    "time_budget_s",
    "resume",
    "progress",
    "tensorboard",
    "eval_every",
    "eval_episodes",
    "checkpoint_every",
    "device",
    "precision",
    "processes",  # a resumed run must have as many processes; the checkpoint's world size says so
    "torch_threads",
    "out",
    "dist_backend",
}


class TrainingDiverged(FloatingPointError):
    """A loss, gradient or logit became NaN/inf; the message names the checkpoint to resume from."""


def main(argv: list[str] | None = None) -> None:
    """The ``istar-train`` command: parse flags (`istar_gym.rl.config.parse_config`) and train."""
    train(parse_config(argv))


def train(config: TrainConfig) -> list[dict]:
    """Run (or resume) training as configured; returns the records it logged, one per line of
    ``metrics.jsonl`` (the start-of-run evaluation is iteration 0). With ``config.processes`` > 1
    (and no launcher around this process) it starts that many processes and waits for them."""
    if config.processes > 1 and not launched():
        config.validate()  # in this process, so a bad setting fails once and plainly
        return launch_processes(_train_in_process, config, config.processes)
    with Trainer(config) as trainer:
        return trainer.train()


class Trainer:
    """One training run: its models, optimisers, PRM, processes, envs and log, and the loop.

    ``model``/``tokenizer``/``build_context`` replace the policy that ``config.model`` names and its
    prompt function (for a model built in code). Use it as a context manager, or call `close`.
    """

    def __init__(self, config: TrainConfig, *, model=None, tokenizer=None, build_context: ContextBuilder | None = None):
        config.validate()
        self.out = Path(config.out)
        self.checkpoint_path = self.out / "checkpoint.pt"
        if self.checkpoint_path.exists() and not config.resume:
            raise FileExistsError(f"{self.out} already holds a run ({self.checkpoint_path}); pass --resume to continue it or choose a new --out")
        self.out.mkdir(parents=True, exist_ok=True)
        self.world = init_world(config, backend=config.dist_backend)
        # This process's share of the run (its groups, its GPU); checkpoints keep the run's settings.
        self.run_config, self.config = config, self.world.shard(config)
        self._threads = torch.get_num_threads()
        self.envs = self.eval_envs = self.log = None
        try:
            self._build(model, tokenizer, build_context)
        except BaseException:
            self.close()
            raise

    def _build(self, model, tokenizer, build_context) -> None:
        config, world = self.config, self.world
        if config.torch_threads:
            torch.set_num_threads(config.torch_threads)
        _seed_everything(config.seed)
        if model is None:
            with world.main_first():  # the tiny preset's warm start is built once, by process 0
                model, tokenizer = load_policy(config, self.out)
        self.policy, self.tokenizer = model, tokenizer
        # Mixed precision (--precision): the dtype every forward is autocast to; weights stay float32.
        self.autocast = mixed_precision(config, self.policy)
        self.adapter = adapter_for(config.env_id)
        # Each process draws its own tasks and samples (seed + rank; a single process uses the seed).
        self.rng = np.random.default_rng(config.seed + world.rank)
        self.generator = torch.Generator(device=config.device).manual_seed(config.seed + world.rank)
        self.actor = Actor(
            self.policy,
            tokenizer,
            build_context or context_builder(self.policy, config.env_id, config.history_window),
            max_new_tokens=config.max_new_tokens,
            temperature=config.temperature,
            generator=self.generator,
            backend=self._rollout_backend(),
            autocast=self.autocast,
        )
        # lr_schedule="adaptive" starts 10x lower and rises while the updates stay small (_adapt_learning_rate).
        start_lr = config.policy_lr / 10 if config.lr_schedule == "adaptive" else config.policy_lr
        self.optimizer = torch.optim.AdamW(self.policy.parameters(), lr=start_lr, weight_decay=0.0)
        self.initial_policy = copy.deepcopy(self.policy).eval().requires_grad_(False) if config.kl_coef > 0 else None
        self.prm = self._make_prm() if config.uses_prm() else None
        self.critic = Critic(self.policy).to(config.device) if config.algo == "ppo" else None
        self.critic_optimizer = None
        if self.critic is not None:
            self.critic_optimizer = torch.optim.AdamW(self.critic.parameters(), lr=config.critic_lr, weight_decay=0.0)
        oracle = self.adapter.credit_oracle
        self.oracle = load_entry_point(oracle)() if oracle else None

        self.iteration, self.env_steps, self.train_seconds = 0, 0, 0.0
        if world.broadcast(config.resume and self.checkpoint_path.exists()):
            self._load_checkpoint()
        else:
            self._save_checkpoint()
        self.log = RunLog(self.out, self.iteration, config.tensorboard, enabled=world.is_main)
        self.envs = make_vector_env(config.env_id, config.groups * config.group_size, config.env_kwargs, config.vector_mode)
        if config.eval_episodes and world.is_main:
            eval_kwargs = {**config.env_kwargs, **config.eval_env_kwargs}
            self.eval_envs = make_vector_env(config.env_id, config.eval_episodes, eval_kwargs, config.vector_mode)

    def __enter__(self) -> Trainer:  # noqa: PYI034 - typing.Self needs Python 3.11; the package supports 3.10
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        """Release the envs, the log and the process group, and restore torch's thread count."""
        for resource in (self.envs, self.eval_envs, self.log):
            if resource is not None:
                resource.close()
        self.envs = self.eval_envs = self.log = None
        torch.set_num_threads(self._threads)
        self.world.close()

    # --- the loop -------------------------------------------------------------------------------

    def train(self) -> list[dict]:
        """Iterate until ``iterations`` or a budget is reached; returns the records logged."""
        config = self.config
        records = []
        if self.iteration == 0 and self.eval_envs is not None:
            records.append(self.log.write(0, self.evaluate()))
        progress = _progress_bar(config, self.iteration, self.world.is_main)
        try:
            while self.iteration < config.iterations and not self.out_of_budget():
                self._schedule_learning_rates()
                metrics = self._guarded_iteration()
                self.iteration += 1
                self.env_steps += int(metrics["env_steps"])
                self.train_seconds += metrics["time_iteration"]
                metrics.update(env_steps_total=float(self.env_steps), train_seconds_total=self.train_seconds, policy_lr=self.optimizer.param_groups[0]["lr"])
                last = self.iteration == config.iterations or self.out_of_budget()
                if self.eval_envs is not None and (last or (config.eval_every and self.iteration % config.eval_every == 0)):
                    metrics.update(self.evaluate())
                records.append(self.log.write(self.iteration, metrics))
                if self.iteration % config.checkpoint_every == 0 or last:
                    self._save_checkpoint()
                progress.update(1)
                progress.set_postfix(success=f"{metrics['success']:.2f}", refresh=False)
        finally:
            progress.close()
        if self.world.is_main:
            self.save_policy(self.out / "policy")
        return records

    def save_policy(self, target: Path) -> Path:
        """Save the current policy and tokenizer with ``save_pretrained`` (what ``istar-evaluate
        --model`` and any Hugging Face tool load), replacing an earlier copy."""
        staging = target.with_name(target.name + ".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        self.policy.save_pretrained(staging)
        self.tokenizer.save_pretrained(staging)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
        return target

    def out_of_budget(self) -> bool:
        """Whether the run has spent its env-step or training-time budget (0: none)."""
        config = self.config
        return (
            bool(config.env_step_budget)
            and self.env_steps >= config.env_step_budget
            or (bool(config.time_budget_s) and self.train_seconds >= config.time_budget_s)
        )

    def budget_spent(self) -> float:
        """Share of the run spent so far: the largest of iterations, env steps and training seconds
        over their limits (the one that will end the run)."""
        config = self.config
        shares = [self.iteration / config.iterations]
        if config.env_step_budget:
            shares.append(self.env_steps / config.env_step_budget)
        if config.time_budget_s:
            shares.append(self.train_seconds / config.time_budget_s)
        return min(1.0, max(shares))

    def _schedule_learning_rates(self) -> None:
        if self.config.lr_schedule in ("constant", "adaptive"):  # adaptive: set minibatch by minibatch in update_policy
            return
        remaining = 1.0 - self.budget_spent()
        for optimizer, lr in ((self.optimizer, self.config.policy_lr), (self.critic_optimizer, self.config.critic_lr)):
            for group in optimizer.param_groups if optimizer is not None else ():
                group["lr"] = lr * remaining

    def _guarded_iteration(self) -> dict[str, float]:
        if self.config.rollout_backend == "vllm":
            self.actor.backend.load_weights(self.policy.state_dict().items())  # theta_old <- theta in the engine
        try:
            metrics = self.iteration_step(train_policy=self.iteration >= self.config.prm_warmup_iterations)
        except FloatingPointError as error:
            saved = load_checkpoint(self.checkpoint_path)["iteration"]
            raise TrainingDiverged(
                f"iteration {self.iteration + 1}: {error}. Training stopped. The last checkpoint, after iteration {saved}, "
                f"is {self.checkpoint_path}: resume from it with --resume and a lower --policy-lr/--prm-lr"
            ) from error
        return self.world.reduce_metrics(metrics)

    def iteration_step(self, train_policy: bool = True) -> dict[str, float]:
        """Steps 1-6 of the module docstring; returns this process's metrics of the iteration.
        ``train_policy=False`` stops after the PRM's update (PRM warm-up: the policy does not move)."""
        config = self.config
        started = time.perf_counter()
        # 1. Rollouts, G copies of each task.
        rollouts = self.rollout()
        rollout_time = time.perf_counter() - started
        turns = [(t.context_ids, t.action_ids) for t in rollouts.turns]
        episode_of_turn = torch.tensor([t.episode for t in rollouts.turns])

        # 2. pi_old's log-prob of every action (the PPO denominator and the PRM's reference).
        if config.recomputes_old_logprobs():
            # Episode by episode: the order, hence the batches, in which the PRM scores the same turns, so
            # that while the PRM equals pi_old (iteration 1) iStar's step rewards are exactly 0, not float
            # noise of differently padded batches that the z-scoring of A_S would blow up.
            order = torch.tensor([i for indices in _turns_by_episode(rollouts) for i in indices], dtype=torch.long)
            old_logprobs = torch.empty(len(turns))
            with torch.no_grad():
                old_logprobs[order] = self._logprobs(self.policy, [turns[i] for i in order.tolist()], config.score_batch_size).cpu()
        else:
            old_logprobs = torch.tensor([sum(t.old_logprobs) for t in rollouts.turns])

        # 3. iStar: step rewards from the PRM of the previous iteration, then one DPO step on it.
        prm_started = time.perf_counter()
        step_rewards, metrics = (None, {}) if self.prm is None else self.update_prm(rollouts, turns, old_logprobs)
        prm_time = time.perf_counter() - prm_started

        # 4. Advantages: A_E from the outcome, plus alpha * A_S with iStar (PPO: GAE from the critic's values).
        if self.critic is None:
            advantages = self.advantages(rollouts, episode_of_turn, step_rewards if metrics.get("step_advantage_used") else None)
        else:
            advantages, returns = self.gae(rollouts, episode_of_turn)
        if self.oracle is not None:
            metrics.update(self._credit_metrics(rollouts, advantages, step_rewards, episode_of_turn))

        # 5. PPO-clip update; 6. theta_old <- theta is implicit: the next rollout uses this policy.
        update_started = time.perf_counter()
        metrics["policy_updated"] = float(train_policy)
        if train_policy:
            policy_before = [p.detach().clone() for p in self.policy.parameters()] if config.prm_follows_policy else None
            metrics.update(self.update_policy(turns, old_logprobs, advantages, self._row_weights(rollouts, episode_of_turn)))
            if policy_before is not None:
                self._move_prm_with_policy(policy_before)
            if self.critic is not None:
                metrics.update(self.update_critic([context for context, _ in turns], returns))
        update_time = time.perf_counter() - update_started
        elapsed = time.perf_counter() - started
        tokens = sum(len(c) + len(a) for c, a in turns)
        metrics.update(rollouts.summary())
        metrics.update(
            advantage_mean=float(advantages.mean()),
            advantage_std=float(advantages.std()) if len(advantages) > 1 else 0.0,
            time_rollout=rollout_time,
            time_prm=prm_time,
            time_update=update_time,
            time_iteration=elapsed,
            env_steps_per_s=float(rollouts.length.sum()) / elapsed,
            tokens_per_s=tokens / elapsed,
        )
        return metrics

    # --- the steps ------------------------------------------------------------------------------

    def rollout(self) -> Rollouts:
        """Step 1: ``groups x group_size`` episodes of the current policy (theta_old)."""
        config = self.config
        self.policy.eval()
        return collect_rollouts(
            self.envs,
            self.actor,
            group_seeds(self.rng, config.groups, config.group_size),
            group_size=config.group_size,
            max_turns=config.resolved_max_turns(),
            state_key=self.adapter.state_key,
        )

    def update_prm(self, rollouts: Rollouts, turns, old_logprobs: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Step 3: each turn's step reward from the PRM as it was, then ``prm_updates`` DPO steps."""
        config = self.config
        order = _turns_by_episode(rollouts)
        batch = {
            "trajectories": [[turns[i] for i in indices] for indices in order],
            "group_ids": rollouts.group.tolist(),
            "outcomes": rollouts.success.tolist(),
            "reference_logprobs": [[float(old_logprobs[i]) for i in indices] for indices in order] if config.prm_reference_is_old() else None,
        }
        update = self.prm.update(**batch, step=config.prm_updates > 0)
        for _ in range(config.prm_updates - 1):
            self.prm.update(**batch)
        if config.prm_rewards == "after":
            reference = old_logprobs.tolist() if config.prm_reference_is_old() else None
            step_rewards = self.prm.step_rewards(turns, reference).cpu().float()
        else:
            step_rewards = torch.zeros(len(turns))
            for indices, rewards in zip(order, update.step_rewards):
                step_rewards[indices] = rewards.float()
        # Gate: a PRM that ranks this batch's successes below its failures gives no step advantage.
        used = config.prm_accuracy_gate <= 0 or update.accuracy >= config.prm_accuracy_gate
        return step_rewards, {
            "prm_loss": update.loss,
            "prm_pair_accuracy": update.accuracy,
            "prm_pairs": float(update.pairs),
            "prm_grad_norm": update.grad_norm,
            "step_reward_mean": float(step_rewards.mean()),
            "step_reward_std": float(step_rewards.std()) if len(step_rewards) > 1 else 0.0,
            "step_advantage_used": float(used),
        }

    def advantages(self, rollouts: Rollouts, episode_of_turn: torch.Tensor, step_rewards: torch.Tensor | None) -> torch.Tensor:
        """Step 4: A = A_E (+ alpha * A_S with iStar, + w * A_GiGPO with GiGPO), or PRIME's combined
        returns; minus the invalid-action penalty on rejected turns."""
        config = self.config
        outcomes = torch.as_tensor(rollouts.episode_return if config.outcome == "return" else rollouts.success.astype(float), dtype=torch.float32)
        groups = torch.as_tensor(rollouts.group)
        turn_index = torch.tensor([t.step for t in rollouts.turns])
        if config.prime:
            process = step_rewards if step_rewards is not None else torch.zeros(len(rollouts.turns))
            advantages = prime_advantages(process, outcomes, groups, episode_of_turn, turn_index, process_weight=config.prime_process_weight)
        else:
            gigpo = None
            if config.gigpo:
                gigpo = GiGPOSteps(
                    torch.tensor([t.reward for t in rollouts.turns]),
                    turn_index,
                    [t.state for t in rollouts.turns],
                    weight=config.gigpo_weight,
                    gamma=config.gigpo_gamma,
                    normalisation=config.gigpo_normalisation,
                )
            advantages = turn_advantages(
                outcomes,
                groups,
                episode_of_turn,
                estimator=config.algo,
                step_rewards=step_rewards,
                alpha=config.alpha,
                step_normalisation=config.step_normalisation,
                gigpo=gigpo,
            )
        # The paper's code also charges each rejected action in its own row (apply_invalid_action_penalty).
        invalid = torch.tensor([not t.action_is_valid for t in rollouts.turns], dtype=torch.float32)
        return advantages - config.invalid_action_penalty * invalid

    def gae(self, rollouts: Rollouts, episode_of_turn: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Step 4 with a critic (PPO): turn-level GAE advantages, whitened over the batch, minus the
        invalid-action penalty; and the value targets. An episode cut off by the turn limit counts
        as ended (its last value target is its last reward)."""
        config = self.config
        contexts = [t.context_ids for t in rollouts.turns]
        self.critic.eval()
        with autocast_forward(config.device, self.autocast):
            values = self.critic.values(contexts, self.tokenizer.pad_token_id, config.score_batch_size)
        rewards = torch.tensor([t.reward for t in rollouts.turns], dtype=torch.float32)
        turn_index = torch.tensor([t.step for t in rollouts.turns])
        advantages, returns = gae_advantages(rewards, values, episode_of_turn, turn_index, gamma=config.gae_gamma, lam=config.gae_lambda)
        advantages = reinforce_pp_advantages(advantages)  # whitened over the batch, as PPO implementations do
        invalid = torch.tensor([not t.action_is_valid for t in rollouts.turns], dtype=torch.float32)
        return advantages - config.invalid_action_penalty * invalid, returns

    def update_critic(self, contexts: list[list[int]], returns: torch.Tensor) -> dict[str, float]:
        """Regress the critic on the GAE returns, in the policy update's minibatches and epochs."""
        config, critic = self.config, self.world.data_parallel(self.critic)
        self.critic.train()
        losses = []
        for _ in range(config.ppo_epochs):
            order = self.rng.permutation(len(contexts))
            for start in range(0, len(order), config.minibatch_size):
                rows = order[start : start + config.minibatch_size].tolist()
                with autocast_forward(config.device, self.autocast):
                    values = critic([contexts[i] for i in rows], self.tokenizer.pad_token_id)
                loss = 0.5 * ((values - returns[rows].to(values.device)) ** 2).mean()
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"the critic loss is {loss.item()}")
                self.critic_optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.critic.parameters(), config.max_grad_norm)
                self.critic_optimizer.step()
                losses.append(loss.item())
        self.critic.eval()
        return {"value_loss": float(np.mean(losses)) if losses else float("nan"), "value_target_mean": float(returns.mean())}

    def update_policy(self, turns, old_logprobs: torch.Tensor, advantages: torch.Tensor, row_weights: torch.Tensor | None) -> dict[str, float]:
        """Step 5: PPO-clip epochs over the turn rows that carry a gradient."""
        config, world, policy = self.config, self.world, self.policy
        trainable = world.data_parallel(policy)  # DDP averages each step's gradients over processes
        policy.train()
        totals: dict[str, list[float]] = {"policy_loss": [], "policy_grad_norm": [], "clip_fraction": [], "approx_kl": [], "kl": []}
        # A row with advantage 0 (e.g. every turn of a group whose episodes all failed) has no gradient
        # under PPO-clip, so it is left out of the update, as DAPO filters groups without signal. This
        # only changes which rows share a minibatch and saves their forward and backward passes. With
        # a KL penalty every row has a gradient and all are kept.
        kept = np.arange(len(turns)) if self.initial_policy is not None else torch.nonzero(advantages != 0).flatten().numpy()
        # An empty action (a backend's empty reply) has no token, hence no log-prob and no gradient.
        kept = np.array([i for i in kept if turns[i][1]], dtype=np.int64)
        # Every process takes as many optimizer steps as the one with the most rows; one that has run
        # out of rows joins the remaining steps with a zero-weight pass (a zero gradient in the average).
        steps = world.max(-(-len(kept) // config.minibatch_size))
        first_ratio_deviation = float("nan")
        for _ in range(config.ppo_epochs):
            order = kept[self.rng.permutation(len(kept))]
            for step in range(steps):
                rows = order[step * config.minibatch_size : (step + 1) * config.minibatch_size].tolist()
                joining = not rows
                # A process out of rows still runs a forward (on one EOS token) so DDP's all-reduce has a graph.
                batch = [(turns[0][0], [self.tokenizer.eos_token_id])] if joining else [turns[i] for i in rows]
                rows = rows or [0]
                logprobs = self._logprobs(trainable, batch, len(batch))
                device = logprobs.device
                old = old_logprobs[rows].to(device)
                loss, stats = ppo_clip_loss(
                    logprobs,
                    old,
                    advantages[rows].to(device),
                    config.clip_eps,
                    None if row_weights is None else row_weights[rows].to(device),
                )
                if self.initial_policy is not None:
                    with torch.no_grad():
                        reference = self._logprobs(self.initial_policy, batch, len(batch))
                    # k3 estimator of KL(pi_theta || pi_init) at the turn level.
                    log_ratio = reference - logprobs
                    kl = (torch.exp(log_ratio) - log_ratio - 1.0).mean()
                    loss = loss + config.kl_coef * kl
                    if not joining:
                        totals["kl"].append(kl.item())
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"the policy loss is {loss.item()}")
                if np.isnan(first_ratio_deviation) and not joining:
                    # Sampling, the stored log-probs and this forward see one distribution: ratio 1 here.
                    first_ratio_deviation = float((logprobs.detach() - old).abs().max())
                if config.lr_schedule == "adaptive":  # every process, in lockstep
                    self._adapt_learning_rate(logprobs.detach(), old, 0 if joining else len(rows))
                self.optimizer.zero_grad(set_to_none=True)
                (loss * 0.0 if joining else loss).backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(policy.parameters(), config.max_grad_norm)
                if not torch.isfinite(grad_norm):
                    self.optimizer.zero_grad(set_to_none=True)
                    raise FloatingPointError(f"the policy gradient norm is {grad_norm.item()}")
                self.optimizer.step()
                if joining:
                    continue
                for name, value in (("policy_loss", loss.item()), ("policy_grad_norm", grad_norm.item()), *stats.items()):
                    totals[name].append(value)
        policy.eval()
        summary = {name: float(np.mean(values)) for name, values in totals.items() if values}
        summary.update(update_rows=float(len(kept)), first_ratio_deviation=first_ratio_deviation)
        return summary

    def _adapt_learning_rate(self, logprobs: torch.Tensor, old_logprobs: torch.Tensor, rows: int) -> None:
        """``lr_schedule="adaptive"``: steer the KL from pi_old that this iteration's steps have built
        up, seen on this minibatch before its step (k3 estimate, never negative), toward ``target_kl``,
        as rsl_rl's PPO does (so the first minibatch of an iteration, at KL 0, raises the rate).
        From a flat policy, steps at the full rate move it little; once RL has sharpened it, the same
        rate moved it far (one iteration from a good policy cost 0.12 held-out success at lr 1e-3, KL
        0.16; none at 3e-4, KL 0.02; docs/learning.md). Every process sees its own ``rows`` (0 for
        one out of rows), so the KL is averaged over all processes' rows: one rate for all."""
        config = self.config
        log_ratio = logprobs - old_logprobs
        kl_sum, count = self.world.sum([float((torch.exp(log_ratio) - 1.0 - log_ratio).sum()) if rows else 0.0, float(rows)])
        kl = kl_sum / max(count, 1.0)
        group = self.optimizer.param_groups[0]
        if kl > 2.0 * config.target_kl:
            group["lr"] = max(group["lr"] / 1.5, config.policy_lr / 100)
        elif kl < config.target_kl / 2.0:
            group["lr"] = min(group["lr"] * 1.5, config.policy_lr)

    def evaluate(self) -> dict[str, float]:
        """Held-out success of the current policy (`evaluate_policy` on the eval envs)."""
        return evaluate_policy(self.actor, self.eval_envs, self.config)

    # --- helpers --------------------------------------------------------------------------------

    def _logprobs(self, model, turns, batch_size: int) -> torch.Tensor:
        return action_logprobs(model, turns, pad_token_id=self.tokenizer.pad_token_id, batch_size=batch_size, name="policy", autocast=self.autocast)

    def _row_weights(self, rollouts: Rollouts, episode_of_turn: torch.Tensor) -> torch.Tensor | None:
        """``None`` for the paper's mean over turns; ``1 / T_i`` per turn for a mean over trajectories,
        which keeps a long failed episode from outweighing a short success."""
        if self.config.loss_aggregation == "turn_mean":
            return None
        lengths = torch.as_tensor(rollouts.length, dtype=torch.float32)
        return 1.0 / lengths[episode_of_turn]

    def _credit_metrics(self, rollouts: Rollouts, advantages, step_rewards, episode_of_turn) -> dict[str, float]:
        """Credit-assignment accuracy (`istar_gym.rl.credit_metrics`) of the turn advantage and, with
        iStar, of the step reward and step advantage alone."""
        states = [t.state for t in rollouts.turns]
        actions = [t.action_text if t.action_is_valid else "" for t in rollouts.turns]
        groups = [t.group for t in rollouts.turns]
        metrics = credit_assignment_metrics(states, actions, groups, advantages.tolist(), advantages.tolist(), self.oracle)
        if step_rewards is not None:
            channel = normalised_step_advantages(step_rewards, rollouts.group, episode_of_turn, self.config.step_normalisation)
            step = credit_assignment_metrics(states, actions, groups, step_rewards.tolist(), channel.tolist(), self.oracle)
            metrics.update({name.replace("credit_", "credit_step_"): value for name, value in step.items()})
        return metrics

    @torch.no_grad()
    def _move_prm_with_policy(self, policy_before: list[torch.Tensor]) -> None:
        for prm_parameter, now, before in zip(self.prm.model.parameters(), self.policy.parameters(), policy_before, strict=True):
            prm_parameter.add_(now - before)
        self.prm.version += 1  # incremental scorers must not reuse scores of the PRM as it was

    def _make_prm(self) -> ImplicitPRM:
        # Paper: the PRM starts as a copy of the policy and its reference is pi_old, supplied per
        # batch; "initial" (and PRIME) freezes a copy of the PRM's start as the reference instead.
        config = self.config
        if config.prm_model:
            from istar_gym.llm import load_model

            start, tokenizer = load_model(config.prm_model, device=config.device)
            _fit_model(start, self.autocast)
            if config.prm_follows_policy and [p.shape for p in start.parameters()] != [p.shape for p in self.policy.parameters()]:
                raise ValueError(f"prm_follows_policy=True with prm_model={config.prm_model!r}: the PRM must have the policy's architecture to follow it")
            if tokenizer.get_vocab() != self.tokenizer.get_vocab():
                raise ValueError(f"prm_model={config.prm_model!r} has another tokenizer than the policy; the PRM must score the policy's token ids")
        else:
            start = copy.deepcopy(self.policy)
        prm = ImplicitPRM(
            start,
            self.tokenizer,
            reference="supplied" if config.prm_reference_is_old() else "copy",
            beta=config.beta,
            lr=config.prm_lr,
            max_grad_norm=config.prm_max_grad_norm,
            batch_size=config.score_batch_size,
            trajectory_score=config.prm_trajectory_score,
            loss="ce" if config.prime else config.prm_loss,
            autocast=self.autocast,
        )
        if self.world.size > 1:
            prm.data_parallel = self.world.data_parallel(prm.model)
        return prm

    def _rollout_backend(self):
        config = self.config
        if config.rollout_backend == "hf":
            from istar_gym.llm.hf import HFBackend

            # The backend wraps the very model being trained, so it always generates with theta_old.
            return HFBackend(self.policy, self.tokenizer, batch_size=config.groups * config.group_size)
        if config.rollout_backend == "vllm":
            from istar_gym.llm.vllm import VLLMBackend, check_engine_compatible

            # An engine of its own, started from the policy's files; the loop pushes the policy's current
            # weights into it before every rollout. Under torchrun each process runs its engine in-process
            # on its own GPU (vLLM's "external_launcher" mode).
            check_engine_compatible(self.policy.config, max_length=config.max_new_tokens + 1)
            engine = {"distributed_executor_backend": "external_launcher"} if self.world.size > 1 else {}
            backend = VLLMBackend(
                _policy_files(config, self.out),
                gpu_memory_utilization=config.vllm_gpu_memory_utilization,
                dtype=next(self.policy.parameters()).dtype,
                **engine,
            )
            self.world.on_close(backend.close)  # the engine's subgroups go before the process group
            return backend
        return None

    def _save_checkpoint(self) -> None:
        """Everything a resumed run needs. Several processes: process 0 writes it, with every
        process's random streams."""
        randomness = _random_state(self.rng, self.generator)
        every_process = self.world.all_gather(randomness)
        if not self.world.is_main:
            return
        state = {
            "iteration": self.iteration,
            "env_steps": self.env_steps,
            "train_seconds": self.train_seconds,
            "world_size": self.world.size,
            "config": self.run_config.to_dict(),
            "policy": self.policy.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            **randomness,
        }
        if self.world.size > 1:
            state["process_random_states"] = every_process
        if self.prm is not None:
            state["prm"] = {"model": self.prm.model.state_dict(), "optimizer": self.prm.optimizer.state_dict(), "version": self.prm.version}
        if self.critic is not None:
            state["critic"] = {"model": self.critic.state_dict(), "optimizer": self.critic_optimizer.state_dict()}
        save_checkpoint(self.checkpoint_path, state)

    def _load_checkpoint(self) -> None:
        path, world = self.checkpoint_path, self.world
        state = load_checkpoint(path, map_location_for(self.config.device))
        processes = state.get("world_size", 1)
        if processes != world.size:
            raise ValueError(
                f"--resume: {path} was written by a run of {processes} process(es), this one has {world.size}; resume with "
                f"the same number ({f'--processes {processes} or torchrun --nproc_per_node {processes}' if processes > 1 else '--processes 1 and no launcher'})"
            )
        saved = state["config"]
        changed = {k: (saved.get(k), v) for k, v in self.run_config.to_dict().items() if k not in _RESUMABLE and saved.get(k) != v}
        if changed:
            details = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changed.items())
            raise ValueError(f"--resume: {path} was written with other settings ({details}); resume with the original settings or use a new --out")
        if (self.prm is None) != ("prm" not in state):
            raise ValueError(f"--resume: {path} {'has' if 'prm' in state else 'has no'} PRM state; keep --istar/--prime as in the original run")
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.prm is not None:
            self.prm.model.load_state_dict(state["prm"]["model"])
            self.prm.optimizer.load_state_dict(state["prm"]["optimizer"])
            self.prm.version = state["prm"]["version"]
        if self.critic is not None:
            self.critic.load_state_dict(state["critic"]["model"])
            self.critic_optimizer.load_state_dict(state["critic"]["optimizer"])
        randomness = state["process_random_states"][world.rank] if world.size > 1 else state
        self.rng.bit_generator.state = randomness["numpy_rng"]
        restore_generator_state(self.generator, randomness["torch_generator"])
        torch.set_rng_state(randomness["torch_rng"].cpu())
        random.setstate(randomness["python_rng"])
        self.iteration, self.env_steps = int(state["iteration"]), int(state["env_steps"])
        self.train_seconds = float(state.get("train_seconds", 0.0))


def ppo_clip_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    clip_eps: float = 0.2,
    weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """PPO-clip with a step-level ratio (iStar Eq. 6), averaged over turn rows.

    ``rho_t = pi_theta(a_t|ctx_t) / pi_old(a_t|ctx_t)`` uses the whole turn's log-prob (sum over its
    tokens); ``loss = -sum_t w_t min(rho_t A_t, clip(rho_t, 1-eps, 1+eps) A_t) / sum_t w_t`` with
    ``w_t = 1`` (the paper's mean over turns) unless ``weights`` are given.
    """
    ratio = torch.exp(logprobs - old_logprobs)
    unclipped = ratio * advantages
    clipped = ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps) * advantages
    objective = torch.minimum(unclipped, clipped)
    loss = -(objective.mean() if weights is None else (weights * objective).sum() / weights.sum())
    with torch.no_grad():
        stats = {
            "clip_fraction": float(((ratio - 1.0).abs() > clip_eps).float().mean()),
            "approx_kl": float((old_logprobs - logprobs).mean()),
        }
    return loss, stats


def evaluate_policy(actor: Actor, envs, config: TrainConfig) -> dict[str, float]:
    """Held-out success on the fixed tasks ``0..num_envs-1`` of ``envs`` (the eval split), sampled at
    ``config.eval_temperature`` with a generator of its own, so evaluating never changes the
    training run's random stream."""
    generator = torch.Generator(device=config.device).manual_seed(10_000 + config.seed)
    evaluator = dataclasses.replace(actor, temperature=config.eval_temperature, generator=generator)
    actor.model.eval()
    with torch.no_grad():
        rollouts = collect_rollouts(envs, evaluator, list(range(envs.num_envs)), group_size=1, max_turns=config.resolved_max_turns())
    return {f"eval_{name}": value for name, value in rollouts.summary().items() if name != "env_steps"}


def load_policy(config: TrainConfig, out: Path | None):
    """The policy and tokenizer to train: the SFT-warm-started tiny preset the env's adapter names
    (built once and kept in ``out/initial_policy``), the default SmolLM2, or a local model directory."""
    from istar_gym.llm import load_model

    if config.model == "tiny":
        prepare = load_entry_point(adapter_for(config.env_id).tiny_preset.prepare)
        source = prepare(
            out / "initial_policy",
            seed=config.seed,
            episodes=config.sft_episodes,
            clean_steps=config.sft_clean_steps,
            noisy_steps=config.sft_noisy_steps,
            noise=config.sft_noise,
            temperature=config.sft_temperature,
            lr=config.sft_lr,
            env_kwargs=config.env_kwargs,
        )
    else:
        source = None if config.model == "default" else config.model
    model, tokenizer = load_model(source, device=config.device)
    vocabulary = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > vocabulary:
        raise ValueError(
            f"model {config.model!r} has {vocabulary} token embeddings but its tokenizer has {len(tokenizer)} tokens; "
            "the tokenizer does not belong to this model (save both from the same run)"
        )
    return model, tokenizer


def mixed_precision(config: TrainConfig, model) -> torch.dtype | None:
    """The dtype ``config.precision`` autocasts ``model``'s forwards to (``None``: float32), with the
    model's forwards set up for it (`_fit_model`); the trainer and ``istar-evaluate`` share it."""
    autocast = torch.bfloat16 if config.resolved_precision() == "bf16" else None
    _fit_model(model, autocast)
    return autocast


# --- private helpers -------------------------------------------------------------------------


def _fit_model(model, autocast: torch.dtype | None) -> None:
    """The last decoder layer of a Llama model runs only where logits are read
    (`istar_gym.prm.tail.trim_last_layer`: the same outputs; tiny-preset iterations 1.1x-1.3x faster).

    Under bfloat16 on a CPU, a tiny preset's model (contexts of at most 64 tokens, 16-dim heads)
    uses eager attention: there PyTorch's SDPA backward took 3.2x as long as eager attention's (306 vs
    94 ms for 512 rows of 24 tokens), while in float32 the two are level. Longer contexts keep SDPA,
    which eager attention falls behind from a few hundred tokens on."""
    trim_last_layer(model)
    tiny = getattr(model.config, "istar_context", None) is not None
    if autocast is not None and tiny and next(model.parameters()).device.type == "cpu":
        model.set_attn_implementation("eager")


@record
def _train_in_process(config: TrainConfig) -> list[dict]:
    """One process of a ``--processes`` run. Without ``torch_threads`` it takes its share of the
    cores, as torchrun's processes do (N processes with every core's threads each oversubscribe)."""
    if not config.torch_threads and config.device == "cpu":
        config = dataclasses.replace(config, torch_threads=max(1, (os.cpu_count() or 1) // config.processes))
    return train(config)


def _turns_by_episode(rollouts: Rollouts) -> list[list[int]]:
    """Indices into ``rollouts.turns`` of each episode's turns, in play order."""
    order: list[list[int]] = [[] for _ in range(rollouts.num_episodes)]
    for index, turn in enumerate(rollouts.turns):
        order[turn.episode].append(index)
    return order


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _random_state(rng, generator) -> dict:
    return {
        "numpy_rng": rng.bit_generator.state,
        "torch_generator": generator.get_state(),
        "torch_rng": torch.get_rng_state(),
        "python_rng": random.getstate(),
    }


def _policy_files(config: TrainConfig, out: Path) -> str | None:
    """Where `load_policy` reads the starting policy from (``None``: the default model), for
    engines that load it themselves."""
    if config.model == "tiny":
        return str(out / "initial_policy")
    return None if config.model == "default" else config.model


def _progress_bar(config: TrainConfig, start: int, shown: bool = True):
    from tqdm.auto import tqdm

    description = "prime" if config.prime else config.algo + "".join(f"+{name}" for name in ("istar", "gigpo") if getattr(config, name))
    return tqdm(total=config.iterations, initial=start, desc=description, disable=not (config.progress and shown), file=sys.stderr)


if __name__ == "__main__":
    main()
