"""Does iStar help at CPU scale? RLOO, GRPO and REINFORCE++, each with and without implicit step
rewards, from one warm-started tiny policy on Sokoban, at an equal env-step budget.

Every run starts from the same SFT policy and is evaluated on the same fixed held-out levels (the
test split, disjoint from training by level hash; ``min_optimal_steps`` keeps levels hard enough
that random play is weak). Reported per variant, mean +- std over seeds: final and best held-out
success, the area under the success curve (mean over evaluations), final episode length, and the
credit-assignment accuracy of the step reward (`agents.credit_metrics`), next to the random-play
and SFT baselines. Curves are written as PNG.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from agents.config import PRESETS, TrainConfig
from agents.rollout import random_play_success
from agents.tiny import prepare_tiny_policy
from agents.train import train

VARIANTS = [(algo, istar) for algo in ("rloo", "grpo", "reinforce_pp") for istar in (False, True)]
ENV_KWARGS = {"min_optimal_steps": 3}


def run(quick: bool = False, full: bool = False) -> dict:
    seeds = [0] if quick else [0, 1, 2]
    variants = VARIANTS[:2] if quick else VARIANTS
    budget = 2_000 if quick else (200 * 256 * 8 if full else 20_000)
    eval_episodes = 64 if quick else 200
    out = Path(os.environ.get("ISTAR_BENCH_OUT") or tempfile.mkdtemp(prefix="repro-sokoban-"))
    work = Path(tempfile.mkdtemp(prefix="repro-sokoban-runs-"))
    # --quick only checks the pipeline end to end, so its warm start is cut short.
    sft = {"episodes": 100, "clean_steps": 100, "noisy_steps": 20} if quick else {}
    policy = prepare_tiny_policy(work / "sft", seed=0, env_kwargs=ENV_KWARGS, **sft)
    random_success = random_play_success(
        "istar/Sokoban-v0", {**ENV_KWARGS, "split": "test"}, range(eval_episodes), max_turns=15, seed=0
    )
    runs: dict[str, list[list[dict]]] = {}
    for algo, istar in variants:
        name = f"{algo}{'+istar' if istar else ''}"
        for seed in seeds:
            config = TrainConfig(
                **{
                    **PRESETS["tiny"], "model": str(policy), "out": str(work / f"{name}-{seed}"), "algo": algo,
                    "istar": istar, "seed": seed, "env_kwargs": ENV_KWARGS, "env_step_budget": budget,
                    "iterations": 10_000, "eval_episodes": eval_episodes, "eval_every": 2 if quick else 5,
                    "progress": False, "tensorboard": False,
                }
            )
            train(config)
            records = [json.loads(line) for line in (Path(config.out) / "metrics.jsonl").read_text().splitlines()]
            runs.setdefault(name, []).append(records)
    table = [_summarise(name, seed_runs) for name, seed_runs in runs.items()]
    sft_success = float(np.mean([records[0]["eval_success"] for seed_runs in runs.values() for records in seed_runs]))
    metrics = {"random_success": random_success, "sft_success": sft_success}
    for row in table:
        for key in ("final_success_mean", "best_success_mean", "auc_mean", "credit_step_rank_accuracy_mean"):
            if key in row and row[key] is not None:
                metrics[f"{row['variant']}_{key}"] = row[key]
    return {
        "title": "Sokoban at CPU scale: RLOO / GRPO / REINFORCE++ with and without iStar",
        "metrics": metrics,
        "table": table,
        "plots": [_plot(runs, out, random_success)],
        "notes": (
            f"tiny preset, 6x6 rooms, 1 box, min_optimal_steps={ENV_KWARGS['min_optimal_steps']}; "
            f"{len(seeds)} seed(s), {budget} training env steps per run, {eval_episodes} held-out levels "
            f"(sampled at temperature 1). Random play: {random_success:.3f}; SFT start: {sft_success:.3f}."
        ),
    }


def _summarise(name: str, seed_runs: list[list[dict]]) -> dict:
    finals, bests, aucs, lengths, gaps, ranks = [], [], [], [], [], []
    for records in seed_runs:
        curve = [r["eval_success"] for r in records if r.get("eval_success") is not None]
        finals.append(curve[-1])
        bests.append(max(curve))
        aucs.append(float(np.mean(curve)))
        lengths.append([r["eval_episode_length"] for r in records if r.get("eval_episode_length") is not None][-1])
        gaps.append(_mean_of(records, "credit_step_gap" if "+istar" in name else "credit_gap"))
        ranks.append(_mean_of(records, "credit_step_rank_accuracy" if "+istar" in name else "credit_rank_accuracy"))
    row = {"variant": name, "seeds": len(seed_runs)}
    for key, values in (
        ("final_success", finals), ("best_success", bests), ("auc", aucs), ("episode_length", lengths),
        ("credit_gap", gaps), ("credit_step_rank_accuracy" if "+istar" in name else "credit_rank_accuracy", ranks),
    ):
        row[f"{key}_mean"] = round(float(np.nanmean(values)), 4)
        row[f"{key}_std"] = round(float(np.nanstd(values)), 4)
    return row


def _mean_of(records: list[dict], key: str) -> float:
    values = [r[key] for r in records if r.get(key) is not None]
    return float(np.mean(values)) if values else float("nan")


def _plot(runs: dict[str, list[list[dict]]], out: Path, random_success: float) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.5))
    for name, seed_runs in runs.items():
        curves = []
        for records in seed_runs:
            points = [(r.get("env_steps_total", 0.0), r["eval_success"]) for r in records if r.get("eval_success") is not None]
            curves.append(points)
        length = min(len(c) for c in curves)
        steps = np.array([p[0] for p in curves[0][:length]])
        values = np.array([[p[1] for p in c[:length]] for c in curves])
        mean, std = values.mean(0), values.std(0)
        axis.plot(steps, mean, label=name, linestyle="--" if "+istar" in name else "-")
        axis.fill_between(steps, mean - std, mean + std, alpha=0.15)
    axis.axhline(random_success, color="grey", linewidth=0.8, label="random play")
    axis.set_xlabel("training env steps")
    axis.set_ylabel("held-out success")
    axis.legend(fontsize=8)
    figure.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    path = out / "repro_sokoban_curves.png"
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return str(path)
