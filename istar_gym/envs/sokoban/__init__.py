"""Sokoban and VisualSokoban: `levels` (generate, parse, Boxoban), `solver`, `render`, `env`."""

from istar_gym.envs.sokoban.env import SokobanEnv, VisualSokobanEnv, parse_action
from istar_gym.envs.sokoban.levels import Level, generate_level, level_split, load_boxoban, parse_level
from istar_gym.envs.sokoban.solver import optimal_actions, optimal_steps, solve

__all__ = [
    "Level",
    "SokobanEnv",
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
