"""Stable-Baselines3 PPO on Sokoban: a from-scratch, non-LLM peer for our trainer's learning curves.

SB3's PPO with an ``MlpPolicy`` trains on ``istar/Sokoban-v0`` (6x6 room, 1 box, 15 steps) through
`SokobanOneHot` and is evaluated on exactly the held-out tasks of ``istar_gym.rl.evaluate_policy``: task
``i`` is ``reset(seed=i)`` of an env made with ``eval_kwargs``, played until it ends (the registered
15-step limit, the trainer's ``max_turns`` for Sokoban), and counts as solved when
``info["success"]``. Like our evaluator, which samples at temperature 1, the headline number
samples from the policy (``eval_success``); ``eval_success_greedy`` takes its most likely action.

Evaluations run at the start, every ``eval_every_s`` seconds of training and at the end; the time
they take is excluded from ``train_seconds_total``, so curves can be drawn against env steps or
against training seconds. ``train_cpu_seconds_total`` is the same clock in the process's CPU time:
on a machine whose cores other jobs share, it is the time the run would take on a core of its own.

Hyperparameters (`PPO_KWARGS`, SB3's defaults for the rest): 16 envs x 128 steps per rollout,
minibatches of 256, 4 epochs, gamma 0.99, GAE lambda 0.95, clip 0.2, learning rate 3e-4, entropy
bonus 0.01, and separate 2 x 256 tanh MLPs for policy and value. In one 60 s trial per setting
(seed 0, 200 held-out levels, sampled success, on a core shared with other jobs), this net
reached 0.53 after 336k steps; SB3's default 2 x 64 net reached 0.47 (567k steps) without the
entropy bonus and 0.34 (535k) with it, and 2 x 256 without it 0.38 (327k). The wider net runs at half the steps per second but learns
more per step, so it is at least as fast per second; differences this size are within seed noise.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import DummyVecEnv

from istar_gym.envs.sokoban import SokobanOneHot

__all__ = ["ENV_ID", "PPO_KWARGS", "train_sb3_ppo"]

ENV_ID = "istar/Sokoban-v0"
PPO_KWARGS: dict = {
    "n_steps": 128,
    "batch_size": 256,
    "n_epochs": 4,
    "gamma": 0.99,
    "gae_lambda": 0.95,
    "learning_rate": 3e-4,
    "clip_range": 0.2,
    "ent_coef": 0.01,
    "policy_kwargs": {"net_arch": [256, 256]},
}


def train_sb3_ppo(
    seed: int,
    *,
    env_step_budget: int = 0,
    time_budget_s: float = 0.0,
    eval_levels: int = 200,
    eval_every_s: float = 30.0,
    eval_kwargs: dict | None = None,
    train_kwargs: dict | None = None,
    n_envs: int = 16,
    ppo_kwargs: dict | None = None,
    torch_threads: int = 1,
) -> list[dict]:
    """Train SB3 PPO from scratch until ``env_step_budget`` env steps or ``time_budget_s``
    training seconds are spent (whichever comes first; 0 means no limit, but one must be set).

    ``train_kwargs`` (default: none) go to ``gym.make``; the held-out env takes them overridden by
    ``eval_kwargs`` (default ``{"split": "test", "min_optimal_steps": 3}``, the Sokoban benchmark's
    held-out setting), as `istar_gym.rl.trainer` builds its eval env. ``ppo_kwargs`` override `PPO_KWARGS`.
    Uses ``torch_threads`` torch threads (set for the whole process): on the 2-core machine two
    ran 1.28x the env steps per second of one (4,094 vs 3,190 in 30 s), while SB3's other way to use
    a second core, ``SubprocVecEnv`` (one process per env; 2 envs x 1,024 steps), ran 682. Returns one record per evaluation, the first
    at 0 steps: ``env_steps_total`` (every step taken, including those of a last rollout cut short
    by a budget), ``train_seconds_total``, ``train_cpu_seconds_total``, ``eval_success``,
    ``eval_success_greedy`` and ``eval_episode_length`` (of the sampled episodes).
    """
    if env_step_budget <= 0 and time_budget_s <= 0:
        raise ValueError(f"env_step_budget={env_step_budget}, time_budget_s={time_budget_s}: set at least one budget above 0")
    train_kwargs = train_kwargs or {}
    if eval_kwargs is None:
        eval_kwargs = {"split": "test", "min_optimal_steps": 3}
    torch.set_num_threads(torch_threads)
    envs = DummyVecEnv([partial(_one_hot_env, train_kwargs)] * n_envs)
    model = PPO(
        "MlpPolicy",
        envs,
        seed=seed,
        device="cpu",
        **{**PPO_KWARGS, **(ppo_kwargs or {})},
    )
    eval_envs = [_one_hot_env({**train_kwargs, **eval_kwargs}) for _ in range(eval_levels)]

    def evaluate() -> dict[str, float]:
        # Own random stream, as in istar_gym.rl.evaluate_policy: evaluating never shifts training's samples.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(10_000 + seed)
            success, length = _play(model, eval_envs, deterministic=False)
        greedy_success, _ = _play(model, eval_envs, deterministic=True)
        return {
            "eval_success": success,
            "eval_success_greedy": greedy_success,
            "eval_episode_length": length,
        }

    callback = _BudgetsAndEvaluations(evaluate, env_step_budget, time_budget_s, eval_every_s)
    # A budget in env steps is enforced by the callback, so SB3's own step count must never stop first.
    model.learn(total_timesteps=env_step_budget or 2**62, callback=callback)
    callback.record()
    envs.close()
    for env in eval_envs:
        env.close()
    return callback.records


class _BudgetsAndEvaluations(BaseCallback):
    """Stops training when a budget is spent and evaluates every ``eval_every_s`` training seconds,
    keeping the evaluations' own time out of the training clock."""

    def __init__(
        self,
        evaluate: Callable[[], dict[str, float]],
        env_step_budget: int,
        time_budget_s: float,
        eval_every_s: float,
    ):
        super().__init__()
        self.evaluate = evaluate
        self.env_step_budget = env_step_budget
        self.time_budget_s = time_budget_s
        self.eval_every_s = eval_every_s
        self.records: list[dict] = []
        self._started = 0.0
        self._eval_seconds = 0.0
        self._cpu_started = 0.0
        self._eval_cpu_seconds = 0.0
        self._next_eval = eval_every_s

    def train_seconds(self) -> float:
        return time.perf_counter() - self._started - self._eval_seconds

    def train_cpu_seconds(self) -> float:
        return time.process_time() - self._cpu_started - self._eval_cpu_seconds

    def record(self) -> None:
        """Evaluate now and append the record."""
        started, cpu_started = time.perf_counter(), time.process_time()
        record = {
            "env_steps_total": int(self.model.num_timesteps),
            "train_seconds_total": self.train_seconds(),
            "train_cpu_seconds_total": self.train_cpu_seconds(),
        }
        record.update(self.evaluate())
        self.records.append(record)
        self._eval_seconds += time.perf_counter() - started
        self._eval_cpu_seconds += time.process_time() - cpu_started

    def _on_training_start(self) -> None:
        self._started, self._cpu_started = time.perf_counter(), time.process_time()
        self.record()

    def _on_step(self) -> bool:
        seconds = self.train_seconds()
        if (self.env_step_budget and self.num_timesteps >= self.env_step_budget) or (self.time_budget_s and seconds >= self.time_budget_s):
            return False
        if self.eval_every_s and seconds >= self._next_eval:
            self.record()
            self._next_eval += self.eval_every_s
        return True


def _one_hot_env(kwargs: dict) -> gym.Env:
    return SokobanOneHot(gym.make(ENV_ID, **kwargs))


def _play(model: PPO, envs: list[gym.Env], deterministic: bool) -> tuple[float, float]:
    """Success rate and mean episode length of ``model`` on the tasks ``envs[i].reset(seed=i)``."""
    observations = np.stack([env.reset(seed=task)[0] for task, env in enumerate(envs)])
    running = np.ones(len(envs), dtype=bool)
    success = np.zeros(len(envs), dtype=bool)
    length = np.zeros(len(envs), dtype=int)
    while running.any():
        active = np.flatnonzero(running)
        actions, _ = model.predict(observations[active], deterministic=deterministic)
        for i, action in zip(active, actions):
            observations[i], _, terminated, truncated, info = envs[i].step(action)
            length[i] += 1
            success[i] = info["success"]
            running[i] = not (terminated or truncated)
    return float(success.mean()), float(length.mean())
