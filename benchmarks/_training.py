"""Shared machinery of the training comparisons: run many `istar_gym.rl.trainer` configs on the machine's
cores, summarise each variant over its seeds, plot held-out success curves, and run one module alone.

Each run is one process with one torch thread (the tiny preset is bound by per-operation overhead,
so one thread per run and one run per core is the fastest use of a small CPU machine).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from istar_gym.rl.config import TrainConfig

__all__ = [
    "V01_PRESET",
    "credit_headline",
    "mean_of",
    "plot_mean_curves",
    "plot_success_curves",
    "run_alone",
    "run_parallel",
    "series",
    "summarise_variant",
    "train_many",
    "train_one",
]

# The tiny preset's settings before the learning fix (docs/learning.md), for side-by-side rows.
V01_PRESET = {"groups": 8, "minibatch_size": 128, "recompute_old_logprobs": True, "precision": "fp32"}


def train_many(configs: Sequence[TrainConfig], workers: int | None = None) -> list[list[dict]]:
    """Train every config (in parallel, ``workers`` at a time; default one per core) and return
    each run's ``metrics.jsonl`` records, in the order of ``configs``."""
    return run_parallel([partial(train_one, config) for config in configs], workers)


def run_parallel(tasks: Sequence[Callable[[], list[dict]]], workers: int | None = None) -> list[list[dict]]:
    """Call every task (a picklable callable returning a run's records) in worker processes,
    ``workers`` at a time (default one per core), and return the results in order."""
    workers = workers or max(1, min(len(tasks), os.cpu_count() or 1))
    if workers == 1:
        return [task() for task in tasks]
    # spawn: a forked worker can deadlock in torch's thread pool once the parent used torch.
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(_call, tasks))


def summarise_variant(name: str, seed_runs: list[list[dict]], step_channel: bool) -> dict:
    """One table row: mean and std over seeds of final and best held-out success, the area under
    the success curve (mean over evaluations), final episode length, credit-assignment accuracy
    (of the step reward alone when ``step_channel``, else of the whole advantage) and seconds per
    training iteration."""
    prefix = "credit_step_" if step_channel else "credit_"
    columns: dict[str, list[float]] = {
        key: [] for key in ("final_success", "best_success", "auc", "episode_length", "credit_gap", "credit_rank_accuracy", "seconds_per_iteration")
    }
    for records in seed_runs:
        curve = series(records, "eval_success")
        columns["final_success"].append(curve[-1])
        columns["best_success"].append(max(curve))
        columns["auc"].append(float(np.mean(curve)))
        columns["episode_length"].append(series(records, "eval_episode_length")[-1])
        columns["credit_gap"].append(_mean(series(records, prefix + "gap")))
        columns["credit_rank_accuracy"].append(_mean(series(records, prefix + "rank_accuracy")))
        columns["seconds_per_iteration"].append(_mean(series(records, "time_iteration")))
    row: dict = {"variant": name, "seeds": len(seed_runs)}
    for key, values in columns.items():
        finite = [value for value in values if np.isfinite(value)]
        row[f"{key}_mean"] = round(float(np.mean(finite)), 4) if finite else float("nan")
        row[f"{key}_std"] = round(float(np.std(finite)), 4) if finite else float("nan")
    return row


def plot_success_curves(runs: dict[str, list[list[dict]]], path: Path, baselines: dict[str, float]) -> str:
    """Mean +- std held-out success against training env steps, one line per variant (dashed with
    iStar), horizontal lines for the baselines; written to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.5))
    plot_mean_curves(axis, runs, "eval_success")
    for (label, value), colour in zip(baselines.items(), ("grey", "black", "brown")):
        axis.axhline(value, color=colour, linewidth=0.8, linestyle=":", label=label)
    axis.set_xlabel("training env steps")
    axis.set_ylabel("held-out success")
    axis.legend(fontsize=7)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return str(path)


def plot_mean_curves(axis, runs: dict[str, list[list[dict]]], key: str) -> None:
    """Draw on ``axis``, per variant, the mean +- std over seeds of the logged ``key`` against
    training env steps (dashed with iStar); seeds are cut to the shortest curve."""
    for name, seed_runs in runs.items():
        curves = [[(r.get("env_steps_total", 0.0), r[key]) for r in records if r.get(key) is not None] for records in seed_runs]
        length = min(len(curve) for curve in curves)
        steps = np.array([point[0] for point in curves[0][:length]])
        values = np.array([[point[1] for point in curve[:length]] for curve in curves])
        mean, std = values.mean(0), values.std(0)
        axis.plot(steps, mean, label=name, linestyle="--" if "istar" in name else "-")
        axis.fill_between(steps, mean - std, mean + std, alpha=0.12)


def credit_headline(table: list[dict], measure: str, column: str) -> list[dict]:
    """Summary rows of `benchmarks/run_all.py`: each iStar variant against its plain algorithm, and
    the other credit methods of the paper's table (GiGPO, PRIME, PPO) against RLOO."""
    rows = {row["variant"]: row for row in table}
    headline = []
    for name, row in rows.items():
        if "istar" in name:
            plain = rows[name.split("+")[0]]
        elif name in ("gigpo", "prime", "ppo") and "rloo" in rows:
            plain = rows["rloo"]
        else:
            continue
        ours, base = row[column], plain[column]
        entry = {"measure": f"{measure}, {name}", "ours": ours, "baseline": plain["variant"], "baseline_value": base}
        if base > 0:
            entry["ratio"] = round(ours / base, 3)
        headline.append(entry)
    return headline


def series(records: list[dict], key: str) -> list[float]:
    """The values of ``key`` in the order they were logged, skipping records without it."""
    return [record[key] for record in records if record.get(key) is not None]


def eval_curve(records: list[dict], key: str = "eval_success") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A run's held-out evaluations of ``key`` as (training seconds, env steps, values): each at the
    training done when it ran (0 for the evaluation before the first iteration)."""
    evaluated = [record for record in records if record.get(key) is not None]
    return (
        np.array([record.get("train_seconds_total", 0.0) for record in evaluated]),
        np.array([record.get("env_steps_total", 0.0) for record in evaluated]),
        np.array([record[key] for record in evaluated]),
    )


def mean_of(records: list[dict], key: str) -> float:
    """Mean of ``key`` over the records that logged it (NaN when none did)."""
    return _mean(series(records, key))


def train_one(config: TrainConfig) -> list[dict]:
    """Train one config in this process and return its records (those of its ``metrics.jsonl``)."""
    from istar_gym.rl.trainer import train

    return train(config)


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def _call(task: Callable[[], list[dict]]) -> list[dict]:
    return task()


def run_alone(name: str, run: Callable[..., dict], options: dict[str, Callable[[str], Any]], argv: Sequence[str] | None = None) -> dict:
    """``python -m benchmarks.<name> [--quick | --full] [--<option> VALUE ...] --out DIR``: one module
    outside `run_all`, with ``options`` (keyword arguments of its ``run``, parsed from text) to size it
    differently; writes ``DIR/<name>.json`` and the module's plots to DIR, and returns the result."""
    parser = argparse.ArgumentParser(prog=f"python -m benchmarks.{name}", description=run.__doc__)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true")
    size.add_argument("--full", action="store_true")
    for option in options:
        parser.add_argument(f"--{option.replace('_', '-')}", dest=option, default=None)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ["ISTAR_BENCH_OUT"] = str(args.out)
    chosen = {option: parse(getattr(args, option)) for option, parse in options.items() if getattr(args, option) is not None}
    result = run(quick=args.quick, full=args.full, **chosen)
    (args.out / f"{name}.json").write_text(json.dumps(result, indent=1, default=str))
    return result
