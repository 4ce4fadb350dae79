"""A scripted Sotopia character: a fixed, deterministic partner and a test driver.

It follows the agent protocol (``reset()``, ``act(observation, info) -> str``) and answers with
the env's JSON actions. Its lines come from its own goal (``info["goal"]``) and the partner's
name, so one script plays every scenario: greet and state the goal, listen, argue, propose,
ask for agreement, then leave after ``leave_after`` of its own turns. Off turn it does ``none``.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["ScriptedSotopiaAgent"]


class ScriptedSotopiaAgent:
    """Deterministic Sotopia agent: the same (observation, info) always gives the same action.

    Example:
        >>> agent = ScriptedSotopiaAgent()
        >>> agent.act("...", {"available_actions": ["none"], "turn_number": 1})
        '{"action_type": "none", "argument": ""}'
    """

    def __init__(self, leave_after: int = 5):
        if leave_after < 1:
            raise ValueError(f"leave_after must be >= 1 own turns, got {leave_after}")
        self.leave_after = leave_after

    def reset(self) -> None:
        """Nothing to clear: the script depends only on the current observation and info."""

    def act(self, observation: str, info: dict[str, Any]) -> str:
        available = info.get("available_actions", ["none"])
        if available == ["none"]:
            return _action("none", "")
        own_turn = int(info.get("turn_number", 0)) // 2
        if own_turn >= self.leave_after and "leave" in available:
            return _action("leave", "")
        partner = str(info.get("partner_name", "there")).split(" ")[0]
        goal = _goal_core(str(info.get("goal", "")))
        script = [
            ("speak", f"Hi {partner}, good to see you. There is something I would like to settle with you: {goal}."),
            ("non-verbal communication", f"nods slowly and looks at {partner}, waiting for an answer"),
            ("speak", f"I hear you, {partner}, but this really matters to me. What I am asking for: {goal}."),
            ("action", f"writes a short proposal on a piece of paper and hands it to {partner}"),
            ("speak", f"So, {partner}, can we agree on this? I think it is fair for both of us."),
        ]
        action_type, argument = script[own_turn % len(script)]
        if action_type not in available:
            action_type = "speak"
        return _action(action_type, argument)


def _action(action_type: str, argument: str) -> str:
    return json.dumps({"action_type": action_type, "argument": argument})


def _goal_core(goal: str) -> str:
    """The goal without its parenthesised extra information, lower-cased first letter, no end dot."""
    core = goal.split("(")[0].strip().rstrip(".") or "finding an arrangement that works for us"
    return core[:1].lower() + core[1:]
