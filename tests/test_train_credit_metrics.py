"""Credit-assignment accuracy: the Sokoban oracle and the batch metric on hand-built turns."""

import math

import numpy as np
import pytest

from istar_gym.envs.sokoban import generate_level, optimal_actions, parse_level
from istar_gym.envs.sokoban.oracle import SokobanOracle
from istar_gym.rl.credit_metrics import credit_assignment_metrics

# Player two cells left of the box, target right of the box: "right" twice solves it.
CORRIDOR = "#######\n#P_X_O#\n#######"
# One step further: the same puzzle after one optimal move.
CORRIDOR_AFTER_RIGHT = "#######\n#_PX_O#\n#######"


def test_oracle_names_the_moves_that_start_a_shortest_solution():
    oracle = SokobanOracle()
    assert oracle.optimal_actions_for_state(CORRIDOR) == {"right"}
    assert oracle.distance(parse_level(CORRIDOR)) == 3


def test_oracle_finds_no_optimal_move_in_a_dead_position():
    # The box sits in a corner off its target: no move can ever solve the level.
    dead = "#####\n#X__#\n#__P#\n#__O#\n#####"
    assert SokobanOracle().optimal_actions_for_state(dead) == set()


def test_oracle_agrees_with_the_env_solver_on_generated_levels():
    rng = np.random.default_rng(3)
    oracle = SokobanOracle()
    for _ in range(30):
        level = generate_level(rng)
        assert oracle.optimal_actions(level) == optimal_actions(level)


def test_oracle_shares_one_table_across_starts_of_a_puzzle(monkeypatch):
    # Positions of one puzzle (walls and targets): a dead one, one the dead one cannot reach, and
    # one the second reaches. Each answer equals a fresh oracle's, and only positions that no
    # earlier search reached cost a search, dead ones included.
    import istar_gym.envs.sokoban.oracle as oracle_module

    dead, before, after = "#######\n#X_P_O#\n#######", CORRIDOR, CORRIDOR_AFTER_RIGHT
    expected = {board: SokobanOracle().optimal_actions_for_state(board) for board in (dead, before, after)}
    searches = []
    search = oracle_module._distance_table
    monkeypatch.setattr(oracle_module, "_distance_table", lambda *args: searches.append(1) or search(*args))
    shared = SokobanOracle()
    assert [shared.optimal_actions_for_state(board) for board in (dead, before, after)] == [set(), expected[before], expected[after]]
    assert shared.distance(parse_level(dead)) == math.inf and shared.distance(parse_level(before)) == 3
    assert len(searches) == 2


def test_gap_and_rank_accuracy_on_a_hand_built_batch():
    # Group 0 visits CORRIDOR four times: two optimal "right", one "left", one invalid text.
    # Group 1 takes "up" (non-optimal) and "right" (optimal) on the second board.
    boards = [CORRIDOR] * 4 + [CORRIDOR_AFTER_RIGHT] * 2
    actions = ["right", "right", "left", "", "up", "right"]
    groups = [0, 0, 0, 0, 1, 1]
    step_rewards = [0.3, 0.1, -0.2, 0.5, 0.4, 0.2]
    step_advantages = [1.0, 0.0, -1.0, 2.0, 1.0, 0.5]
    metrics = credit_assignment_metrics(boards, actions, groups, step_rewards, step_advantages, SokobanOracle())
    # Optimal: rows 0, 1, 5 (mean advantage 0.5); non-optimal: rows 2, 3, 4 (mean 2/3).
    assert metrics["credit_gap"] == pytest.approx(0.5 - 2 / 3)
    # Group 0: optimal mean reward 0.2 vs non-optimal 0.15 -> right; group 1: 0.2 vs 0.4 -> wrong.
    assert metrics["credit_rank_accuracy"] == pytest.approx(0.5)
    assert metrics["credit_states_compared"] == 2
    assert metrics["credit_optimal_fraction"] == pytest.approx(0.5)


def test_rank_accuracy_is_nan_when_no_state_has_both_kinds_of_action():
    metrics = credit_assignment_metrics([CORRIDOR, CORRIDOR], ["right", "right"], [0, 0], [0.1, 0.2], [0.0, 0.0], SokobanOracle())
    assert math.isnan(metrics["credit_rank_accuracy"])
    assert math.isnan(metrics["credit_gap"])


def test_metric_rejects_arguments_of_different_lengths():
    with pytest.raises(ValueError, match="one entry per turn"):
        credit_assignment_metrics([CORRIDOR], ["right", "left"], [0], [0.1], [0.0], SokobanOracle())
