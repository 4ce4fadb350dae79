"""Does iStar help at CPU scale on WebShop? RLOO with and without implicit step rewards, beside GiGPO
and, in --full, the paper table's other rows (PRIME, PPO with a critic, GRPO with and without iStar,
REINFORCE++) and iStar with its PRM started from a longer SFT (`TUNED_ROW`), from one warm-started
tiny WebShop policy, at an equal env-step budget.

Every run starts from the same SFT policy (`istar_gym.rl.tiny_webshop`) on the default 1000-product
catalogue, trains on train-split goals and is evaluated on the same fixed held-out goals (the test
split: goals 0-499, episode seeds 0..N-1, sampled at temperature 1). Reported per variant, mean +-
std over seeds: final and best held-out success (score 1) and score (the WebShop reward of the
purchase, 0 without one), and the area under the success curve, next to the random-play, rule
(search the instruction, buy the first hit) and SFT baselines on the same goals, and two bars of
what the tiny context allows (`context_bars`: the demonstrator the warm start imitates, and the
same buying the best shown result). Curves are PNG.

Sizes: ``quick`` (a smoke test) 1 seed of rloo and rloo+istar, 1,500 env steps, 64 goals, a cut warm
start; default the rows of `DEFAULT_ROWS`, 2 seeds, 40,000 env steps per run (RLOO's held-out success
rose from 0.175 to 0.27 in 50k steps, to 0.23 by 27k), 200 goals every 20 iterations
(about 145 iterations a run), about 7 min on 2 cores; ``full`` every row of `VARIANTS`, 3 seeds,
150,000 env steps. Runs go one per core, as on Sokoban. A WebShop env step costs about three
Sokoban steps of training time: an action is up to 19 generated tokens (Sokoban: 2) after a longer
prompt, and an iteration has 8 x 8 episodes (Sokoban: 32 x 8), so fixed costs weigh more.
Alone, with every row and 3 seeds at a smaller budget than --full's, or some rows at its budget:

    python -m benchmarks.repro_webshop --full --budget 60000 --out DIR
    python -m benchmarks.repro_webshop --full --variants rloo --out DIR

Sokoban's full learning setting (600 training seconds per run, two processes, the rate annealed):

    python -m benchmarks.repro_webshop --full --variants rloo --seconds 600 --cores-per-run 2 --lr-schedule linear --eval-every 200 --out DIR
"""

from __future__ import annotations

import copy
import os
import tempfile
from pathlib import Path

import gymnasium as gym
import numpy as np

from agents.evaluate import evaluate
from benchmarks._training import eval_curve, plot_mean_curves, run_alone, series, train_many
from istar_gym.prompts import observation_text
from istar_gym.rl.config import PRESETS, TrainConfig
from istar_gym.rl.tiny_webshop import ENV_ID, RESULT_SLOTS, _demonstration, _shown_targets, compact_instruction, prepare_tiny_webshop_policy

# Stands for a longer SFT of the same warm start in a setting (`LONGER_SFT_STEPS` clean steps instead
# of the preset's 600: held-out success 0.255 / score 0.574 against 0.175 / 0.529); `run` puts in its
# path. The WebShop form of Sokoban's best iStar setting, a PRM started from a better policy than the
# one RL starts from (the WebShop warm start bakes in no temperature, so there is no clean SFT to
# take out of it).
LONGER_SFT = "<longer SFT policy>"
LONGER_SFT_STEPS = 1500
TUNED_ROW = "rloo+istar, PRM from a longer SFT"
VARIANTS: dict[str, dict] = {
    "rloo": {"algo": "rloo"},
    "rloo+istar": {"algo": "rloo", "istar": True},
    TUNED_ROW: {"algo": "rloo", "istar": True, "prm_model": LONGER_SFT},
    "gigpo": {"algo": "grpo", "gigpo": True},
    "prime": {"algo": "rloo", "prime": True},
    "ppo": {"algo": "ppo"},
    "grpo": {"algo": "grpo"},
    "grpo+istar": {"algo": "grpo", "istar": True},
    "reinforce_pp": {"algo": "reinforce_pp"},
}
# The default run compares RLOO with and without iStar and GiGPO; --full runs all of VARIANTS.
DEFAULT_ROWS = ["rloo", "rloo+istar", "gigpo"]
FULL_BUDGET = 150_000
ENV_KWARGS = {"split": "train"}
_CURVES = (("eval_success", "held-out success"), ("eval_episode_return", "held-out score"))


def run(
    quick: bool = False,
    full: bool = False,
    budget: int | None = None,
    variants: list[str] | None = None,
    seconds: float | None = None,
    cores_per_run: int = 1,
    lr_schedule: str | None = None,
    eval_every: int | None = None,
) -> dict:
    """``budget`` replaces the mode's env steps per run (e.g. --full's rows and seeds at a smaller
    budget); ``variants`` the mode's rows (names of `VARIANTS`). ``seconds`` gives each run that
    many training seconds instead of an env-step budget, ``cores_per_run`` > 1 runs each in that
    many processes of the preset's groups each, one run at a time (as `benchmarks.learning_sokoban`
    does), ``lr_schedule`` replaces the preset's, and ``eval_every`` the iterations between evaluations."""
    if not 1 <= cores_per_run <= (os.cpu_count() or 1):
        raise ValueError(f"cores_per_run={cores_per_run}: use 1 to {os.cpu_count()} (this machine's cores)")
    seeds = [0] if quick else ([0, 1, 2] if full else [0, 1])
    names = variants or (list(VARIANTS) if full else ["rloo", "rloo+istar"] if quick else DEFAULT_ROWS)
    unknown = [name for name in names if name not in VARIANTS]
    if unknown:
        raise ValueError(f"variants={unknown}: choose from {', '.join(VARIANTS)}")
    budget = budget or (1_500 if quick else (FULL_BUDGET if full else 40_000))
    eval_episodes = 64 if quick else 200
    out = Path(os.environ.get("ISTAR_BENCH_OUT") or tempfile.mkdtemp(prefix="repro-webshop-"))
    work = Path(tempfile.mkdtemp(prefix="repro-webshop-runs-"))
    # --quick only checks the pipeline end to end, so its warm start is cut short.
    sft = {"episodes": 200, "clean_steps": 150, "noisy_steps": 0} if quick else {}
    policy = prepare_tiny_webshop_policy(work / "sft", seed=0, env_kwargs=ENV_KWARGS, **sft)
    placeholders = {}
    if any(VARIANTS[name].get("prm_model") == LONGER_SFT for name in names):  # --full only
        placeholders[LONGER_SFT] = str(prepare_tiny_webshop_policy(work / "sft-longer", seed=0, env_kwargs=ENV_KWARGS, clean_steps=LONGER_SFT_STEPS))
    held_out = {**ENV_KWARGS, **TrainConfig().eval_env_kwargs}
    baselines = {
        agent: evaluate(ENV_ID, agent, episodes=eval_episodes, seed=0, num_envs=16, env_kwargs=held_out, progress=False) for agent in ("random", "rule")
    }
    baselines.update(context_bars(eval_episodes, held_out))
    configs = [
        TrainConfig(
            **{
                **PRESETS["tiny_webshop"],
                "model": str(policy),
                "out": str(work / f"{name}-{seed}"),
                "seed": seed,
                "env_kwargs": ENV_KWARGS,
                "env_step_budget": 0 if seconds else budget,
                "time_budget_s": seconds or 0.0,
                **{key: placeholders.get(value, value) if isinstance(value, str) else value for key, value in VARIANTS[name].items()},
                **({"lr_schedule": lr_schedule} if lr_schedule else {}),
                "processes": cores_per_run,
                "groups": PRESETS["tiny_webshop"]["groups"] * cores_per_run,
                "iterations": 100_000,
                "eval_episodes": eval_episodes,
                "eval_every": eval_every or (2 if quick else 20),
                "progress": False,
                "tensorboard": False,
            }
        )
        for name in names
        for seed in seeds
    ]
    records = iter(train_many(configs, workers=None if cores_per_run == 1 else 1))  # a run of several cores has the machine to itself
    runs = {name: [next(records) for _ in seeds] for name in names}
    starts = [records[0] for seed_runs in runs.values() for records in seed_runs]
    metrics = {
        "random_success": baselines["random"]["success_rate"],
        "random_score": baselines["random"]["score"],
        "rule_success": baselines["rule"]["success_rate"],
        "rule_score": baselines["rule"]["score"],
        **{f"{player}_{key}": baselines[player][key] for player in ("demonstrator", "best_shown") for key in ("success", "score")},
        "sft_success": float(np.mean([r["eval_success"] for r in starts])),
        "sft_score": float(np.mean([r["eval_episode_return"] for r in starts])),
    }
    table = [_summarise(name, seed_runs) for name, seed_runs in runs.items()]
    curves = {name: [_curve(records) for records in seed_runs] for name, seed_runs in runs.items()}
    for row in table:
        for key in ("final_success_mean", "best_success_mean", "final_score_mean", "best_score_mean", "auc_success_mean"):
            metrics[f"{row['variant']}_{key}"] = row[key]
    return {
        "title": "WebShop at CPU scale: RLOO with and without iStar, GiGPO, PRIME, PPO (tiny policy)",
        "metrics": metrics,
        "table": table,
        "curves": curves,
        "plots": [_plot(runs, out, metrics)],
        "notes": (
            f"tiny WebShop preset, 1000-product catalogue, train-split goals; {len(seeds)} seed(s), "
            + (f"{seconds:.0f} training seconds per run" if seconds else f"{budget} training env steps per run")
            + (f" in {cores_per_run} processes of the preset's groups each, one run at a time" if cores_per_run > 1 else "")
            + (f", learning rate schedule {lr_schedule}" if lr_schedule else "")
            + f", {eval_episodes} held-out test goals (policy: 10 turns, temperature 1; "
            f"the scripted baselines too, the env's limit). Random: success "
            f"{metrics['random_success']:.3f}, score {metrics['random_score']:.3f}; rule: "
            f"{metrics['rule_success']:.3f}, {metrics['rule_score']:.3f}; the warm start's demonstrator (it knows the goal's "
            f"options, sees what the tiny context shows and buys the first result): {metrics['demonstrator_success']:.3f}, "
            f"{metrics['demonstrator_score']:.3f}; the same buying the best of the {RESULT_SLOTS} results the context shows: "
            f"{metrics['best_shown_success']:.3f}, {metrics['best_shown_score']:.3f}; SFT start: "
            f"{metrics['sft_success']:.3f}, {metrics['sft_score']:.3f}."
            + (
                f" Default mode: {', '.join(names)}; --full adds {', '.join(name for name in VARIANTS if name not in names)}, 3 seeds and {FULL_BUDGET} env steps."
                if not (quick or full)
                else ""
            )
        ),
    }


def context_bars(episodes: int, env_kwargs: dict) -> dict[str, dict[str, float]]:
    """Success and score of two scripted players on ``episodes`` goals (reset seeds 0, 1, ...) that
    know the goal's options but see only what the tiny policy's context shows: the demonstrator its
    warm start imitates (it buys the first shown result), and the same buying the best of the shown
    results (each played to the end on a copy of the env). The first is what imitation alone can
    reach, the second what choosing among the shown results can add."""
    outcomes: dict[str, list[tuple[float, bool]]] = {"demonstrator": [], "best_shown": []}
    env = gym.make(ENV_ID, **env_kwargs)
    for seed in range(episodes):
        observation, info = env.reset(seed=seed)
        search = f"search[{' '.join(compact_instruction(info['instruction']))}]"
        history = [(observation_text(observation), search)]
        observation, _, _, _, info = env.step(search)
        shown = _shown_targets(observation, info, history)
        endings = [_buy(copy.deepcopy(env), observation, f"click[{result}]", history) for result in shown] or [(0.0, False)]
        outcomes["demonstrator"].append(endings[0])
        outcomes["best_shown"].append(max(endings, key=lambda ending: (ending[1], ending[0])))
    env.close()
    return {
        player: {"success": float(np.mean([won for _, won in ends])), "score": float(np.mean([score for score, _ in ends]))}
        for player, ends in outcomes.items()
    }


def _buy(env: gym.Env, observation: str, click: str, history: list[tuple[str, str]], max_turns: int = 8) -> tuple[float, bool]:
    """Open a result with ``click``, then play the demonstrator (the goal's options, then buy): (score, success)."""
    action, history, rng = click, list(history), np.random.default_rng(0)  # unused: the demonstrator adds no noise here
    for _ in range(max_turns):
        history.append((observation_text(observation), action))
        observation, reward, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            return float(reward), bool(info.get("success", False))
        name, units = _demonstration(env.unwrapped, observation, info, history, rng, noise=0.0)
        action = f"{name}[{' '.join(units)}]"
    return 0.0, False


def _curve(records: list[dict]) -> dict[str, list[float]]:
    """A run's evaluations: training seconds and env steps when each ran, success and score."""
    seconds, env_steps, success = eval_curve(records)
    return {
        "seconds": seconds.tolist(),
        "env_steps": env_steps.tolist(),
        "success": success.tolist(),
        "score": eval_curve(records, "eval_episode_return")[2].tolist(),
    }


def _summarise(name: str, seed_runs: list[list[dict]]) -> dict:
    """Per seed: final and best of each held-out curve and the mean of the success curve; then
    mean and std over seeds."""
    per_seed: dict[str, list[float]] = {}
    for records in seed_runs:
        success = series(records, "eval_success")
        score = series(records, "eval_episode_return")
        values = {
            "final_success": success[-1],
            "best_success": max(success),
            "auc_success": float(np.mean(success)),
            "final_score": score[-1],
            "best_score": max(score),
            "final_invalid_rate": series(records, "eval_invalid_rate")[-1],
            "final_episode_length": series(records, "eval_episode_length")[-1],
            "s_per_iteration": float(np.median(series(records, "time_iteration"))),
        }
        for key, value in values.items():
            per_seed.setdefault(key, []).append(value)
    row = {"variant": name, "seeds": len(seed_runs)}
    for key, values in per_seed.items():
        row[f"{key}_mean"] = round(float(np.mean(values)), 4)
        row[f"{key}_std"] = round(float(np.std(values)), 4)
    return row


def _plot(runs: dict[str, list[list[dict]]], out: Path, metrics: dict) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for axis, (key, label) in zip(axes, _CURVES):
        plot_mean_curves(axis, runs, key)
        baseline = key.replace("eval_", "").replace("episode_return", "score")
        for agent, colour, player in (
            ("random", "grey", "random play"),
            ("rule", "black", "rule play"),
            ("demonstrator", "tab:green", "the warm start's demonstrator"),
            ("best_shown", "tab:red", "the same, best shown result"),
        ):
            axis.axhline(metrics[f"{agent}_{baseline}"], color=colour, linewidth=0.8, linestyle=":", label=player)
        axis.set_xlabel("training env steps")
        axis.set_ylabel(label)
    axes[0].legend(fontsize=8)
    figure.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    path = out / "repro_webshop_curves.png"
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return str(path)


if __name__ == "__main__":
    run_alone(
        "repro_webshop",
        run,
        {
            "budget": int,
            "variants": lambda text: [name.strip() for name in text.split(",")],
            "seconds": float,
            "cores_per_run": int,
            "lr_schedule": str,
            "eval_every": int,
        },
    )
