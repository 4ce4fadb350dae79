"""Training throughput: env steps/s and tokens/s of RLOO iterations, with and without iStar, for
the tiny preset beside the trainer as it stood before the learning fix (its code, and its settings
in today's code), and for a model the size of the CPU feasibility study's.

Every variant of this trainer runs from one warm start (the tiny preset's), one after the other in
this process; the first iteration is a warm-up and is not counted. Variants:

- ``tiny / rloo, code before the learning fix``: `V01_COMMIT`'s trainer with its own tiny preset
  and warm start, extracted from this repository's history and run in a subprocess (default and
  full mode; skipped where the history is absent);
- ``tiny / rloo v0.1``: that preset's settings in today's code (8 tasks x 8 rollouts, 128-row
  minibatches, pi_old recomputed by a second forward pass, float32), one torch thread;
- ``tiny / rloo`` and ``tiny / rloo+istar``: the tiny preset (32 x 8 rollouts, 512-row
  minibatches, the sampler's log-probs as pi_old, zero-advantage rows skipped, bfloat16 autocast
  where the CPU has bfloat16 instructions), one thread; ``tiny / rloo, fp32`` the same in float32;
- ``tiny / rloo, 2 threads``: the same on two torch threads, and ``tiny / rloo, 2 processes`` in two
  data-parallel processes of one thread and the preset's 32 groups each (``processes=2, groups=64``,
  as `benchmarks/learning_sokoban.py` runs it on two cores; runs that have the machine to themselves);
- ``study-size``: a 0.6M-parameter Llama (hidden 128, 3 layers, 4 heads, MLP 512), the size of the
  study's model (`reference/feasibility_cpu_rl.md`), which measured 2.5-3.2 s per RLOO iteration
  and 5.6-6.3 s per iStar iteration of 64 episodes with its own code (quoted, not rerun).

Those rows are medians of iterations from the warm start. A run's throughput changes as the policy
learns (episodes get shorter and the copies of a task repeat each other's moves, which the trainer
computes once), so the **whole-run** rows measure it as a training run sees it: the run's env steps
over its seconds of iterations, evaluations excluded (how the 720 env steps/s of the trainer before
the fix were counted: 244k env steps in 338 s of 300 iterations). Each trainer gets the two cores
the best way it can use them: the tiny preset in one process and in two (``processes=2,
groups=64``), the trainer before the fix on one torch thread (its preset) and on two (it has no
process launcher for a 0.1M model's few groups). Every whole run starts from its own warm start.

Sizes (`_ITERATIONS`, `_WHOLE_RUNS`): ``quick`` the tiny variants, 3 iterations, no whole runs;
default 11 (tiny: ten timed, so one slow iteration cannot move the median) and 3 (study-size), and
whole runs of 90 s (the trainer before the fix: 110 iterations, about as long); ``full`` adds
SmolLM2-135M itself (the default model; on the GPU when there is one), runs 11 iterations of each
and whole runs of 300 s (360 iterations).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
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
    "default": {"tiny": 11, "study-size": 3},
    "full": {"tiny": 11, "study-size": 11, _DEFAULT_MODEL: 11},
}
# (variant, iStar, settings over the tiny preset) per model
_VARIANTS = {
    "tiny": [
        ("rloo v0.1", False, V01_PRESET),
        ("rloo", False, {}),
        ("rloo, fp32", False, {"precision": "fp32"}),
        ("rloo+istar", True, {}),
        ("rloo, 2 threads", False, {"torch_threads": 2}),
        ("rloo, 2 processes", False, {"processes": 2, "groups": 2 * PRESETS["tiny"]["groups"]}),
    ],
    "study-size": [("rloo", False, {}), ("rloo+istar", True, {})],
    _DEFAULT_MODEL: [("rloo", False, {}), ("rloo+istar", True, {})],
}
# Whole runs per mode: training seconds of the tiny preset, iterations of the trainer before the fix
# (about 0.8 s each here, so about as long).
_WHOLE_RUNS = {"quick": None, "default": (90.0, 110), "full": (300.0, 360)}
_WHOLE_RUN_VARIANTS = [("rloo", {}), ("rloo, 2 processes", {"processes": 2, "groups": 2 * PRESETS["tiny"]["groups"]})]
_STUDY_SECONDS = {False: 2.85, True: 5.95}  # midpoints of the study's measured ranges (64 episodes)
# Table columns: the median of each logged timing
_COLUMNS = {
    "s_per_iteration": "time_iteration",
    "rollout_s": "time_rollout",
    "prm_s": "time_prm",
    "update_s": "time_update",
    "env_steps_per_s": "env_steps_per_s",
    "tokens_per_s": "tokens_per_s",
}
# The trainer as it stood before the learning fix: its own code, preset and warm start, taken from
# this repository's history and run in a subprocess (default and full mode, where .git is present).
V01_COMMIT = "3c9a744615b2195c03a1a9d76c076f074b15338a"
V01_VARIANT = "rloo, code before the learning fix"
_V01_SCRIPT = """
import json, sys, agents.config as C, agents.train as T, istar_gym
assert istar_gym.__file__.startswith(sys.argv[1]), istar_gym.__file__
settings = {"out": sys.argv[2], "iterations": int(sys.argv[3]), "torch_threads": int(sys.argv[4]), "eval_episodes": 0, "progress": False, "tensorboard": False}
config = C.TrainConfig(**{**C.PRESETS["tiny"], **settings})
print(json.dumps({"episodes": config.groups * config.group_size, "records": T.train(config)}))
"""


def run(quick: bool = False, full: bool = False) -> dict:
    mode = "quick" if quick else "full" if full else "default"
    iterations, whole_runs = _ITERATIONS[mode], _WHOLE_RUNS[mode]
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
            config = _config(policy, work / f"{model}-{variant}", device, istar, iterations[model], settings)
            rows.append(_row(model, variant, config.groups * config.group_size, train(config)))
        if model == "tiny" and whole_runs:
            for variant, settings in _WHOLE_RUN_VARIANTS:
                config = _config(policy, work / f"run-{variant}", device, False, 1_000_000, {"time_budget_s": whole_runs[0], **settings})
                rows.append(_whole_run_row(model, f"{variant}, whole run", config.groups * config.group_size, train(config)))
    # The trainer before the fix: one run on one thread gives its median row (and whole-run row), one on two threads its whole-run row.
    v01_runs = {} if quick else {threads: _v01_code_run(work / f"v01-code-{threads}", whole_runs[1], threads) for threads in (1, 2)}
    v01_code = _row("tiny", V01_VARIANT, *v01_runs[1]) if v01_runs.get(1) else None
    rows += [v01_code] if v01_code else []
    for threads, v01_run in v01_runs.items():
        if v01_run:
            rows.append(_whole_run_row("tiny", f"{V01_VARIANT}{', 2 threads' if threads == 2 else ''}, whole run", *v01_run))
    metrics = {}
    for row in rows:
        prefix = f"{row['model']}_{row['variant']}".replace("+", "_").replace("-", "_").replace(", ", "_").replace(" ", "_").replace(".", "")
        for key in ("s_per_iteration", "env_steps_per_s", "tokens_per_s"):
            if key in row:
                metrics[f"{prefix}_{key}"] = row[key]
    row_of = {(row["model"], row["variant"]): row for row in rows}
    for model in models:
        plain, istar = row_of[(model, "rloo")], row_of[(model, "rloo+istar")]
        metrics[f"{model.replace('-', '_')}_istar_time_ratio"] = istar["s_per_iteration"] / plain["s_per_iteration"]
    tiny_plain, tiny_istar, tiny_v01 = row_of[("tiny", "rloo")], row_of[("tiny", "rloo+istar")], row_of[("tiny", "rloo v0.1")]
    tiny_two = row_of[("tiny", "rloo, 2 processes")]
    metrics["tiny_speedup_vs_v01"] = tiny_plain["env_steps_per_s"] / tiny_v01["env_steps_per_s"]
    metrics["tiny_2_processes_speedup_vs_v01"] = tiny_two["env_steps_per_s"] / tiny_v01["env_steps_per_s"]
    metrics["tiny_2_threads_speedup_vs_1_thread"] = row_of[("tiny", "rloo, 2 threads")]["env_steps_per_s"] / tiny_plain["env_steps_per_s"]
    metrics["tiny_2_processes_speedup_vs_1_process"] = tiny_two["env_steps_per_s"] / tiny_plain["env_steps_per_s"]
    headline = []
    if v01_code:
        for variant, key, cores in (
            ("rloo", "tiny_speedup_vs_v01_code", "1 core"),
            ("rloo, 2 processes", "tiny_2_processes_speedup_vs_v01_code", "2 processes"),
        ):
            metrics[key] = row_of[("tiny", variant)]["env_steps_per_s"] / v01_code["env_steps_per_s"]
            headline.append(
                {
                    "measure": f"RLOO training throughput, tiny preset, env steps/s ({cores})",
                    "ours": row_of[("tiny", variant)]["env_steps_per_s"],
                    "baseline": "the trainer before the learning fix (its code and preset, 1 core)",
                    "baseline_value": v01_code["env_steps_per_s"],
                    "ratio": metrics[key],
                }
            )
    whole = {variant: row_of.get(("tiny", f"{variant}, whole run")) for variant in ("rloo", "rloo, 2 processes", V01_VARIANT, f"{V01_VARIANT}, 2 threads")}
    for ours, baseline, key, cores in (
        ("rloo", V01_VARIANT, "tiny_whole_run_speedup_vs_v01_code", "1 core each"),
        ("rloo, 2 processes", f"{V01_VARIANT}, 2 threads", "tiny_2_processes_whole_run_speedup_vs_v01_code_2_threads", "2 cores each"),
        ("rloo, 2 processes", V01_VARIANT, "tiny_2_processes_whole_run_speedup_vs_v01_code", "2 processes against its 1-thread preset"),
    ):
        if whole[ours] and whole[baseline]:
            metrics[key] = whole[ours]["env_steps_per_s"] / whole[baseline]["env_steps_per_s"]
            headline.append(
                {
                    "measure": f"RLOO training throughput over a whole run from the warm start, env steps/s ({cores})",
                    "ours": whole[ours]["env_steps_per_s"],
                    "baseline": f"the trainer before the learning fix ({baseline.removeprefix(V01_VARIANT).strip(', ') or '1 thread'})",
                    "baseline_value": whole[baseline]["env_steps_per_s"],
                    "ratio": metrics[key],
                }
            )
    headline += [
        {
            "measure": "RLOO training throughput, tiny preset, env steps/s (1 core)",
            "ours": tiny_plain["env_steps_per_s"],
            "baseline": "the preset before the learning fix",
            "baseline_value": tiny_v01["env_steps_per_s"],
            "ratio": metrics["tiny_speedup_vs_v01"],
        },
        {
            "measure": "RLOO training throughput, tiny preset, env steps/s (2 processes)",
            "ours": tiny_two["env_steps_per_s"],
            "baseline": "the preset before the learning fix (1 core)",
            "baseline_value": tiny_v01["env_steps_per_s"],
            "ratio": metrics["tiny_2_processes_speedup_vs_v01"],
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
            "after one warm-up, except the whole runs: a run's env steps over its seconds of iterations "
            + (
                f"({whole_runs[0]:.0f} s of training for this trainer, {whole_runs[1]} iterations of the one before the fix, whose median row comes from its 1-thread run)"
                if whole_runs
                else "(not in quick mode)"
            )
            + f"; one torch thread per process, one process unless the variant says 2 threads or 2 processes (the preset's 32 groups in each); {os.cpu_count()} CPU cores "
            "visible, shared with whatever else runs. tokens/s counts context + action tokens of all turn rows "
            "per second of iteration. The feasibility study reported "
            f"{_STUDY_SECONDS[False]} s per RLOO and {_STUDY_SECONDS[True]} s per iStar iteration of 64 episodes "
            "with its own code on its 0.6M-parameter model. The tiny preset's precision on this machine: "
            f"{TrainConfig(**PRESETS['tiny']).resolved_precision()} ('rloo, fp32' forces float32; 'rloo v0.1' is float32 too). "
            + (
                f"'rloo, code before the learning fix': the trainer, preset and warm start of commit {V01_COMMIT[:7]}, run from "
                "this repository's history in a subprocess, 1 thread unless it says 2."
                if v01_code
                else "The trainer before the learning fix runs in default and full mode where the git history is present."
            )
            + (f" {_DEFAULT_MODEL}: the default model, warm start none, on {device}." if full else "")
        ),
    }


def _v01_code_run(work: Path, iterations: int, threads: int = 1) -> tuple[int, list[dict]] | None:
    """`V01_COMMIT`'s trainer with its tiny preset (which builds its own warm start) on ``threads``
    torch threads: its episodes per iteration and its per-iteration records, timed as the other rows
    are; ``None`` where the repository's history is not at hand (an installed copy)."""
    root = Path(__file__).resolve().parents[1]
    if shutil.which("git") is None:
        return None
    found = subprocess.run(["git", "-C", str(root), "cat-file", "-e", f"{V01_COMMIT}^{{commit}}"], check=False, capture_output=True)
    if found.returncode != 0:
        return None
    archive = subprocess.run(["git", "-C", str(root), "archive", "--format=tar", V01_COMMIT], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:  # this repository's own commit
        tar.extractall(work / "code", filter="data")
    code = str(work / "code")
    done = subprocess.run(
        [sys.executable, "-c", _V01_SCRIPT, code, str(work / "run"), str(iterations), str(threads)],
        check=False,
        cwd=code,
        env={**os.environ, "PYTHONPATH": code},
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the trainer of {V01_COMMIT[:7]} failed:\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["episodes"], result["records"]


def _config(policy: str | Path, out: Path, device: str, istar: bool, iterations: int, settings: dict) -> TrainConfig:
    """The tiny preset on ``policy``, without evaluations, changed by ``settings``."""
    return TrainConfig(
        **{
            **PRESETS["tiny"],
            "model": str(policy),
            "out": str(out),
            "istar": istar,
            "iterations": iterations,
            "eval_episodes": 0,
            "progress": False,
            "tensorboard": False,
            "device": device,
            **settings,
        }
    )


def _whole_run_row(model: str, variant: str, episodes: int, records: list[dict]) -> dict:
    """A whole run's env steps over its seconds of iterations, every iteration counted."""
    seconds = sum(record["time_iteration"] for record in records)
    env_steps = sum(record["env_steps"] for record in records)
    return {
        "model": model,
        "variant": variant,
        "episodes_per_iteration": episodes,
        "measured": f"whole run: {len(records)} iterations, {seconds:.0f} s",
        "env_steps": env_steps,
        "env_steps_per_s": env_steps / seconds,
    }


def _row(model: str, variant: str, episodes: int, records: list[dict]) -> dict:
    """A table row: medians over the iterations after the first (a warm-up)."""
    timed = records[1:]
    return {
        "model": model,
        "variant": variant,
        "episodes_per_iteration": episodes,
        "measured": f"median of {len(timed)} iterations",
        **{name: _median(timed, key) for name, key in _COLUMNS.items()},
    }


def _median(records: list[dict], key: str) -> float:
    return float(np.median([record[key] for record in records]))
