"""An exact credit oracle for Sokoban: which moves start a shortest solution.

A breadth-first search over (player, boxes) positions gives every position's distance to a
solution; an action is *optimal* when it lowers that distance by one. The trainer's credit metrics
(`istar_gym.rl.credit_metrics`) and the tiny preset's demonstrations (`istar_gym.rl.tiny`) use it;
the Sokoban adapter (`istar_gym.adapters`) names it as the env's credit oracle.
"""

from __future__ import annotations

from collections import defaultdict, deque

import numpy as np

from istar_gym.envs.sokoban.levels import DIRECTIONS, Level, parse_level

__all__ = ["SokobanOracle"]

_State = tuple[int, frozenset[int]]
# Boards remembered by an oracle before it starts afresh, so a long training run stays bounded.
_CACHE_LIMIT = 100_000


class SokobanOracle:
    """Exact distances to a solution, cached per puzzle (walls and targets), for small rooms.

    Example:
        >>> oracle = SokobanOracle()
        >>> oracle.optimal_actions(parse_level("#####\\n#@$.#\\n#####"))
        {'right'}
    """

    def __init__(self, max_states: int = 200_000):
        self.max_states = max_states
        self._tables: dict[tuple, dict[_State, float]] = {}
        self._boards: dict[str, set[str]] = {}

    def distance(self, level: Level) -> float:
        """Fewest moves to solve ``level`` from its position (``inf`` when it cannot be solved)."""
        table = self._table(level)
        return float(table.get((level.player, level.boxes), np.inf))

    def optimal_actions(self, level: Level) -> set[str]:
        """The actions that start a shortest solution; empty when the level is solved or dead."""
        table = self._table(level)
        here = table[(level.player, level.boxes)]
        if here == 0 or here == np.inf:
            return set()
        state = (level.player, level.boxes)
        return {action for action in DIRECTIONS if table.get(_successor(level, state, action), -1) == here - 1}

    def optimal_actions_for_state(self, board_text: str) -> set[str]:
        """`optimal_actions` of a board in the envs' text format (``info["board_text"]``, the
        adapter's state key), cached."""
        if board_text not in self._boards:
            if len(self._boards) >= _CACHE_LIMIT:
                self._boards.clear()
            self._boards[board_text] = self.optimal_actions(parse_level(board_text, source="board_text"))
        return self._boards[board_text]

    def _table(self, level: Level) -> dict[_State, float]:
        """The puzzle's distances, holding at least ``level``'s position and all it can reach. Tasks
        that share walls and targets but start elsewhere add their searches to one table: a
        position's distance does not depend on where the search that found it began."""
        puzzle = (level.height, level.width, level.walls, level.targets)
        table = self._tables.get(puzzle)
        if table is None:
            if len(self._tables) >= _CACHE_LIMIT // 50:
                self._tables.clear()
            table = self._tables[puzzle] = {}
        if (level.player, level.boxes) not in table:
            table.update(_distance_table(level, self.max_states))
        return table


# --- private helpers -------------------------------------------------------------------------


def _successor(level: Level, state: _State, action: str) -> _State:
    player, boxes = state
    dr, dc = DIRECTIONS[action]
    step = dr * level.width + dc
    target = player + step
    if target in level.walls:
        return state
    if target in boxes:
        beyond = target + step
        if beyond in level.walls or beyond in boxes:
            return state
        return target, (boxes - {target}) | {beyond}
    return target, boxes


def _distance_table(level: Level, max_states: int) -> dict[_State, float]:
    """Distance to a solved position for every position reachable from ``level`` (``inf`` for a
    dead one): a forward search collects the positions and their edges, a backward search from the
    solved ones assigns distances."""
    start = (level.player, level.boxes)
    predecessors: dict[_State, list[_State]] = defaultdict(list)
    seen = {start}
    queue = deque([start])
    solved = []
    while queue:
        state = queue.popleft()
        if state[1] <= level.targets:
            solved.append(state)
            continue
        for action in DIRECTIONS:
            nxt = _successor(level, state, action)
            if nxt == state:
                continue
            predecessors[nxt].append(state)
            if nxt not in seen:
                if len(seen) >= max_states:
                    raise ValueError(
                        f"SokobanOracle: more than max_states={max_states} positions in a "
                        f"{level.height}x{level.width} level with {len(level.boxes)} boxes; raise max_states"
                    )
                seen.add(nxt)
                queue.append(nxt)
    distance: dict[_State, float] = dict.fromkeys(seen, np.inf)
    distance.update(dict.fromkeys(solved, 0))
    queue = deque(solved)
    while queue:
        state = queue.popleft()
        for previous in predecessors[state]:
            if distance[previous] == np.inf:
                distance[previous] = distance[state] + 1
                queue.append(previous)
    return distance
