"""Training throughput: env steps/s and tokens/s of RLOO iterations, with and without iStar, for
the tiny preset beside the settings it had before the learning fix, and for a model the size of
the CPU feasibility study's.

Every variant runs this trainer from one warm start (the tiny preset's), one after the other in
this process; the first iteration is a warm-up and is not counted. Variants:

- ``tiny / rloo v0.1``: the tiny preset's settings before the learning fix (8 tasks x 8 rollouts,
  128-row minibatches, pi_old recomputed by a second forward pass), one torch thread;
- ``tiny / rloo`` and ``tiny / rloo+istar``: the tiny preset (32 x 8 rollouts, 512-row
  minibatches, the sampler's log-probs as pi_old, zero-advantage rows skipped), one thread;
- ``tiny / rloo, 2 threads``: the same on two torch threads (a run that has the machine to itself);
- ``study-size``: a 0.6M-parameter Llama (hidden 128, 3 layers, 4 heads, MLP 512), the size of the
  study's model (`reference/feasibility_cpu_rl.md`), which measured 2.5-3.2 s per RLOO iteration
  and 5.6-6.3 s per iStar iteration of 64 episodes with its own code (quoted, not rerun).

Sizes (`_ITERATIONS`): ``quick`` the tiny variants, 3 iterations; default 5 (tiny) and 3
(study-size); ``full`` adds SmolLM2-135M itself (the default model; on the GPU when there is one)
and runs 11 iterations of each.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from benchmarks._training import V01_PRESET
from benchmarks.repro_sokoban import sokoban_warm_start
from istar_gym.rl.config import PRESETS, TrainConfig
from istar_gym.rl.tiny import TinySpec, prepare_tiny_policy
from istar_gym.rl.trainer import train

_STUDY_SIZE = TinySpec(hidden_size=128, num_layers=3, num_heads=4, intermediate_size=512)
_DEFAULT_MODEL = "smollm2-135m"  # full mode only: the default model, not a tiny one
_ITERATIONS = {  # per mode: the models run and their iterations (the first one is a warm-up)
    "quick": {"tiny": 3},
    "default": {"tiny": 5, "study-size": 3},
    "full": {"tiny": 11, "study-size": 11, _DEFAULT_MODEL: 11},
}
# (variant, iStar, settings over the tiny preset) per model
_VARIANTS = {
    "tiny": [("rloo v0.1", False, V01_PRESET), ("rloo", False, {}), ("rloo+istar", True, {}), ("rloo, 2 threads", False, {"torch_threads": 2})],
    "study-size": [("rloo", False, {}), ("rloo+istar", True, {})],
    _DEFAULT_MODEL: [("rloo", False, {}), ("rloo+istar", True, {})],
}
_STUDY_SECONDS = {False: 2.85, True: 5.95}  # midpoints of the study's measured ranges (64 episodes)


def run(quick: bool = False, full: bool = False) -> dict:
    iterations = _ITERATIONS["quick" if quick else "full" if full else "default"]
    models = list(iterations)
    work = Path(tempfile.mkdtemp(prefix="train-throughput-"))
    rows = []
    for model in models:
        if model == _DEFAULT_MODEL:
            policy, device = "default", "cuda" if torch.cuda.is_available() else "cpu"
        elif model == "tiny":  # the Sokoban comparisons' warm start, shared with them under run_all
            policy, device = sokoban_warm_start(work, quick), "cpu"
        else:
            policy, device = prepare_tiny_policy(work / model, seed=0, spec=_STUDY_SIZE, episodes=100, clean_steps=100), "cpu"
        for variant, istar, settings in _VARIANTS[model]:
            config = TrainConfig(
                **{
                    **PRESETS["tiny"],
                    "model": str(policy),
                    "out": str(work / f"{model}-{variant}"),
                    "istar": istar,
                    "iterations": iterations[model],
                    "eval_episodes": 0,
                    "progress": False,
                    "tensorboard": False,
                    "device": device,
                    **settings,
                }
            )
            timed = train(config)[1:]
            rows.append(
                {
                    "model": model,
                    "variant": variant,
                    "episodes_per_iteration": config.groups * config.group_size,
                    "s_per_iteration": _median(timed, "time_iteration"),
                    "rollout_s": _median(timed, "time_rollout"),
                    "prm_s": _median(timed, "time_prm"),
                    "update_s": _median(timed, "time_update"),
                    "env_steps_per_s": _median(timed, "env_steps_per_s"),
                    "tokens_per_s": _median(timed, "tokens_per_s"),
                }
            )
    metrics = {}
    for row in rows:
        prefix = f"{row['model']}_{row['variant']}".replace("+", "_").replace("-", "_").replace(", ", "_").replace(" ", "_").replace(".", "")
        for key in ("s_per_iteration", "env_steps_per_s", "tokens_per_s"):
            metrics[f"{prefix}_{key}"] = row[key]
    row_of = {(row["model"], row["variant"]): row for row in rows}
    for model in models:
        plain, istar = row_of[(model, "rloo")], row_of[(model, "rloo+istar")]
        metrics[f"{model.replace('-', '_')}_istar_time_ratio"] = istar["s_per_iteration"] / plain["s_per_iteration"]
    tiny_plain, tiny_istar, tiny_v01 = row_of[("tiny", "rloo")], row_of[("tiny", "rloo+istar")], row_of[("tiny", "rloo v0.1")]
    tiny_two = row_of[("tiny", "rloo, 2 threads")]
    metrics["tiny_speedup_vs_v01"] = tiny_plain["env_steps_per_s"] / tiny_v01["env_steps_per_s"]
    metrics["tiny_2_threads_speedup_vs_v01"] = tiny_two["env_steps_per_s"] / tiny_v01["env_steps_per_s"]
    headline = [
        {
            "measure": "RLOO training throughput, tiny preset, env steps/s (1 thread)",
            "ours": tiny_plain["env_steps_per_s"],
            "baseline": "the preset before the learning fix",
            "baseline_value": tiny_v01["env_steps_per_s"],
            "ratio": metrics["tiny_speedup_vs_v01"],
        },
        {
            "measure": "RLOO training throughput, tiny preset, env steps/s (2 threads)",
            "ours": tiny_two["env_steps_per_s"],
            "baseline": "the preset before the learning fix (1 thread)",
            "baseline_value": tiny_v01["env_steps_per_s"],
            "ratio": metrics["tiny_2_threads_speedup_vs_v01"],
        },
        {
            "measure": "RLOO+iStar training throughput, tiny preset, env steps/s",
            "ours": tiny_istar["env_steps_per_s"],
            "baseline": "RLOO alone",
            "baseline_value": tiny_plain["env_steps_per_s"],
            "ratio": tiny_istar["env_steps_per_s"] / tiny_plain["env_steps_per_s"],
        },
    ]
    if "study-size" in models:
        study = row_of[("study-size", "rloo")]
        metrics["tiny_speedup_vs_study_size"] = tiny_plain["env_steps_per_s"] / study["env_steps_per_s"]
        headline.append(
            {
                "measure": "RLOO training throughput, tiny preset, env steps/s",
                "ours": tiny_plain["env_steps_per_s"],
                "baseline": "the study's 0.6M-parameter model",
                "baseline_value": study["env_steps_per_s"],
                "ratio": metrics["tiny_speedup_vs_study_size"],
            }
        )
    return {
        "title": "Training throughput",
        "metrics": metrics,
        "headline": headline,
        "table": [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()} for row in rows],
        "notes": (
            "All variants start from the tiny preset's warm start (the study-size model from a 100-step one). "
            f"Median over {', '.join(f'{n - 1} ({model})' for model, n in iterations.items())} iterations "
            f"after one warm-up; torch threads 1 unless the variant says 2; {os.cpu_count()} CPU cores "
            "visible, shared with whatever else runs. tokens/s counts context + action tokens of all turn rows "
            "per second of iteration. The feasibility study reported "
            f"{_STUDY_SECONDS[False]} s per RLOO and {_STUDY_SECONDS[True]} s per iStar iteration of 64 episodes "
            "with its own code on its 0.6M-parameter model." + (f" {_DEFAULT_MODEL}: the default model, warm start none, on {device}." if full else "")
        ),
    }


def _median(records: list[dict], key: str) -> float:
    return float(np.median([record[key] for record in records]))
