"""Training throughput: env steps/s and tokens/s of RLOO iterations with and without iStar,
for the tiny preset and, side by side, a model the size of the CPU feasibility study's.

Every variant runs this trainer with the tiny preset's shape (8 tasks x 8 rollouts, up to 15 turns,
one torch thread), one after the other in this process; the first iteration is a warm-up and is not
counted. ``study-size`` is a 0.6M-parameter Llama (hidden 128, 3 layers, 4 heads, MLP 512), the size
of the study's model (`reference/feasibility_cpu_rl.md`), which measured 2.5-3.2 s per RLOO iteration
and 5.6-6.3 s per iStar iteration with its own code; those numbers are quoted in the table, the
study-size rows are measured here.

Sizes (`_ITERATIONS`): ``quick`` the tiny model alone, 3 iterations; default tiny 6 and study-size
4 (iteration times are wall time, so on a shared machine the tiny model's short iterations need more
of them for a steady median); ``full`` adds SmolLM2-135M itself (the default model; on the GPU when
there is one) and runs 11 iterations of each.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from agents.config import PRESETS, TrainConfig
from agents.tiny import TinySpec, prepare_tiny_policy
from agents.train import train

_MODELS = {"tiny": TinySpec(), "study-size": TinySpec(hidden_size=128, num_layers=3, num_heads=4, intermediate_size=512)}
_DEFAULT_MODEL = "smollm2-135m"  # full mode only: the default model, not a tiny one
_ITERATIONS = {  # per mode: the models run and their iterations (the first one is a warm-up)
    "quick": {"tiny": 3},
    "default": {"tiny": 6, "study-size": 4},
    "full": {"tiny": 11, "study-size": 11, _DEFAULT_MODEL: 11},
}
_STUDY_SECONDS = {False: 2.85, True: 5.95}  # midpoints of the study's measured ranges


def run(quick: bool = False, full: bool = False) -> dict:
    iterations = _ITERATIONS["quick" if quick else "full" if full else "default"]
    models = list(iterations)
    work = Path(tempfile.mkdtemp(prefix="train-throughput-"))
    rows = []
    for model in models:
        if model == _DEFAULT_MODEL:
            policy, device = "default", "cuda" if torch.cuda.is_available() else "cpu"
        else:
            policy, device = prepare_tiny_policy(work / model, seed=0, clean_steps=20, noisy_steps=0, spec=_MODELS[model]), "cpu"
        for istar in (False, True):
            config = TrainConfig(
                **{**PRESETS["tiny"], "model": str(policy), "out": str(work / f"{model}-{istar}"), "istar": istar,
                   "iterations": iterations[model], "eval_episodes": 0, "progress": False, "tensorboard": False,
                   "device": device}
            )
            timed = train(config)[1:]
            rows.append({
                "model": model,
                "variant": "rloo+istar" if istar else "rloo",
                "s_per_iteration": _median(timed, "time_iteration"),
                "rollout_s": _median(timed, "time_rollout"),
                "prm_s": _median(timed, "time_prm"),
                "update_s": _median(timed, "time_update"),
                "env_steps_per_s": _median(timed, "env_steps_per_s"),
                "tokens_per_s": _median(timed, "tokens_per_s"),
                "study_reported_s_per_iteration": _STUDY_SECONDS[istar],
            })
    metrics = {}
    for row in rows:
        prefix = f"{row['model']}_{row['variant']}".replace("+", "_").replace("-", "_")
        for key in ("s_per_iteration", "env_steps_per_s", "tokens_per_s"):
            metrics[f"{prefix}_{key}"] = row[key]
    for model in models:
        plain, istar = (r for r in rows if r["model"] == model)
        metrics[f"{model.replace('-', '_')}_istar_time_ratio"] = istar["s_per_iteration"] / plain["s_per_iteration"]
    tiny_plain, tiny_istar = rows[0], rows[1]
    headline = [{
        "measure": "RLOO+iStar training iteration, tiny preset, s", "ours": tiny_istar["s_per_iteration"],
        "baseline": "RLOO alone", "baseline_value": tiny_plain["s_per_iteration"],
        "ratio": tiny_plain["s_per_iteration"] / tiny_istar["s_per_iteration"],
    }]
    if "study-size" in models:
        metrics["tiny_speedup_vs_study_size"] = rows[2]["s_per_iteration"] / rows[0]["s_per_iteration"]
        headline.append({
            "measure": "RLOO training iteration, tiny preset, s", "ours": tiny_plain["s_per_iteration"],
            "baseline": "the study's 0.6M-parameter model", "baseline_value": rows[2]["s_per_iteration"],
            "ratio": metrics["tiny_speedup_vs_study_size"],
        })
    return {
        "title": "Training throughput (64 episodes per iteration)",
        "metrics": metrics,
        "headline": headline,
        "table": [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()} for row in rows],
        "notes": (
            "Policies are warm-started for 20 steps only: near-random play runs most episodes to the 15-turn "
            "limit, the most turn rows an iteration can have. "
            f"Median over {', '.join(f'{n - 1} ({model})' for model, n in iterations.items())} iterations "
            f"after one warm-up; torch threads 1; {os.cpu_count()} CPU cores "
            "visible, shared with whatever else runs. istar_time_ratio = s per iStar iteration / s per RLOO "
            "iteration. tokens/s counts context + action tokens of all turn rows per second of iteration."
            + (f" {_DEFAULT_MODEL}: the default model, warm start none, on {device}." if full else "")
        ),
    }


def _median(records: list[dict], key: str) -> float:
    return float(np.median([record[key] for record in records]))
