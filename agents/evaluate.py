"""Evaluate an agent on N tasks of any istar Gymnasium env: per-episode JSONL and a summary with 95% CIs.

    python -m agents.evaluate --env istar/Sokoban-v0 --agent solver --episodes 50 --seed 0 --out results/
    python -m agents.evaluate --env istar/WebShop-v0 --agent react --episodes 20 --num-envs 4 --out results/

Episode ``i`` is played on the task of ``reset(seed=seed + i)``, so the same ``--seed`` gives every
agent the same tasks. Episodes run in waves of ``num_envs`` sub-envs of a synchronous vector env;
an LLM agent answers all running sub-envs with one batched generation per step.

Agents: ``random``, ``solver`` (Sokoban, optimal), ``rule`` and ``oracle`` (WebShop), ``react``
(an LLM on ``--backend hf`` (default model unless ``--model``), ``openai`` or ``vllm``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from tqdm import tqdm

import istar_gym  # noqa: F401  (registers the istar/... ids)
from istar_gym.prompts import observation_text

__all__ = ["AGENT_NAMES", "evaluate", "make_agent_factory", "summarize", "wilson_interval", "mean_interval"]

AGENT_NAMES = ("random", "solver", "rule", "oracle", "react")
_Z95 = statistics.NormalDist().inv_cdf(0.975)


def evaluate(
    env_id: str,
    agent: str | Callable[[gym.Env], Any],
    episodes: int = 20,
    seed: int = 0,
    num_envs: int = 4,
    env_kwargs: dict | None = None,
    out_dir: str | Path | None = None,
    progress: bool = True,
    agent_name: str | None = None,
    **agent_kwargs,
) -> dict:
    """Play ``episodes`` episodes and return the summary (see `summarize`); write files if ``out_dir``.

    Args:
        env_id: a registered Gymnasium id (``istar/Sokoban-v0``, ``istar/WebShop-v0``, ...).
        agent: one of `AGENT_NAMES`, or a factory ``env -> agent`` called once per sub-env; agents
            returned more than once that have ``act_batch(observations, infos, slots)`` act for all
            their sub-envs in one call (that is how the ReAct agent batches generation).
        episodes, seed: episode ``i`` resets with ``seed + i``.
        num_envs: sub-envs played at once.
        env_kwargs: passed to ``gym.make``.
        out_dir: where ``<env>.<agent>.episodes.jsonl`` and ``<env>.<agent>.summary.json`` go.
        agent_name: the name in records and file names (default: the agent's name, or "custom").
        **agent_kwargs: for named agents, see `make_agent_factory`.
    """
    if episodes < 1 or num_envs < 1:
        raise ValueError(f"evaluate: episodes={episodes}, num_envs={num_envs}; both must be at least 1")
    if agent_kwargs and not isinstance(agent, str):
        raise TypeError(
            f"evaluate: {sorted(agent_kwargs)} configure named agents only; build them into your agent factory"
        )
    name = agent_name or (agent if isinstance(agent, str) else "custom")
    factory = make_agent_factory(agent, seed=seed, **agent_kwargs) if isinstance(agent, str) else agent
    num_envs = min(num_envs, episodes)
    vector_env = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="sync", **(env_kwargs or {}))
    agents = [factory(env) for env in vector_env.envs]
    episodes_file = None
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        stem = f"{env_id.replace('/', '_')}.{name}"
        episodes_file = open(out / f"{stem}.episodes.jsonl", "w", encoding="utf-8")
    records: list[dict] = []
    start = time.perf_counter()
    try:
        with tqdm(total=episodes, desc=f"{name} on {env_id}", disable=not progress) as bar:
            for first in range(0, episodes, num_envs):
                wave = min(num_envs, episodes - first)
                for record in _play_wave(vector_env, agents, seed + first, wave):
                    record = {"episode": first + record.pop("slot"), "env_id": env_id, "agent": name, **record}
                    records.append(record)
                    if episodes_file is not None:
                        episodes_file.write(json.dumps(record, ensure_ascii=False) + "\n")
                        episodes_file.flush()
                    bar.update(1)
    finally:
        vector_env.close()
        if episodes_file is not None:
            episodes_file.close()
    summary = summarize(records, time.perf_counter() - start)
    summary.update(env_id=env_id, agent=name, seed=seed, num_envs=num_envs)
    if out_dir is not None:
        (Path(out_dir) / f"{stem}.summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def make_agent_factory(
    name: str,
    seed: int = 0,
    backend: Any = None,
    history_window: int = 2,
    max_new_tokens: int = 128,
    temperature: float = 0.0,
) -> Callable[[gym.Env], Any]:
    """An ``env -> agent`` factory for a named agent.

    ``react`` shares one `agents.react.ReActAgent` on ``backend`` (default: ``HFBackend()``, the
    default model) across all sub-envs, so each step is one batched generation.
    """
    if name == "random":
        slots = itertools.count()
        return lambda env: _scripted().RandomAgent(seed=[seed, next(slots)])
    if name == "solver":
        return lambda env: _scripted().SokobanSolverAgent()
    if name == "rule":
        return lambda env: _scripted().RuleAgent()
    if name == "oracle":
        return lambda env: _scripted().OracleAgent(env)
    if name == "react":
        from agents.react import ReActAgent

        if backend is None:
            from istar_gym.llm import HFBackend

            backend = HFBackend()
        sampling_seed = seed if temperature > 0 else None
        shared = ReActAgent(backend, history_window, max_new_tokens, temperature, seed=sampling_seed)
        return lambda env: shared
    raise ValueError(f"unknown agent {name!r}; expected one of {', '.join(AGENT_NAMES)} or a factory env -> agent")


def summarize(records: Sequence[dict], wall_seconds: float) -> dict:
    """Success rate (Wilson 95% CI), score = mean return, mean steps, and invalid-action rate (mean of
    per-episode rates), each mean with a normal-approximation 95% CI (None for a single episode)."""
    successes = [bool(record["success"]) for record in records]
    returns = [record["return"] for record in records]
    steps = [record["steps"] for record in records]
    invalid = [record["invalid_actions"] / max(record["steps"], 1) for record in records]
    return {
        "episodes": len(records),
        "success_rate": sum(successes) / len(records),
        "success_rate_ci95": wilson_interval(sum(successes), len(records)),
        "score": statistics.fmean(returns),
        "score_ci95": mean_interval(returns),
        "mean_steps": statistics.fmean(steps),
        "mean_steps_ci95": mean_interval(steps),
        "invalid_action_rate": statistics.fmean(invalid),
        "invalid_action_rate_ci95": mean_interval(invalid),
        "wall_seconds": wall_seconds,
        "episodes_per_minute": 60.0 * len(records) / wall_seconds if wall_seconds > 0 else None,
    }


def wilson_interval(successes: int, trials: int) -> list[float]:
    """Wilson score 95% interval of a proportion; unlike mean +- 1.96 se it stays inside [0, 1] at 0% or 100%."""
    if trials < 1:
        raise ValueError(f"wilson_interval: trials={trials}; need at least one")
    p = successes / trials
    denominator = 1 + _Z95**2 / trials
    centre = (p + _Z95**2 / (2 * trials)) / denominator
    half = _Z95 * math.sqrt(p * (1 - p) / trials + _Z95**2 / (4 * trials**2)) / denominator
    return [max(0.0, centre - half), min(1.0, centre + half)]


def mean_interval(values: Sequence[float]) -> list[float] | None:
    """mean +- 1.96 standard errors, or None when one value gives no spread estimate."""
    if len(values) < 2:
        return None
    mean = statistics.fmean(values)
    half = _Z95 * statistics.stdev(values) / math.sqrt(len(values))
    return [mean - half, mean + half]


def _play_wave(vector_env: gym.vector.VectorEnv, agents: list, seed: int, wave: int) -> list[dict]:
    """Reset every sub-env (seeds ``seed, seed + 1, ...``) and play the first ``wave`` to their end.

    Sub-envs beyond ``wave`` and finished ones are stepped with an empty (invalid) action and ignored:
    a synchronous vector env steps all sub-envs together. Records come back in slot order.
    """
    num_envs = vector_env.num_envs
    observations, infos = vector_env.reset(seed=[seed + slot for slot in range(num_envs)])
    for agent in {id(agent): agent for agent in agents}.values():
        agent.reset()
    records = {slot: {"slot": slot, "seed": seed + slot, "success": False, "return": 0.0, "steps": 0,
                      "invalid_actions": 0, "actions": []} for slot in range(wave)}
    for slot, record in records.items():
        record["first_observation"] = observation_text(_sub_observation(observations, slot))
        start_info = _sub_info(infos, slot)
        if "optimal_steps" in start_info:  # Sokoban: lets a reader compare steps with the optimum
            record["optimal_steps"] = start_info["optimal_steps"]
    running = list(range(wave))
    finished = []
    while running:
        actions = [""] * num_envs
        for slot, action in _act(agents, running, observations, infos).items():
            actions[slot] = action
        observations, rewards, terminations, truncations, infos = vector_env.step(actions)
        for slot in list(running):
            info = _sub_info(infos, slot)
            record = records[slot]
            record["steps"] += 1
            record["return"] += float(rewards[slot])
            record["invalid_actions"] += not bool(info.get("action_is_valid", True))
            record["actions"].append(actions[slot])
            if terminations[slot] or truncations[slot]:
                record["success"] = bool(info.get("success", False))
                running.remove(slot)
                finished.append(record)
    return sorted(finished, key=lambda record: record["slot"])


def _act(agents: list, running: list[int], observations, infos) -> dict[int, str]:
    """Each running slot's action; slots sharing one batched agent are answered in one call."""
    groups: dict[int, list[int]] = {}
    for slot in running:
        groups.setdefault(id(agents[slot]), []).append(slot)
    actions = {}
    for slots in groups.values():
        agent = agents[slots[0]]
        slot_observations = [_sub_observation(observations, slot) for slot in slots]
        slot_infos = [_sub_info(infos, slot) for slot in slots]
        if len(slots) > 1 and hasattr(agent, "act_batch"):
            replies = agent.act_batch(slot_observations, slot_infos, slots)
        else:
            replies = [agent.act(obs, info) for obs, info in zip(slot_observations, slot_infos)]
        actions.update(zip(slots, (reply if isinstance(reply, str) else "" for reply in replies)))
    return actions


def _sub_observation(observations, slot: int):
    if isinstance(observations, dict):
        return {key: _sub_observation(value, slot) for key, value in observations.items()}
    return observations[slot]


def _sub_info(infos: dict, slot: int) -> dict:
    # Vector envs batch each info key into an array with a "_key" mask; nested dicts recursively.
    return {
        key: _sub_info(value, slot) if isinstance(value, dict) else _plain(value[slot])
        for key, value in infos.items()
        if not key.startswith("_") and (f"_{key}" not in infos or infos[f"_{key}"][slot])
    }


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray) and value.dtype == object:
        return value.tolist()
    return value


def _scripted():
    # Imported on demand: the WebShop/Sotopia baselines pull in their envs' modules.
    import agents.scripted

    return agents.scripted


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m agents.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("--env", required=True, help="a registered id, e.g. istar/Sokoban-v0")
    parser.add_argument("--agent", required=True, choices=AGENT_NAMES)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0, help="episode i plays the task of reset(seed=seed + i)")
    parser.add_argument("--out", type=Path, default=None, help="folder for the episodes JSONL and the summary")
    parser.add_argument("--num-envs", type=int, default=4)
    parser.add_argument("--env-kwargs", type=json.loads, default={}, help='JSON, e.g. \'{"split": "test"}\'')
    parser.add_argument("--backend", choices=("hf", "openai", "vllm"), default="hf", help="LLM backend for react")
    parser.add_argument("--model", default=None, help="model path or name (hf/vllm: default SmolLM2; openai: required)")
    parser.add_argument("--base-url", default="http://127.0.0.1:8000/v1", help="openai backend: the API root")
    parser.add_argument("--timeout", type=float, default=120.0, help="openai backend: seconds per request")
    parser.add_argument("--device", default="cpu", help="hf backend: cpu, cuda, ...")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--temperature", type=float, default=0.0)
    parser.add_argument("--history-window", type=int, default=2)
    args = parser.parse_args(argv)
    agent_kwargs = {}
    if args.agent == "react":
        agent_kwargs = dict(
            backend=_backend(args), history_window=args.history_window,
            max_new_tokens=args.max_new_tokens, temperature=args.temperature,
        )
    summary = evaluate(
        args.env, args.agent, args.episodes, args.seed, args.num_envs, args.env_kwargs, args.out, **agent_kwargs
    )
    print(json.dumps(summary, indent=2))
    return summary


def _backend(args: argparse.Namespace):
    from istar_gym.llm import HFBackend, OpenAIBackend, VLLMBackend

    if args.backend == "openai":
        if not args.model:
            raise SystemExit("--backend openai needs --model (the name the server expects)")
        return OpenAIBackend(args.model, args.base_url, timeout=args.timeout)
    if args.backend == "vllm":
        return VLLMBackend(args.model)
    return HFBackend(args.model, device=args.device)


if __name__ == "__main__":
    main()
