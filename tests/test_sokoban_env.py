import gymnasium as gym
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import istar_gym  # noqa: F401
from istar_gym.envs.sokoban import (
    SokobanEnv,
    VisualSokobanEnv,
    level_split,
    parse_action,
)
from istar_gym.envs.sokoban.render import TILE_CODES, tile_sheet

CORRIDOR = "#######\n#@ $ .#\n#######"


def _corridor_env(**kwargs):
    env = SokobanEnv(dim_room=(3, 7), **kwargs)
    env.reset(seed=0, options={"level": CORRIDOR})
    return env


@pytest.mark.parametrize(
    "text,expected",
    [
        ("up", "up"),
        ("  DOWN\n", "down"),
        ("Left.", "left"),
        ("<think>the box is to my right</think><action>Right</action>", "right"),
        ("<ACTION> up </ACTION> and then down", "up"),
        ("upward", None),
        ("up down", None),
        ("", None),
        ("<action></action>", None),
        ("\x00\x01\xff", None),
        ("☃ nach oben", None),
    ],
)
def test_parse_action_rule(text, expected):
    assert parse_action(text) == expected


def test_reset_info_carries_the_documented_keys():
    env = gym.make("istar/Sokoban-v0")
    obs, info = env.reset(seed=1)
    assert set(info) >= {"action_is_valid", "success", "instruction", "available_actions", "board_text", "optimal_steps"}
    assert obs == info["board_text"]
    assert info["available_actions"] == ["up", "down", "left", "right"]
    assert isinstance(info["optimal_steps"], int) and info["optimal_steps"] >= 1


def test_rewards_follow_the_paper_table():
    env = _corridor_env()
    for _ in range(2):
        _, reward, terminated, _, info = env.step("right")
        assert reward == pytest.approx(-0.1) and not terminated and info["action_is_valid"]
    _, reward, terminated, _, info = env.step("<action>right</action>")
    assert reward == pytest.approx(-0.1 + 1 + 10) and terminated and info["success"]


def test_pushing_a_box_off_a_target_costs_one():
    env = SokobanEnv(dim_room=(3, 8))
    env.reset(seed=0, options={"level": "########\n#@*  .$#\n########"})
    _, reward, terminated, _, info = env.step("right")
    assert reward == pytest.approx(-1.1) and not terminated and info["boxes_on_target"] == 0


def test_walking_into_a_wall_is_a_valid_no_op():
    env = _corridor_env()
    before = env.board_text()
    _, reward, _, _, info = env.step("up")
    assert info["action_is_valid"] and reward == pytest.approx(-0.1) and env.board_text() == before


def test_invalid_action_costs_penalty_and_keeps_board():
    env = _corridor_env(invalid_penalty=-0.5)
    before = env.board_text()
    obs, reward, terminated, truncated, info = env.step("please jump over the box")
    assert reward == -0.5 and not terminated and not truncated
    assert not info["action_is_valid"] and info["board_text"] == before
    assert obs.startswith(before) and "invalid" in obs
    obs, *_ = env.step("left")
    assert obs == env.board_text()


def test_time_limit_truncates_after_15_steps():
    env = gym.make("istar/Sokoban-v0")
    env.reset(seed=0)
    for step in range(15):
        _, _, terminated, truncated, _ = env.step("not a move")
    assert truncated and not terminated


def test_a_level_larger_than_the_room_is_refused():
    with pytest.raises(ValueError, match="does not fit dim_room"):
        SokobanEnv().reset(options={"level": CORRIDOR})


def test_levels_list_and_level_index_pin_the_level():
    levels = [CORRIDOR, "######\n#@$.##\n######"]
    env = SokobanEnv(levels=levels)
    _, info = env.reset(seed=0, options={"level_index": 1})
    assert info["board_text"].splitlines()[1].startswith("#PXO")
    with pytest.raises(ValueError, match=r"options\['level_index'\]=2"):
        env.reset(options={"level_index": 2})
    with pytest.raises(ValueError, match="needs a level list"):
        SokobanEnv().reset(options={"level_index": 0})


def test_splits_are_disjoint_and_labelled_by_hash():
    train, test = SokobanEnv(split="train"), SokobanEnv(split="test")
    train_hashes, test_hashes = set(), set()
    for seed in range(40):
        train.reset(seed=seed)
        test.reset(seed=seed)
        assert level_split(train.level) == "train" and level_split(test.level) == "test"
        train_hashes.add(train.level.canonical_hash())
        test_hashes.add(test.level.canonical_hash())
    assert not train_hashes & test_hashes


def test_min_optimal_steps_filters_easy_levels():
    env = SokobanEnv(min_optimal_steps=6)
    for seed in range(10):
        _, info = env.reset(seed=seed)
        assert info["optimal_steps"] >= 6


def test_a_seeded_level_is_generated_once_and_a_repeat_continues_like_the_first(monkeypatch):
    from istar_gym.envs.sokoban import env as sokoban_env

    monkeypatch.setattr(sokoban_env, "_SEEDED_LEVELS", {})
    calls = []
    real = sokoban_env.generate_level
    monkeypatch.setattr(sokoban_env, "generate_level", lambda *args: calls.append(1) or real(*args))

    def play(env):
        before = len(calls)
        first, info = env.reset(seed=123)
        seeded = len(calls) - before
        after, _ = env.reset()  # an unseeded reset draws from the RNG the seeded one left behind
        return (first, info["optimal_steps"], after), seeded, len(calls) - before - seeded

    runs = [play(SokobanEnv(min_optimal_steps=2)) for _ in range(3)]  # three copies of one task, as in a group
    assert runs[0][0] == runs[1][0] == runs[2][0]
    assert runs[0][1] >= 1 and runs[1][1] == runs[2][1] == 0  # copies 2 and 3 reuse the level
    assert runs[0][2] == runs[1][2] == runs[2][2]  # and their RNG continues as after a generation
    assert play(SokobanEnv(min_optimal_steps=3))[1] >= 1  # other settings are another task


def test_unreachable_difficulty_fails_with_a_clear_error():
    with pytest.raises(ValueError, match="min_optimal_steps=99"):
        SokobanEnv(dim_room=(5, 5), min_optimal_steps=99).reset(seed=0)


def test_large_rooms_with_several_boxes_reset_and_play():
    env = gym.make("istar/Sokoban-v0", dim_room=(10, 10), num_boxes=3)
    obs, _info = env.reset(seed=0)
    assert len(obs.splitlines()) == 10 and obs.count("X") + obs.count("√") == 3
    env.step("down")


def test_visual_observation_is_image_plus_text():
    env = gym.make("istar/VisualSokoban-v0")
    obs, info = env.reset(seed=2)
    assert obs["image"].shape == (96, 96, 3) and obs["image"].dtype == np.uint8
    assert obs["text"] == info["board_text"]


def test_rendering_draws_the_known_board_tile_by_tile():
    env = VisualSokobanEnv(dim_room=(3, 5), render_mode="rgb_array", tile_size=8)
    env.reset(seed=0, options={"level": "#####\n#@$.#\n#####"})
    image = env.render()
    assert image.shape == (3 * 8, 5 * 8, 3)
    sheet = tile_sheet(8)
    layout = ["wall"] * 5 + ["wall", "player", "box", "target", "wall"] + ["wall"] * 5
    for cell, name in enumerate(layout):
        r, c = divmod(cell, 5)
        assert np.array_equal(image[r * 8 : (r + 1) * 8, c * 8 : (c + 1) * 8], sheet[TILE_CODES[name]]), (cell, name)
    assert len({tile.tobytes() for tile in sheet}) == len(TILE_CODES)


def test_ansi_and_human_render_modes():
    env = SokobanEnv(render_mode="ansi")
    _, info = env.reset(seed=0)
    assert env.render() == info["board_text"]
    human = SokobanEnv(render_mode="human")
    human.reset(seed=0)
    assert human.render() is None
    human.step("up")
    human.close()
    human.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(actions=st.lists(st.one_of(st.text(max_size=40), st.sampled_from(["up", "down", "left", "right"])), max_size=25))
def test_random_action_strings_never_crash_or_corrupt_the_board(actions):
    env = SokobanEnv(dim_room=(7, 7), num_boxes=2)
    env.reset(seed=4)
    walls, targets = env.level.walls, env.level.targets
    for action in actions:
        _, reward, _, _, info = env.step(action)
        level = env.level
        assert np.isfinite(reward)
        assert len(level.boxes) == 2 and level.walls == walls and level.targets == targets
        assert not level.boxes & level.walls and level.player not in level.walls | level.boxes
        assert info["action_is_valid"] == (parse_action(action) is not None)


def test_text_space_samples_are_handled_as_invalid_actions():
    env = gym.make("istar/Sokoban-v0")
    env.reset(seed=0)
    env.action_space.seed(0)
    for _ in range(30):
        action = env.action_space.sample()
        _, _, _, _, info = env.step(action)
        assert info["action_is_valid"] == (parse_action(action) is not None)
