"""Multi-turn (trajectory-level) DPO for the implicit PRM: preference pairs and the loss.

iStar, Eq. 2: J(phi) = -E log sigmoid(beta * (S(tau+) - S(tau-))), where S(tau) is the *sum* over
the trajectory's turns of log pi_phi(a_t|ctx_t) - log pi_ref(a_t|ctx_t) (observation tokens never
count). Pairs are every (preferred, rejected) combination inside one group (same task).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence

import torch
import torch.nn.functional as F

__all__ = ["dpo_loss", "preference_pairs"]


def preference_pairs(
    group_ids: Sequence[Hashable],
    outcomes: Sequence[bool | float | None],
    threshold: float | None = None,
) -> list[tuple[int, int]]:
    """All ``(preferred, rejected)`` trajectory index pairs within each group.

    Args:
        group_ids: one group label per trajectory; only trajectories of the same group are paired.
        outcomes: per trajectory, either a success flag (verifiable envs: success is preferred to
            failure) or a score (unverifiable envs such as Sotopia). ``None`` or NaN (a judge that
            failed) excludes the trajectory.
        threshold: for scores, preferred = score above it, rejected = at or below (the paper's
            Sotopia rule is goal > 6). Without it, every pair with strictly different scores counts,
            the higher score preferred.

    A group whose members all share one label (all successes, all failures, equal scores) yields no
    pair, so it contributes nothing to the update.
    """
    if len(group_ids) != len(outcomes):
        raise ValueError(
            f"preference_pairs: {len(group_ids)} group ids but {len(outcomes)} outcomes; give one of each per trajectory"
        )
    labels = [_preference_value(outcome, threshold, index) for index, outcome in enumerate(outcomes)]
    members: dict[Hashable, list[int]] = {}
    for index, group in enumerate(group_ids):
        if labels[index] is not None:
            members.setdefault(group, []).append(index)
    return [
        (i, j)
        for indices in members.values()
        for i in indices
        for j in indices
        if labels[i] > labels[j]
    ]


def dpo_loss(scores: torch.Tensor, pairs: Sequence[tuple[int, int]], beta: float) -> torch.Tensor:
    """Mean of ``-log sigmoid(beta * (S[i] - S[j]))`` over the ``(i, j)`` pairs; 0 when there are none."""
    if not pairs:
        return scores.sum() * 0.0
    preferred = scores[[i for i, _ in pairs]]
    rejected = scores[[j for _, j in pairs]]
    return -F.logsigmoid(beta * (preferred - rejected)).mean()


def _preference_value(outcome, threshold: float | None, index: int) -> float | None:
    if outcome is None:
        return None
    if isinstance(outcome, bool):
        return float(outcome)
    try:
        value = float(outcome)
    except (TypeError, ValueError):
        raise TypeError(
            f"preference_pairs: outcome {index} is {outcome!r}; expected a success bool, a numeric score, or None"
        ) from None
    if math.isnan(value):
        return None
    if math.isinf(value):
        raise ValueError(f"preference_pairs: outcome {index} is {value}; scores must be finite (use None for a failed judge)")
    return value if threshold is None else float(value > threshold)
