"""Advantage estimators for multi-turn RL on per-turn rows, with or without iStar step rewards.

Episode advantages are computed per *trajectory* (each counted once, however many turns it has) from
its outcome return, then broadcast to the trajectory's turn rows. With iStar, each row also gets the
step-reward advantage (paper, Eqs. 3-5):

    A(a_t^i) = A_E(tau_i) + alpha * A_S(a_t^i),
    A_S(a_t^i) = (r(a_t^i) - mean(R_s)) / std(R_s),   R_s = all step rewards of all trajectories of the group,

with alpha = 1 in the paper. ``step_normalisation`` offers alternatives to the group z-score:
``"batch"`` (z-score over every step of the batch), ``"trajectory"`` (z-score within each episode, so
A_S only moves credit between the turns of one episode and never changes its total) and ``"none"``
(the raw step reward, so beta sets its scale). Standard deviations are the unbiased (n - 1) estimate, as in verl and
TRL; a group of a single value, or of equal values, has no spread, so its rows get advantage 0
(never 0/0). All functions are
pure: 1-D float tensors in, a new tensor out.
"""

from __future__ import annotations

from typing import Literal

import torch

__all__ = [
    "STEP_NORMALISATIONS",
    "grpo_advantages",
    "normalised_step_advantages",
    "reinforce_pp_advantages",
    "rloo_advantages",
    "step_advantages",
    "turn_advantages",
]

Estimator = Literal["rloo", "grpo", "reinforce_pp"]
StepNormalisation = Literal["group", "batch", "trajectory", "none"]
STEP_NORMALISATIONS = ("group", "batch", "trajectory", "none")


def rloo_advantages(returns: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor:
    """RLOO (leave-one-out baseline): ``A_i = R_i - mean_{j != i, same group} R_j``.

    Equivalently ``n / (n - 1) * (R_i - mean_group R)``; no std normalisation. A group of one
    trajectory has no baseline, so its advantage is 0.
    """
    returns, group_ids = _check_pair(returns, group_ids, "returns", "rloo_advantages")
    mean, _, count = _group_stats(returns, group_ids)
    scale = count / (count - 1).clamp(min=1)
    return torch.where(count > 1, scale * (returns - mean), torch.zeros_like(returns))


def grpo_advantages(returns: torch.Tensor, group_ids: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """GRPO (group z-score, paper Eq. 3): ``A_i = (R_i - mean_group R) / (std_group R + eps)``."""
    returns, group_ids = _check_pair(returns, group_ids, "returns", "grpo_advantages")
    return _zscore(returns, group_ids, eps)


def reinforce_pp_advantages(returns: torch.Tensor, group_ids: torch.Tensor | None = None, eps: float = 1e-6) -> torch.Tensor:
    """REINFORCE++: subtract the group mean (when ``group_ids`` is given), then whiten over the batch.

    ``A_i = (x_i - mean_batch x) / (std_batch x + eps)`` with ``x_i = R_i - mean_group R``, as in
    OpenRLHF's ``reinforce_baseline`` and verl's iStar REINFORCE++ path; without groups ``x = R``.
    """
    if group_ids is None:
        # One group: centring on the batch mean is then a no-op before whitening.
        group_ids = torch.zeros(torch.as_tensor(returns).shape, dtype=torch.long)
    returns, group_ids = _check_pair(returns, group_ids, "returns", "reinforce_pp_advantages")
    centred = returns - _group_stats(returns, group_ids)[0]
    return _zscore(centred, torch.zeros_like(group_ids), eps)


def step_advantages(step_rewards: torch.Tensor, group_ids: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """iStar step advantage (paper Eq. 4): z-score of each step reward over *all* steps of its group.

    ``group_ids`` holds the group of each step row. Normalising over every step of every trajectory
    keeps scales comparable across episode lengths (the public code used one step per trajectory).
    """
    step_rewards, group_ids = _check_pair(step_rewards, group_ids, "step_rewards", "step_advantages")
    return _zscore(step_rewards, group_ids, eps)


def turn_advantages(
    returns: torch.Tensor,
    group_ids: torch.Tensor,
    turn_trajectory: torch.Tensor,
    estimator: Estimator = "rloo",
    step_rewards: torch.Tensor | None = None,
    alpha: float = 1.0,
    eps: float = 1e-6,
    step_normalisation: StepNormalisation = "group",
) -> torch.Tensor:
    """Advantage of every turn row: ``A_E`` of its trajectory, plus ``alpha * A_S`` with step rewards.

    Args:
        returns: ``[N]`` outcome return of each trajectory.
        group_ids: ``[N]`` group (task) of each trajectory.
        turn_trajectory: ``[M]`` index in ``0..N-1`` of the trajectory each turn row belongs to.
        estimator: the episode advantage: ``"rloo"``, ``"grpo"`` or ``"reinforce_pp"``.
        step_rewards: ``[M]`` implicit step reward of each row, or ``None`` for plain ``A_E``.
        alpha: weight of the step channel (paper: 1).
        step_normalisation: how step rewards become A_S: ``"group"`` (paper), ``"batch"``,
            ``"trajectory"`` or ``"none"`` (module docstring).
    """
    returns, group_ids = _check_pair(returns, group_ids, "returns", "turn_advantages")
    turn_trajectory = torch.as_tensor(turn_trajectory)
    if turn_trajectory.dim() != 1 or turn_trajectory.dtype in (torch.float16, torch.float32, torch.float64, torch.bool):
        raise ValueError(
            "turn_advantages: turn_trajectory must be a 1-D integer tensor, got shape "
            f"{tuple(turn_trajectory.shape)} {turn_trajectory.dtype}"
        )
    if turn_trajectory.numel() and (turn_trajectory.min() < 0 or turn_trajectory.max() >= returns.numel()):
        raise ValueError(
            f"turn_advantages: turn_trajectory holds indices in [{turn_trajectory.min().item()}, {turn_trajectory.max().item()}] "
            f"but there are {returns.numel()} trajectories; each row needs the index of its trajectory"
        )
    if step_normalisation not in STEP_NORMALISATIONS:
        raise ValueError(f"turn_advantages: step_normalisation={step_normalisation!r}; expected one of {list(STEP_NORMALISATIONS)}")
    estimators = {"rloo": rloo_advantages, "grpo": grpo_advantages, "reinforce_pp": reinforce_pp_advantages}
    if estimator not in estimators:
        raise ValueError(f"turn_advantages: estimator={estimator!r}; expected one of {sorted(estimators)}")
    episode = estimators[estimator](returns, group_ids)[turn_trajectory]
    if step_rewards is None:
        return episode
    step_rewards, _ = _check_pair(step_rewards, turn_trajectory, "step_rewards", "turn_advantages")
    return episode + alpha * normalised_step_advantages(step_rewards, group_ids, turn_trajectory, step_normalisation, eps)


def normalised_step_advantages(
    step_rewards: torch.Tensor,
    group_ids: torch.Tensor,
    turn_trajectory: torch.Tensor,
    step_normalisation: StepNormalisation = "group",
    eps: float = 1e-6,
) -> torch.Tensor:
    """A_S of every turn row under one of `STEP_NORMALISATIONS` (``group_ids`` per trajectory,
    ``turn_trajectory`` per row, as in `turn_advantages`)."""
    step_rewards = torch.as_tensor(step_rewards)
    if step_normalisation == "none":
        return step_rewards.float()
    pools = {
        "group": lambda: torch.as_tensor(group_ids)[turn_trajectory],
        "trajectory": lambda: torch.as_tensor(turn_trajectory),
        "batch": lambda: torch.zeros(step_rewards.shape, dtype=torch.long),
    }
    return step_advantages(step_rewards, pools[step_normalisation](), eps)


def _check_pair(values, group_ids, name: str, caller: str) -> tuple[torch.Tensor, torch.Tensor]:
    values = torch.as_tensor(values)
    group_ids = torch.as_tensor(group_ids)
    if values.dim() != 1 or group_ids.dim() != 1 or values.numel() != group_ids.numel():
        raise ValueError(
            f"{caller}: {name} has shape {tuple(values.shape)} and its ids shape {tuple(group_ids.shape)}; "
            "both must be 1-D with one entry per row"
        )
    if not values.is_floating_point():
        values = values.float()
    if not torch.isfinite(values).all():
        bad = (~torch.isfinite(values)).nonzero()[0].item()
        raise ValueError(f"{caller}: {name}[{bad}] is {values[bad].item()}; rewards must be finite")
    return values, group_ids


def _group_stats(values: torch.Tensor, group_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-row group mean, unbiased group std (0 for singletons) and group size."""
    _, inverse = torch.unique(group_ids, return_inverse=True)
    groups = int(inverse.max()) + 1 if inverse.numel() else 0
    count = torch.zeros(groups, dtype=values.dtype, device=values.device).index_add_(0, inverse, torch.ones_like(values))
    mean = torch.zeros_like(count).index_add_(0, inverse, values) / count
    squares = torch.zeros_like(count).index_add_(0, inverse, (values - mean[inverse]) ** 2)
    std = (squares / (count - 1).clamp(min=1)).sqrt()
    return mean[inverse], std[inverse], count[inverse]


def _zscore(values: torch.Tensor, group_ids: torch.Tensor, eps: float) -> torch.Tensor:
    mean, std, count = _group_stats(values, group_ids)
    # Equal values carry no signal: 0, not 0/0. A spread below eps is float noise too (a PRM that
    # still equals its reference up to 1e-8): z-scoring it would turn noise into real advantages.
    return torch.where((count > 1) & (std > eps), (values - mean) / (std + eps), torch.zeros_like(values))
