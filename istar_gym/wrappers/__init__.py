"""Wrappers that add implicit step rewards to any text-action Gymnasium or PettingZoo parallel env."""

from istar_gym.wrappers.implicit_step_reward import (
    ImplicitStepRewardParallelWrapper,
    ImplicitStepRewardWrapper,
    conversation_context,
    prm_observation_text,
)

__all__ = [
    "ImplicitStepRewardParallelWrapper",
    "ImplicitStepRewardWrapper",
    "conversation_context",
    "prm_observation_text",
]
