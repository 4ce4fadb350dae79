"""``istar-evaluate``: held-out success of a policy model, sampled as the trainer evaluates.

    istar-evaluate --env istar/Sokoban-v0 --model runs/demo/policy --episodes 200 \
        --eval-env-kwargs '{"split": "test", "min_optimal_steps": 3}'

``--model`` is a saved policy (a run's ``out/policy``, a tiny preset's ``initial_policy``, any local
Hugging Face causal LM) or ``default`` (SmolLM2-135M-Instruct). The prompt and, for a tiny preset's
policy, the action length follow the model, as in training (`istar_gym.rl.rollout.context_builder`),
so a run's last ``eval_success`` and this command agree on the same tasks (``--precision`` is the
tiny presets' ``auto`` by default; pass a run's own setting to reproduce it). Prints one JSON object:
success, return, episode length and invalid-action rate over tasks ``0..episodes-1`` of the
evaluation split.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from istar_gym.adapters import adapter_for
from istar_gym.rl.config import TrainConfig
from istar_gym.rl.rollout import Actor, context_builder, make_vector_env
from istar_gym.rl.trainer import evaluate_policy, load_policy, mixed_precision

__all__ = ["evaluate_model", "main"]


def evaluate_model(config: TrainConfig) -> dict[str, float]:
    """`evaluate_policy` of ``config.model`` on ``config.eval_episodes`` tasks of ``env_kwargs`` updated
    by ``eval_env_kwargs``; the model must already exist (``model="tiny"`` is not built here)."""
    if config.model == "tiny":
        raise ValueError("model='tiny' names a preset to build, not a policy to evaluate; pass the path of a saved policy (e.g. runs/x/policy)")
    config.validate()
    if config.eval_episodes < 1:
        raise ValueError(f"eval_episodes={config.eval_episodes}: evaluate at least one episode")
    model, tokenizer = load_policy(config, out=None)
    max_new_tokens = config.max_new_tokens
    preset = adapter_for(config.env_id).tiny_preset
    if preset is not None and getattr(model.config, "istar_context", None) == preset.marker:
        # A tiny preset's policy is sampled as in training, for at most its longest action.
        max_new_tokens = min(max_new_tokens, preset.max_action_tokens)
    autocast = mixed_precision(config, model)
    actor = Actor(model, tokenizer, context_builder(model, config.env_id, config.history_window), max_new_tokens=max_new_tokens, autocast=autocast)
    envs = make_vector_env(config.env_id, config.eval_episodes, {**config.env_kwargs, **config.eval_env_kwargs}, config.vector_mode)
    try:
        return evaluate_policy(actor, envs, config)
    finally:
        envs.close()


def main(argv: Sequence[str] | None = None) -> None:
    """The ``istar-evaluate`` command: prints the summary as JSON (a console script's return value
    would become its exit status)."""
    parser = argparse.ArgumentParser(prog="istar-evaluate", description="Held-out success of a policy model on an istar env.")
    parser.add_argument("--env", dest="env_id", default="istar/Sokoban-v0", help="Gymnasium id")
    parser.add_argument("--model", required=True, help="a saved policy directory, or 'default' (SmolLM2-135M-Instruct)")
    parser.add_argument("--episodes", dest="eval_episodes", type=int, default=128, help="tasks 0..N-1 of the evaluation split")
    parser.add_argument("--env-kwargs", type=json.loads, default={}, metavar="JSON", help="keyword arguments of gym.make")
    parser.add_argument("--eval-env-kwargs", type=json.loads, default={"split": "test"}, metavar="JSON", help="overrides for evaluation")
    parser.add_argument("--temperature", dest="eval_temperature", type=float, default=1.0, help="sampling temperature (0: greedy)")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="generated tokens per turn")
    parser.add_argument("--max-turns", type=int, default=None, help="turns per episode (default: the env adapter's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="auto", help="fp32, bf16 or auto (the tiny presets' setting: bf16 where the device computes it natively)")
    parser.add_argument("--seed", type=int, default=0)
    print(json.dumps(evaluate_model(TrainConfig(**vars(parser.parse_args(argv)))), indent=2))


if __name__ == "__main__":
    main()
