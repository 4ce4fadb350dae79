"""How one agent turn becomes tokens for the PRM.

The step reward compares two models on *the tokens the policy produced in the context it saw*
(iStar, Eq. 1), so the PRM splits a text turn with the policy backends' own rule,
`istar_gym.llm.hf.tokenize_context_completion`, or takes the token ids the trainer stored, and only
adds truncation for turns longer than the model's window.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from istar_gym.llm.base import Prompt

__all__ = ["Turn", "truncate_turn"]


@dataclass(frozen=True)
class Turn:
    """One agent turn: the context the policy saw (a chat or a string) and the raw text it wrote."""

    context: Prompt
    action: str


def truncate_turn(context_ids: Sequence[int], action_ids: Sequence[int], max_length: int) -> tuple[list[int], list[int]]:
    """Fit a tokenised turn into ``max_length`` tokens.

    The action keeps its *first* ``max_length - 1`` tokens (what the policy committed to first; at
    least one context token must precede it); then the context keeps its *last* tokens (the most
    recent observation) so that context + action fit. Turns that fit are returned unchanged. An
    empty action has no tokens, so its log-ratio, hence its step reward, is exactly 0.
    """
    if max_length < 2:
        raise ValueError(f"truncate_turn: max_length={max_length} leaves no room for a context and an action token; use >= 2")
    if len(context_ids) == 0:
        raise ValueError("truncate_turn: the turn's context has no tokens; the first action token needs a context")
    action_ids = list(action_ids)[: max_length - 1]
    context_ids = list(context_ids)[-(max_length - len(action_ids)) :]
    return context_ids, action_ids
