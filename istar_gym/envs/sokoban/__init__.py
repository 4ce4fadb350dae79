"""Sokoban and VisualSokoban: `levels` (generate, parse, Boxoban), `solver`, `render`, `env`, and
`onehot` (integer actions and a one-hot board, for standard RL libraries)."""

from istar_gym.envs.sokoban.env import SokobanEnv, VisualSokobanEnv, parse_action
from istar_gym.envs.sokoban.levels import Level, generate_level, level_split, load_boxoban, parse_level
from istar_gym.envs.sokoban.onehot import SokobanOneHot
from istar_gym.envs.sokoban.solver import optimal_actions, optimal_steps, solve

__all__ = [
    "Level",
    "SokobanEnv",
    "SokobanOneHot",
    "VisualSokobanEnv",
    "generate_level",
    "level_split",
    "load_boxoban",
    "optimal_actions",
    "optimal_steps",
    "parse_action",
    "parse_level",
    "solve",
]
