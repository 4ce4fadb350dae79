"""Scripted WebShop policies: the paper's rule baseline and an oracle that knows the goal.

Both follow the agent protocol (``reset()``, ``act(observation, info) -> str``) and read only
``info["available_actions"]`` and ``info["page"]``, so they drive the text env, the web app (through
the browser env) and the browser env alike.
"""

from __future__ import annotations

import gymnasium as gym

__all__ = ["OracleAgent", "RuleAgent"]


class RuleAgent:
    """The paper's rule baseline: search the instruction, click the first result, buy (no options).

    On the real data it scores 45.6 with 9.6% success (WebShop paper, Fig. 4).
    """

    def reset(self) -> None:
        pass

    def act(self, observation: str, info: dict) -> str:
        page = info["page"]
        if page == "search":
            return f"search[{info['instruction']}]"
        if page == "results":
            products = _product_clicks(info["available_actions"])
            return products[0] if products else "click[back to search]"
        return "click[buy now]"


class OracleAgent:
    """Knows the goal's product and options (from ``env.unwrapped.goal``) and buys exactly that.

    It searches the product's title, pages through the results to the product, clicks each goal
    option and buys: reward 1.0 whenever the title search finds the product in the top 50.
    """

    def __init__(self, env: gym.Env):
        self.env = env

    def reset(self) -> None:
        self._options_done: set[str] = set()

    def act(self, observation: str, info: dict) -> str:
        goal = self.env.unwrapped.goal
        page = info["page"]
        actions = info["available_actions"]
        target = f"click[{goal.asin.lower()}]"
        if page == "search":
            return f"search[{goal.name}]"
        if page == "results":
            if target in actions:
                return target
            return "click[next >]" if _product_clicks(actions) else f"search[{goal.name}]"
        if page == "item":
            wanted = goal.goal_options.values() if isinstance(goal.goal_options, dict) else goal.goal_options
            for value in wanted:
                if value not in self._options_done and f"click[{value}]" in actions:
                    self._options_done.add(value)
                    return f"click[{value}]"
            return "click[buy now]"
        return "click[< prev]"


def _product_clicks(actions: list[str]) -> list[str]:
    fixed = {"click[back to search]", "click[next >]", "click[< prev]"}
    return [action for action in actions if action not in fixed]
