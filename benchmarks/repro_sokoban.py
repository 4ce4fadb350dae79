"""Does iStar help at CPU scale? RLOO, GRPO and REINFORCE++, each with and without implicit step
rewards, beside the other rows of the paper's table (GiGPO, PRIME, PPO with a critic), from one
warm-started tiny policy on Sokoban, at an equal env-step budget.

Every run starts from the same SFT policy, trains on the standard 6x6 / 1-box level distribution
(where RL learns within minutes) and is evaluated on the same fixed held-out levels: the test split
(disjoint from training by level hash), restricted to levels needing at least 3 moves so that random
play is weak. Reported per variant, mean +- std over seeds: final and best held-out success, the
area under the success curve (mean over evaluations), final episode length, and credit-assignment
accuracy (`istar_gym.rl.credit_metrics`), next to the random-play and SFT baselines; curves as PNG. The
tuned iStar setting found by `benchmarks/istar_variants.py` runs beside the paper's.

Sizes: ``quick`` (a smoke test) 1 seed of rloo, rloo+istar, gigpo, prime and ppo, 2,000 env steps
per run, 64 levels, a cut warm start; default the rows of `DEFAULT_ROWS` (all but GRPO and
REINFORCE++ with iStar), 3 seeds, 30,000 env steps per run (about 11 iterations; RLOO's held-out success rose from 0.24 to 0.39 by 30k steps and to
0.52 by 60k when the default was 60k), evaluated on 200 levels every 5 iterations and at the end,
about 8 min on 2 cores; ``full`` every row of `VARIANTS` (GRPO and REINFORCE++ with iStar too), 3
seeds, 409,600 env steps per run.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from benchmarks._training import credit_headline, plot_success_curves, summarise_variant, train_many
from istar_gym.rl.config import PRESETS, TrainConfig
from istar_gym.rl.rollout import random_play_success
from istar_gym.rl.tiny import prepare_tiny_policy, unflattened_policy

TRAIN_KWARGS: dict = {}
EVAL_KWARGS = {"split": "test", "min_optimal_steps": 3}
# Stands for the warm start's clean SFT policy (its baked temperature taken out) in a setting;
# `sokoban_config` puts in its path.
CLEAN_SFT = "<clean SFT policy>"
# The best iStar setting of `benchmarks/istar_variants.py`: the PRM starts from the clean SFT policy,
# a better policy than the flattened one RL starts from (the issue's "a PRM started from a better
# policy"). Over 3 seeds at 30k env steps: held-out success 0.480 against RLOO's 0.390, step-reward
# credit rank accuracy 0.89. The same PRM never trained does as well (`STATIC_ROW`).
TUNED_ISTAR = {"prm_model": CLEAN_SFT}
TUNED_ROW = "rloo+istar, PRM from the clean SFT"
# Its control: the same PRM never trained (a static PRM), what the PRM's start alone gives.
STATIC_ROW = "rloo+istar, static clean-SFT PRM"
VARIANTS: dict[str, dict] = {
    **{f"{algo}{suffix}": {"algo": algo, "istar": istar} for algo in ("rloo", "grpo", "reinforce_pp") for suffix, istar in (("", False), ("+istar", True))},
    TUNED_ROW: {"algo": "rloo", "istar": True, **TUNED_ISTAR},
    STATIC_ROW: {"algo": "rloo", "istar": True, **TUNED_ISTAR, "prm_updates": 0},
    # GiGPO: GRPO's episode advantage plus same-state step advantages (verl-agent's mean_std mode).
    "gigpo": {"algo": "grpo", "gigpo": True},
    # PRIME: a cross-entropy implicit PRM against the frozen SFT policy, rewards combined through RLOO returns.
    "prime": {"algo": "rloo", "prime": True},
    # PPO with a critic (a value model copied from the policy, turn-level GAE): the paper's critic baseline.
    "ppo": {"algo": "ppo"},
}
# The default run's rows (the paper table's methods and the tuned iStar); --full runs all of VARIANTS.
# Plain GRPO and REINFORCE++ would add about 70 s to the default run on 2 cores.
DEFAULT_ROWS = ["rloo", "grpo", "reinforce_pp", "rloo+istar", TUNED_ROW, STATIC_ROW, "gigpo", "prime", "ppo"]
FULL_BUDGET = 200 * 256 * 8


def run(quick: bool = False, full: bool = False) -> dict:
    seeds = [0] if quick else [0, 1, 2]
    names = ["rloo", "rloo+istar", "gigpo", "prime", "ppo"] if quick else list(VARIANTS) if full else DEFAULT_ROWS
    budget = 2_000 if quick else (FULL_BUDGET if full else 30_000)
    eval_episodes = 64 if quick else 200
    eval_every = 2 if quick else 5
    out = Path(os.environ.get("ISTAR_BENCH_OUT") or tempfile.mkdtemp(prefix="repro-sokoban-"))
    work = Path(tempfile.mkdtemp(prefix="repro-sokoban-runs-"))
    policy = sokoban_warm_start(work, quick)
    random_success = random_play_success("istar/Sokoban-v0", EVAL_KWARGS, range(eval_episodes), max_turns=15, seed=0)
    configs = [sokoban_config(policy, work / f"{name}-{seed}", seed, budget, eval_episodes, eval_every, **VARIANTS[name]) for name in names for seed in seeds]
    records = iter(train_many(configs))
    runs = {name: [next(records) for _ in seeds] for name in names}
    table = [summarise_variant(name, seed_runs, step_channel="istar" in name or name == "prime") for name, seed_runs in runs.items()]
    sft_success = float(np.mean([seed_run[0]["eval_success"] for seed_runs in runs.values() for seed_run in seed_runs]))
    metrics = {"random_success": random_success, "sft_success": sft_success}
    for row in table:
        for key in ("final_success_mean", "best_success_mean", "auc_mean", "credit_rank_accuracy_mean"):
            if np.isfinite(row[key]):
                metrics[f"{row['variant'].replace(' ', '_')}_{key}"] = row[key]
    baselines = {"random play": random_success, "SFT start": sft_success}
    return {
        "title": "Sokoban at CPU scale: RLOO / GRPO / REINFORCE++ with and without iStar, GiGPO, PRIME",
        "metrics": metrics,
        "headline": credit_headline(table, "Sokoban held-out success", "final_success_mean"),
        "table": table,
        "plots": [plot_success_curves(runs, out / "repro_sokoban_curves.png", baselines)],
        "notes": (
            f"tiny preset; trains on 6x6 / 1-box levels, evaluates on {eval_episodes} held-out test-split levels "
            f"needing >= {EVAL_KWARGS['min_optimal_steps']} moves (sampled at temperature 1) every {eval_every} iterations "
            f"and at the end; {len(seeds)} seed(s), {budget} training env steps per run, every row from the same warm start. "
            f"Random play: {random_success:.3f}; SFT start: {sft_success:.3f}. "
            f"Credit columns: the step reward's (iStar and PRIME rows) or the whole advantage's (others). "
            f"{TUNED_ROW}: the best setting of benchmarks/istar_variants.py (the PRM starts from the warm start's "
            f"clean SFT policy, its baked temperature taken out); {STATIC_ROW}: the same PRM, never trained. "
            + (
                "Quick mode: a smoke test (cut warm start, tiny budget)."
                if quick
                else "Full mode: every row at the paper-scale budget."
                if full
                else f"Default mode: {len(names)} rows; --full adds {', '.join(sorted(set(VARIANTS) - set(names)))} and {FULL_BUDGET} env steps per run."
            )
        ),
    }


def sokoban_warm_start(work: Path, quick: bool) -> Path:
    """The tiny preset's SFT policy, which this module, `benchmarks/istar_variants.py`,
    `benchmarks/learning_sokoban.py` and `benchmarks/train_throughput.py` start from. Under
    `benchmarks/run_all.py` it is kept in ``$ISTAR_BENCH_OUT/warm_starts`` and built by the first of
    them only (about 26 s on one core saved per later one; the build is deterministic, the same
    weights byte for byte), else under ``work``. --quick only checks the pipeline end to end, so
    its warm start is cut short."""
    name = "sokoban-quick" if quick else "sokoban"
    root = os.environ.get("ISTAR_BENCH_OUT")
    target = Path(root) / "warm_starts" / name if root else work / name
    short = {"episodes": 100, "clean_steps": 100} if quick else {}
    return prepare_tiny_policy(target, seed=0, env_kwargs=TRAIN_KWARGS, **short)


def sokoban_config(policy: Path, out: Path, seed: int, budget: int, eval_episodes: int, eval_every: int, **overrides) -> TrainConfig:
    """The tiny-preset run of this comparison (also used by `benchmarks/istar_variants.py`)."""
    if overrides.get("prm_model") == CLEAN_SFT:
        temperature = PRESETS["tiny"].get("sft_temperature", TrainConfig.sft_temperature)
        overrides["prm_model"] = str(unflattened_policy(policy, policy.with_name(policy.name + "-clean"), temperature))
    return TrainConfig(
        **{
            **PRESETS["tiny"],
            "model": str(policy),
            "out": str(out),
            "seed": seed,
            "env_kwargs": TRAIN_KWARGS,
            "eval_env_kwargs": EVAL_KWARGS,
            "env_step_budget": budget,
            "iterations": 100_000,
            "eval_episodes": eval_episodes,
            "eval_every": eval_every,
            "progress": False,
            "tensorboard": False,
            **overrides,
        }
    )
