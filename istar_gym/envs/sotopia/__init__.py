"""Sotopia for PettingZoo: two-agent social episodes with private goals, judged at the end.

| | |
|---|---|
| API | ``parallel_env(...)`` (`ParallelEnv`), ``env(...)`` (AEC via ``parallel_to_aec``) |
| Agents | ``agent_0``, ``agent_1`` (round-robin, ``agent_0`` first); one of them with a fixed ``partner`` |
| Action | ``Text``: ``{"action_type": none / speak / non-verbal communication / action / leave, "argument": str}`` |
| Observation | ``Text``: the agent's background and the turn-by-turn history, in the paper's format |
| Reward | 0 until the end, then the judge's ``goal`` (or ``overall``, or a weighted sum of dimensions) |
| Data | built-in scenarios (`load_builtin`) or the official profiles (`load_official`) |

See `SotopiaEnv` for the full description.
"""

from istar_gym.envs.sotopia.actions import ACTION_TYPES, AgentAction, parse_action
from istar_gym.envs.sotopia.env import SotopiaEnv, env, parallel_env
from istar_gym.envs.sotopia.evaluators import (
    DIMENSIONS,
    EpisodeLog,
    Evaluation,
    Evaluator,
    LLMJudge,
    RuleBasedTerminator,
    episode_reward,
    parse_evaluation,
)
from istar_gym.envs.sotopia.partners import ScriptedSotopiaAgent
from istar_gym.envs.sotopia.profiles import SotopiaData, load_builtin, load_official, sample_combos
from istar_gym.envs.sotopia.prompts import action_prompt

__all__ = [
    "ACTION_TYPES",
    "DIMENSIONS",
    "AgentAction",
    "EpisodeLog",
    "Evaluation",
    "Evaluator",
    "LLMJudge",
    "RuleBasedTerminator",
    "ScriptedSotopiaAgent",
    "SotopiaData",
    "SotopiaEnv",
    "action_prompt",
    "env",
    "episode_reward",
    "load_builtin",
    "load_official",
    "parallel_env",
    "parse_action",
    "parse_evaluation",
    "sample_combos",
]
