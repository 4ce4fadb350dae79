"""Implicit step rewards: wrapper cost per episode against episode length, incremental vs naive.

One Sokoban episode of T turns (T = 5, 10, 20, 40) is played through `ImplicitStepRewardWrapper`
with the growing-chat context (`conversation_context`), whose contexts extend each other. Measured:

- **incremental**: the wrapper as shipped (KV caches of pi_phi and pi_ref reused across turns);
- **naive**: the same turns, each context re-scored from scratch by both models (the O(T^2) way);
- **window**: the wrapper with the default shared prompt (last 2 steps), for reference;
- **policy forward**: one forward pass of the same network over the episode's final sequence, so
  ``overhead = incremental / policy forward`` (two models run, so about 2 is the floor).

Goals: incremental cost grows linearly in T (``incremental_growth_40_over_20`` near 2) and
incremental is at least 5x faster than naive at T = 20. The model is SmolLM2-135M's architecture
cut to 8 of its 30 layers (2 with ``quick``), randomly initialised, so the naive runs fit two CPU
cores; set ``ISTAR_BENCH_PRM_MODEL=default`` (SmolLM2-135M itself) or a model path to time a real
one. Times are CPU seconds of one torch thread.
"""

from __future__ import annotations

import os
import time

import torch

TITLE = "Implicit PRM: wrapper cost vs episode length, incremental vs naive re-scoring"

_MOVES = ("up", "left", "down", "right")


def run(quick: bool = False) -> dict:
    # One thread: on a loaded 2-core machine, two threads made these small forwards 5-10x slower
    # and far noisier (each op waits for a thread that another process holds).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _measure(quick)
    finally:
        torch.set_num_threads(threads)


def _measure(quick: bool) -> dict:
    from istar_gym.envs.sokoban.env import SokobanEnv
    from istar_gym.prm import ImplicitPRM, Turn
    from istar_gym.wrappers import ImplicitStepRewardWrapper, conversation_context

    model, tokenizer, model_name = _model(quick)
    prm = ImplicitPRM(model, tokenizer, batch_size=1)
    with torch.no_grad():  # a pi_phi away from pi_ref, as after training (cost does not depend on it)
        for parameter in prm.model.parameters():
            parameter.mul_(1.01)
    lengths = (5, 10) if quick else (5, 10, 20, 40)
    _episode(ImplicitStepRewardWrapper(SokobanEnv(), prm), ["<action>up</action>"] * 2)  # warm-up
    rows, metrics = [], {}
    for turns in lengths:
        actions = [f"<think>turn {t}: try {_MOVES[t % 4]}</think><action>{_MOVES[t % 4]}</action>" for t in range(turns)]
        incremental = ImplicitStepRewardWrapper(SokobanEnv(), prm, context_fn=conversation_context)
        window = ImplicitStepRewardWrapper(SokobanEnv(), prm)
        incremental_s = _cpu_seconds(lambda: _episode(incremental, actions))
        window_s = _cpu_seconds(lambda: _episode(window, actions))
        contexts = _contexts(SokobanEnv(), actions, conversation_context)
        episode_turns = [Turn(context, action) for context, action in zip(contexts, actions)]
        naive_s = _cpu_seconds(lambda: [prm.step_rewards([turn]) for turn in episode_turns])
        final = sum(prm.encode(episode_turns[-1]), [])
        forward_s = _cpu_seconds(lambda: _forward(prm.model, final))
        scorer = prm.episode_scorer()
        for turn in episode_turns:
            scorer.step_reward(turn)
        naive_tokens = sum(len(sum(prm.encode(turn), [])) for turn in episode_turns)
        rows.append(
            {
                "turns": turns,
                "final_tokens": len(final),
                "incremental_tokens": scorer.tokens_processed,
                "naive_tokens": naive_tokens,
                "incremental_s": round(incremental_s, 4),
                "naive_s": round(naive_s, 4),
                "window_s": round(window_s, 4),
                "policy_forward_s": round(forward_s, 4),
                "speedup": round(naive_s / incremental_s, 2),
                "overhead_vs_forward": round(incremental_s / forward_s, 2),
            }
        )
        metrics[f"speedup_T{turns}"] = rows[-1]["speedup"]
        metrics[f"incremental_s_T{turns}"] = rows[-1]["incremental_s"]
        metrics[f"naive_s_T{turns}"] = rows[-1]["naive_s"]
        metrics[f"overhead_vs_forward_T{turns}"] = rows[-1]["overhead_vs_forward"]
    by_turns = {row["turns"]: row for row in rows}
    last, previous = lengths[-1], lengths[-2]
    for name in ("incremental", "naive"):
        growth = by_turns[last][f"{name}_s"] / by_turns[previous][f"{name}_s"]
        metrics[f"{name}_growth_{last}_over_{previous}"] = round(growth, 2)
    token_ratio = by_turns[last]["naive_tokens"] / by_turns[last]["incremental_tokens"]
    metrics[f"token_ratio_naive_over_incremental_T{last}"] = round(token_ratio, 2)
    return {
        "title": TITLE,
        "metrics": metrics,
        "table": rows,
        "notes": (
            f"Model: {model_name}; {torch.get_num_threads()} torch thread; CPU seconds "
            "per episode, including env steps and context building. Tokens count pi_phi only (pi_ref "
            "runs the same). Goals: incremental growth about T ratio (linear), speedup >= 5 at T = 20."
        ),
    }


def _model(quick: bool):
    from transformers import AutoConfig, LlamaForCausalLM

    from istar_gym.llm import load_model
    from istar_gym.llm.default import default_model_dir

    choice = os.environ.get("ISTAR_BENCH_PRM_MODEL", "")
    if choice:
        model, tokenizer = load_model(None if choice == "default" else choice)
        return model, tokenizer, choice
    _, tokenizer = load_model()
    # SmolLM2-135M's own layer shape (width 576, 9 query / 3 key-value heads, MLP 1536), fewer layers:
    # the vocabulary projection then weighs on the cost about as it does in the full model per layer.
    config = AutoConfig.from_pretrained(default_model_dir())
    config.num_hidden_layers = 2 if quick else 8
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    parameters = sum(p.numel() for p in model.parameters()) / 1e6
    name = f"SmolLM2-135M architecture cut to {config.num_hidden_layers} of 30 layers, random init ({parameters:.0f}M parameters)"
    return model, tokenizer, name


def _episode(env, actions) -> None:
    env.reset(seed=0)
    for action in actions:
        env.step(action)  # the unwrapped SokobanEnv has no time limit and keeps stepping after a solve


def _contexts(env, actions, context_fn) -> list:
    observation, info = env.reset(seed=0)
    history, contexts = [], []
    for action in actions:
        contexts.append(context_fn(observation, info, list(history)))
        history.append((observation, action))
        observation, _, _, _, info = env.step(action)
    return contexts


@torch.no_grad()
def _forward(model, ids) -> None:
    model(torch.tensor([ids]), logits_to_keep=1)


def _cpu_seconds(fn) -> float:
    """CPU seconds this process spends in ``fn``: with one thread, that is what the work costs, where
    wall time on a shared machine also counts other processes' turns."""
    start = time.process_time()
    fn()
    return time.process_time() - start
