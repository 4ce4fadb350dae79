"""Learning, not just running: the warm start beats random play, and RLOO then improves held-out success.

Setting (chosen so that learning is fast and reliable on two CPU cores): the tiny preset on 6x6 /
1-box Sokoban from its default two-phase warm start, 8 tasks x 8 rollouts per iteration, evaluated on
the same 300 held-out test-split levels before and after training, sampling at temperature 1.
"""

import json
import math

import pytest

from agents.config import PRESETS, TrainConfig
from agents.rollout import random_play_success
from agents.tiny import prepare_tiny_policy
from agents.train import train

EVAL_LEVELS = 300
ITERATIONS = 30


@pytest.fixture(scope="module")
def warm_policy(tmp_path_factory):
    return prepare_tiny_policy(tmp_path_factory.getbasetemp() / "tiny-warm", seed=0)


@pytest.fixture(scope="module")
def run(warm_policy, tmp_path_factory):
    out = tmp_path_factory.getbasetemp() / "rloo-learning"
    config = TrainConfig(
        **{
            **PRESETS["tiny"], "model": str(warm_policy), "out": str(out), "iterations": ITERATIONS,
            "eval_every": 0, "eval_episodes": EVAL_LEVELS, "progress": False, "tensorboard": False,
        }
    )
    train(config)
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def _standard_error(p: float, n: int) -> float:
    return math.sqrt(max(p * (1 - p), 1e-6) / n)


def test_warm_start_beats_uniform_random_play(run):
    start = run[0]["eval_success"]
    random_success = random_play_success("istar/Sokoban-v0", {"split": "test"}, range(EVAL_LEVELS), max_turns=15)
    noise = math.hypot(_standard_error(start, EVAL_LEVELS), _standard_error(random_success, EVAL_LEVELS))
    assert start - random_success > 2 * noise, (start, random_success)


def test_rloo_improves_held_out_success_beyond_evaluation_noise(run):
    start, end = run[0]["eval_success"], run[-1]["eval_success"]
    # Two evaluations of 200 levels each: the standard error of their difference.
    noise = math.hypot(_standard_error(start, EVAL_LEVELS), _standard_error(end, EVAL_LEVELS))
    assert end - start > 2 * noise, (start, end, noise)
