"""Does RL learn? The tiny preset's RLOO beside Stable-Baselines3 PPO on Sokoban, in one run.

The learners train on the same 6x6 / 1-box level distribution for the same training seconds and
are evaluated on the same held-out levels (test split, needing >= 3 moves, sampling at temperature 1):

- ``rloo``: our trainer with the tiny preset, from the preset's warm start (clean SFT with a
  temperature of 3 baked in: good features, a weak policy);
- ``rloo lr annealed`` (``full`` only): the same with ``lr_schedule="linear"``, its learning rate
  falling to 0 over the training seconds, to see whether late evaluations stay at their best;
- ``sb3 ppo``: Stable-Baselines3 PPO, ``MlpPolicy`` from scratch on a one-hot board
  (`benchmarks/_sb3_ppo.py`): a critic, GAE and no LLM, the standard peer;
- ``rloo v0.1``: the trainer as it stood before the learning fix (its warm start, whose second
  phase trained every weight on 60%-random moves; 8 x 8 rollouts; 128-row minibatches at lr 1e-3;
  a recomputed pi_old), one seed, to show what changed (not in the default run).

Reported per learner, mean +- std over seeds: start, final and best held-out success, the gain,
held-out success after fixed numbers of training seconds (from each curve), and curves against env
steps and against training seconds (PNG). Training seconds exclude evaluations. By default every
run has one torch thread and the machine's cores run one run each; with ``cores_per_run`` N > 1
the runs take N cores each, one after the other, each learner the way its library uses several
cores: our trainer in N data-parallel processes (``processes=N``) of the preset's 32 groups each
(``groups=32N``: a data-parallel run scales its batch with its processes, as DDP trainers keep the
per-device batch; one 600-s seed with 16 groups per process was behind at every evaluation,
docs/learning.md), SB3's PPO with N torch threads (its ``SubprocVecEnv`` was slower,
`benchmarks/_sb3_ppo.py`). ``groups_per_process`` changes the RLOO learners' groups per process: two
600-s runs of 64 each ended above PPO, where 32 each was level with it late (docs/learning.md).

Sizes: ``quick`` (a smoke test) 1 seed of each learner, 20 s per run, 64 levels, cut warm starts;
default 3 seeds of rloo and sb3 ppo, no rloo v0.1, 40 s per run, 200 levels (about 3 min on 2
cores); ``full`` 3 seeds (1 of rloo v0.1), 600 s per run (the 10-minute target, about an hour).
Alone, with a subset of learners (the 600-s comparison in docs/benchmarks/learning_full):

    python -m benchmarks.learning_sokoban --full --learners "rloo lr annealed,sb3 ppo" --out DIR
    python -m benchmarks.learning_sokoban --full --learners "rloo lr annealed,sb3 ppo" --cores-per-run 2 --out DIR
    python -m benchmarks.learning_sokoban --full --learners "rloo lr annealed,sb3 ppo" --cores-per-run 2 --groups-per-process 64 --out DIR
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import numpy as np

from benchmarks._sb3_ppo import train_sb3_ppo
from benchmarks._training import V01_PRESET, eval_curve, run_alone, run_parallel, train_one
from benchmarks.repro_sokoban import sokoban_warm_start
from istar_gym.rl.config import PRESETS, TrainConfig
from istar_gym.rl.rollout import random_play_success
from istar_gym.rl.tiny import prepare_tiny_policy

EVAL_KWARGS = {"split": "test", "min_optimal_steps": 3}
LEARNERS = ("rloo", "sb3 ppo", "rloo lr annealed", "rloo v0.1")
_TITLES = {"rloo": "RLOO", "rloo lr annealed": "RLOO with a linearly annealed learning rate"}
# The warm start before the learning fix (docs/learning.md).
V01_WARM_START = {"clean_steps": 250, "noisy_steps": 100, "noise": 0.6, "temperature": 1.0}


def run(
    quick: bool = False,
    full: bool = False,
    learners: Sequence[str] | None = None,
    cores_per_run: int = 1,
    groups_per_process: int = PRESETS["tiny"]["groups"],
) -> dict:
    """``learners`` picks a subset of the mode's learners (``sb3 ppo`` and one RLOO learner at least);
    ``cores_per_run`` > 1 gives each run that many cores, one run at a time; ``groups_per_process``
    sets the RLOO learners' groups per process (the preset's 32 by default)."""
    # The before-the-fix row needs a warm start of its own and a core for a whole run, so the
    # default leaves it to --full (--quick keeps it, cut short, to test its path). "rloo lr annealed"
    # is the same RLOO with its learning rate annealed linearly to 0 over the training seconds (as
    # CleanRL's PPO does): does it keep the late evaluations at their best?
    learners = list(learners or ["rloo", "sb3 ppo"] + ["rloo lr annealed"] * full + ["rloo v0.1"] * (quick or full))
    unknown = set(learners) - set(LEARNERS)
    if unknown or "sb3 ppo" not in learners or not set(learners) & {"rloo", "rloo lr annealed"}:
        raise ValueError(f"learners={learners}: choose from {LEARNERS}, with sb3 ppo and an RLOO learner")
    if not 1 <= cores_per_run <= (os.cpu_count() or 1):
        raise ValueError(f"cores_per_run={cores_per_run}: use 1 to {os.cpu_count()} (this machine's cores)")
    if groups_per_process < 1:
        raise ValueError(f"groups_per_process={groups_per_process}: use at least 1 (the preset: {PRESETS['tiny']['groups']})")
    seeds = [0] if quick else [0, 1, 2]
    seconds = 20 if quick else 600 if full else 40
    eval_levels = 64 if quick else 200
    out = Path(os.environ.get("ISTAR_BENCH_OUT") or tempfile.mkdtemp(prefix="learning-sokoban-"))
    work = Path(tempfile.mkdtemp(prefix="learning-sokoban-runs-"))
    warm = sokoban_warm_start(work, quick)
    # About 15-20 evaluations per run whatever the budget (an RLOO iteration takes 1-1.5 s).
    every = max(1, seconds // 20)
    per_process = {"processes": cores_per_run, "groups": groups_per_process * cores_per_run}
    ours = partial(_rloo_config, seconds=seconds, eval_levels=eval_levels, eval_every=every, **per_process)
    tasks: dict[str, list[Callable[[], list[dict]]]] = {}
    if "rloo" in learners:
        tasks["rloo"] = [partial(train_one, ours(warm, work / f"rloo-{seed}", seed)) for seed in seeds]
    tasks["sb3 ppo"] = [
        partial(train_sb3_ppo, seed, time_budget_s=seconds, eval_levels=eval_levels, eval_every_s=seconds / 12, torch_threads=cores_per_run) for seed in seeds
    ]
    if "rloo lr annealed" in learners:
        tasks["rloo lr annealed"] = [partial(train_one, ours(warm, work / f"rloo-annealed-{seed}", seed, lr_schedule="linear")) for seed in seeds]
    with_v01 = "rloo v0.1" in learners
    if with_v01:
        short = {"episodes": 100, "clean_steps": 100} if quick else {}
        warm_v01 = prepare_tiny_policy(work / "warm-v01", seed=0, **{**V01_WARM_START, **short})
        tasks["rloo v0.1"] = [partial(train_one, ours(warm_v01, work / "rloo-v01-0", 0, **V01_PRESET))]
    # Interleaved, so that each RLOO run shares the machine with a PPO run, as each PPO run does
    # with an RLOO run: on the 2-core machine two RLOO runs side by side took 950 env steps/s each,
    # one beside a PPO run 1,800 (shared caches or memory bandwidth; not pinned down).
    first = "rloo" if "rloo" in tasks else "rloo lr annealed"  # the RLOO learner paired with PPO
    order = [(name, index) for index in range(len(seeds)) for name in (first, "sb3 ppo")]
    if first == "rloo" and "rloo lr annealed" in tasks:
        order += [("rloo lr annealed", index) for index in range(len(seeds))]
    order += [("rloo v0.1", 0)] * with_v01
    workers = None if cores_per_run == 1 else 1  # a run of several cores has the machine to itself
    results = dict(zip(order, run_parallel([tasks[name][index] for name, index in order], workers)))
    runs = {name: [results[(name, index)] for index in range(len(group))] for name, group in tasks.items()}

    checkpoints = [t for t in (30, 60, 120, 300) if t < seconds] + [seconds]
    table = [_summarise(name, seed_runs, checkpoints) for name, seed_runs in runs.items()]
    random_success = random_play_success("istar/Sokoban-v0", EVAL_KWARGS, range(eval_levels), max_turns=15, seed=0)
    metrics = {"random_success": random_success}
    for row in table:
        prefix = row["learner"].replace(" ", "_").replace(".", "")
        for key, value in row.items():
            if key.endswith("_mean") and np.isfinite(value):
                metrics[f"{prefix}_{key}"] = value
    rows = {row["learner"]: row for row in table}
    rloo, ppo = rows[first], rows["sb3 ppo"]
    at = f"success_at_{checkpoints[-1]}s_mean"
    headline = [
        {
            "measure": f"Sokoban held-out success after {checkpoints[-1]} s of training, {_TITLES[first]} (tiny LLM policy)",
            "ours": rloo[at],
            "baseline": "SB3 PPO (MLP, one-hot board)",
            "baseline_value": ppo[at],
        },
    ]
    if ppo[at] > 0:
        headline[0]["ratio"] = rloo[at] / ppo[at]
    if with_v01:
        headline.insert(
            0,
            {
                "measure": f"Sokoban held-out success gain of RLOO in {seconds} s of training",
                "ours": rloo["gain_mean"],
                "baseline": "RLOO as before the learning fix",
                "baseline_value": rows["rloo v0.1"]["gain_mean"],
            },
        )
    return {
        "title": "Learning: RLOO (tiny preset) beside SB3 PPO on Sokoban",
        "metrics": metrics,
        "headline": headline,
        "table": table,
        "plots": [_plot(runs, out / "learning_sokoban_curves.png", random_success)],
        "curves": {
            name: [dict(zip(("seconds", "env_steps", "success"), map(np.ndarray.tolist, eval_curve(records)))) for records in seed_runs]
            for name, seed_runs in runs.items()
        },
        "notes": (
            f"{seconds} s of training per run (evaluations excluded); {len(seeds)} seed(s)"
            + (", 1 for rloo v0.1; " if with_v01 else "; rloo v0.1 (the trainer before the learning fix) runs in --full only; ")
            + f"{eval_levels} held-out test-split levels needing >= 3 moves, sampled at temperature 1; "
            f"random play {random_success:.3f}. success_at_Ts: each seed's curve at T training seconds, linear "
            "between the evaluations around T (learners evaluate at different times; the last evaluation "
            "before T would date one learner's value back further than another's). curves: every evaluation. "
            + (
                "One torch thread per run, one run per core."
                if cores_per_run == 1
                else f"{cores_per_run} cores per run, one run at a time: RLOO in {cores_per_run} data-parallel processes "
                f"(one torch thread and {groups_per_process} groups each), SB3 PPO with {cores_per_run} torch threads."
            )
        ),
    }


def _rloo_config(policy: Path, out: Path, seed: int, *, seconds: float, eval_levels: int, eval_every: int, **overrides) -> TrainConfig:
    return TrainConfig(
        **{
            **PRESETS["tiny"],
            "model": str(policy),
            "out": str(out),
            "seed": seed,
            "eval_env_kwargs": EVAL_KWARGS,
            "time_budget_s": seconds,
            "iterations": 1_000_000,
            "eval_episodes": eval_levels,
            "eval_every": eval_every,
            "progress": False,
            "tensorboard": False,
            **overrides,
        }
    )


def _summarise(name: str, seed_runs: list[list[dict]], checkpoints: list[int]) -> dict:
    columns: dict[str, list[float]] = {"start": [], "final": [], "best": [], "gain": [], "env_steps": []}
    columns.update({f"success_at_{t}s": [] for t in checkpoints})
    for records in seed_runs:
        seconds, steps, success = eval_curve(records)
        columns["start"].append(success[0])
        columns["final"].append(success[-1])
        columns["best"].append(success.max())
        columns["gain"].append(success[-1] - success[0])
        columns["env_steps"].append(steps[-1])
        for t in checkpoints:  # the curve at t, between the evaluations around it (the last one past its end)
            columns[f"success_at_{t}s"].append(float(np.interp(t, seconds, success)))
    row: dict = {"learner": name, "seeds": len(seed_runs)}
    for key, values in columns.items():
        row[f"{key}_mean"] = round(float(np.mean(values)), 4)
        row[f"{key}_std"] = round(float(np.std(values)), 4)
    return row


def _plot(runs: dict[str, list[list[dict]]], path: Path, random_success: float) -> str:
    """Mean +- std held-out success against env steps and against training seconds (each seed's
    curve interpolated onto a common grid, up to the shortest seed's end)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for name, seed_runs in runs.items():
        curves = [eval_curve(records) for records in seed_runs]
        for axis, column, label in ((axes[0], 1, "training env steps"), (axes[1], 0, "training seconds")):
            end = min(curve[column][-1] for curve in curves)
            grid = np.linspace(0, end, 50)
            values = np.array([np.interp(grid, curve[column], curve[2]) for curve in curves])
            mean, std = values.mean(0), values.std(0)
            axis.plot(grid, mean, label=name, linestyle=":" if "v0.1" in name else "-")
            axis.fill_between(grid, mean - std, mean + std, alpha=0.15)
            axis.set_xlabel(label)
    for axis in axes:
        axis.axhline(random_success, color="grey", linewidth=0.8, linestyle=":", label="random play")
    axes[0].set_xscale("symlog", linthresh=1e4)
    axes[0].set_xlim(left=0)
    axes[0].set_ylabel("held-out success (levels needing >= 3 moves)")
    axes[1].legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return str(path)


if __name__ == "__main__":
    run_alone("learning_sokoban", run, {"learners": lambda text: [name.strip() for name in text.split(",")], "cores_per_run": int, "groups_per_process": int})
