"""Which iStar setting assigns credit best at CPU scale? A sweep of RLOO + iStar variants on Sokoban.

The paper fixes one setting (reference = the rollout policy pi_old, one DPO step per iteration,
beta 0.05, alpha 1, step advantages z-scored over the group); it reports no sweep. Each variant here
changes one thing, from the same warm-started tiny policy and training budget as
`benchmarks/repro_sokoban.py` (same levels, same evaluation):

* ``frozen reference``: r_t = beta log pi_phi / pi_SFT (PRIME-style) instead of pi_old, which moves
  under the PRM every iteration;
* ``4 DPO steps``: PRM warm-up, several DPO steps on each batch;
* ``PRM warm-up``: PRM pre-training, the first 5 iterations train only the PRM on rollouts of the
  SFT policy (4 DPO steps each, lr 1e-3; their env steps count toward the budget);
* ``mean score``: DPO scores a trajectory by the mean of its turns' log-ratios, not the sum, so a
  long failure does not push each of its moves down as hard as a short success pushes its moves up;
* ``PRM lr 3e-3``: a PRM learning rate above the policy's, so the PRM leads rather than lags;
* ``gate 0.6``: the step advantage is used only when the PRM ranks the batch's pairs right >= 60%;
* ``alpha`` and ``beta`` sweeps, and the step-advantage normalisations of `istar_gym.credit`;
* ``CE loss``: PRIME's cross-entropy on outcome labels instead of DPO (reported as more data-efficient),
  with the paper's pi_old reference and with a frozen one;
* ``rewards after the update``: step rewards scored by the PRM after this batch's update, not before;
* ``PRM follows the policy``: each policy update is added to the PRM too, so log pi_phi/pi_old keeps
  only what the PRM learnt (with the paper's reference, the policy's own progress is subtracted);
* ``PRM from the clean SFT``: the PRM starts from the warm start's clean supervised policy (its baked
  temperature taken out), a better policy than the rollout policy; and the same PRM never trained
  (``prm_updates=0``): what its start alone gives.

Variants are ranked by the credit-assignment accuracy of their step reward (how often it ranks a
solver-optimal move above another in the same state: 0.5 is chance), then by held-out success.

Sizes: ``quick`` (a smoke test) the first 3 variants, 1 seed, 1,500 env steps, 32 levels, a cut warm
start; default the variants of `DEFAULT_VARIANTS` (plain RLOO, the paper's setting, the tuned
setting of `benchmarks/repro_sokoban.py` and the CE loss), 1 seed, 30,000 env steps, 200 levels at
the start and the end, about 2 min on 2 cores; ``full`` every variant of `VARIANTS`, 3 seeds,
100,000 env steps.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from benchmarks._training import mean_of, summarise_variant, train_many
from benchmarks.repro_sokoban import CLEAN_SFT, sokoban_config, sokoban_warm_start

VARIANTS: dict[str, dict] = {
    "rloo (no iStar)": {"istar": False},
    "paper iStar": {},
    "frozen reference": {"prm_reference": "initial"},
    "4 DPO steps": {"prm_updates": 4},
    "PRM warm-up (5 iterations)": {"prm_warmup_iterations": 5, "prm_updates": 4, "prm_lr": 1e-3},
    "mean score": {"prm_trajectory_score": "mean"},
    "PRM lr 3e-3": {"prm_lr": 3e-3},
    "gate 0.6": {"prm_accuracy_gate": 0.6},
    **{f"alpha {alpha}": {"alpha": alpha} for alpha in (0.1, 0.25, 0.5)},
    **{f"beta {beta}": {"beta": beta} for beta in (0.01, 0.2, 0.5)},
    "normalise: batch": {"step_normalisation": "batch"},
    "normalise: trajectory": {"step_normalisation": "trajectory"},
    "normalise: none": {"step_normalisation": "none"},
    "frozen ref + 4 steps + lr 3e-3": {"prm_reference": "initial", "prm_updates": 4, "prm_lr": 3e-3},
    "CE loss": {"prm_loss": "ce"},
    "CE loss, frozen reference": {"prm_loss": "ce", "prm_reference": "initial"},
    "rewards after the update": {"prm_rewards": "after"},
    "PRM follows the policy": {"prm_follows_policy": True},
    "PRM from the clean SFT": {"prm_model": CLEAN_SFT},
    "PRM from the clean SFT, never trained": {"prm_model": CLEAN_SFT, "prm_updates": 0},
}
# The default run's handful: plain RLOO, the paper's setting, PRIME's loss in iStar and the tuned
# setting of `benchmarks/repro_sokoban.py`; --full sweeps all of VARIANTS.
DEFAULT_VARIANTS = ["rloo (no iStar)", "paper iStar", "CE loss", "PRM from the clean SFT"]
FULL_BUDGET = 100_000


def run(quick: bool = False, full: bool = False) -> dict:
    seeds = [0, 1, 2] if full else [0]
    names = list(VARIANTS)[:3] if quick else list(VARIANTS) if full else DEFAULT_VARIANTS
    budget = 1_500 if quick else (FULL_BUDGET if full else 30_000)
    eval_episodes = 32 if quick else 200
    work = Path(tempfile.mkdtemp(prefix="istar-variants-"))
    policy = sokoban_warm_start(work, quick)
    configs = [
        sokoban_config(policy, work / f"{index}-{seed}", seed, budget, eval_episodes, eval_every=0, **{"algo": "rloo", "istar": True, **VARIANTS[name]})
        for index, name in enumerate(names)
        for seed in seeds
    ]
    records = iter(train_many(configs))
    table = []
    for name in names:
        seed_runs = [next(records) for _ in seeds]
        row = summarise_variant(name, seed_runs, step_channel=VARIANTS[name].get("istar", True))
        row["pair_accuracy"] = round(float(np.nanmean([mean_of(r, "prm_pair_accuracy") for r in seed_runs])), 4)
        row["step_advantage_used"] = round(float(np.nanmean([mean_of(r, "step_advantage_used") for r in seed_runs])), 4)
        table.append({key: value for key, value in row.items() if not key.startswith(("best_", "auc_", "episode_"))})
    istar_rows = [row for row in table if row["variant"] != "rloo (no iStar)"]
    best = max(istar_rows, key=lambda row: (_finite(row["credit_rank_accuracy_mean"]), _finite(row["final_success_mean"])))
    paper = next(row for row in table if row["variant"] == "paper iStar")
    metrics = {
        "paper_istar_credit_rank_accuracy": paper["credit_rank_accuracy_mean"],
        "best_credit_rank_accuracy": best["credit_rank_accuracy_mean"],
        "best_final_success": best["final_success_mean"],
    }
    return {
        "title": "iStar variants: credit-assignment accuracy and success (RLOO + iStar, Sokoban)",
        "metrics": metrics,
        "headline": {
            "measure": f"step-reward credit rank accuracy, best variant ({best['variant']})",
            "ours": best["credit_rank_accuracy_mean"],
            "baseline": "paper iStar",
            "baseline_value": paper["credit_rank_accuracy_mean"],
            "ratio": round(best["credit_rank_accuracy_mean"] / paper["credit_rank_accuracy_mean"], 3),
        },
        "table": table,
        "notes": (
            f"{len(seeds)} seed(s), {budget} training env steps per variant, evaluated at the start and end on "
            f"{eval_episodes} held-out levels needing >= 3 moves. credit_rank_accuracy: share of states where the "
            f"step reward ranks a solver-optimal move above a non-optimal one (0.5 = chance), averaged over "
            f"iterations. Best by that accuracy, then success: {best['variant']}."
            + (
                f" Default mode: {len(names)} of the {len(VARIANTS)} variants; --full sweeps all, 3 seeds, {FULL_BUDGET} env steps."
                if not (quick or full)
                else ""
            )
        ),
    }


def _finite(value: float) -> float:
    return value if np.isfinite(value) else -1.0
