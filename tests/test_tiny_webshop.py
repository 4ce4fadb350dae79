"""The tiny WebShop preset: exact action round trips, a warm start that beats random play, and
training with iStar through the ordinary trainer."""

import json
import math

import gymnasium as gym
import numpy as np
import pytest

from agents.evaluate import evaluate as evaluate_agent
from istar_gym.envs.webshop.baselines import OracleAgent
from istar_gym.llm import load_model
from istar_gym.rl.config import PRESETS, TrainConfig
from istar_gym.rl.rollout import Actor, context_builder, make_vector_env
from istar_gym.rl.tiny_webshop import (
    BUTTONS,
    ENV_ID,
    INSTRUCTION_SLOTS,
    MAX_ACTION_TOKENS,
    TINY_WEBSHOP_CONTEXT,
    build_tiny_webshop_model,
    collect_webshop_demonstrations,
    compact_instruction,
    prepare_tiny_webshop_policy,
    tiny_webshop_context,
)
from istar_gym.rl.trainer import evaluate_policy, train

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CATALOGUE = {"num_products": 1000}


@pytest.fixture(scope="module")
def tokenizer():
    return build_tiny_webshop_model(CATALOGUE)[1]


@pytest.fixture(scope="module")
def warm_policy(tmp_path_factory):
    """The warm start as the preset builds it (one to three minutes on one core)."""
    return prepare_tiny_webshop_policy(tmp_path_factory.mktemp("tiny-webshop") / "policy", env_kwargs=CATALOGUE)


def test_every_available_action_of_real_pages_round_trips_to_the_exact_string(tokenizer):
    env = gym.make(ENV_ID, **CATALOGUE)
    rng = np.random.default_rng(0)
    checked = set()
    for seed in range(40):
        _, info = env.reset(seed=seed)
        for _ in range(8):
            for action in info["available_actions"]:
                ids = tokenizer(action)["input_ids"]
                assert tokenizer.unk_token_id not in ids, action
                assert tokenizer.decode(ids + [tokenizer.eos_token_id], skip_special_tokens=True) == action
                checked.add(info["page"])
            choices = info["available_actions"]
            action = choices[int(rng.integers(len(choices)))].replace("<query>", info["instruction"])
            _, _, terminated, truncated, info = env.step(action)
            if terminated or truncated:
                break
    assert checked == {"search", "results", "item", "sub"}


def test_a_generated_query_decodes_to_the_instruction_units_joined_by_spaces(tokenizer):
    instruction = (
        "i am looking for a waterproof, cruelty free lipstick for women, featuring moisturizing with color: "
        "light blue, and item package quantity: 6, and price lower than 30.00 dollars"
    )
    units = compact_instruction(instruction)
    assert units == ["waterproof", "cruelty", "free", "lipstick", "women", "moisturizing", "color", "light blue", "item package quantity", "6"]
    context = tokenizer(tiny_webshop_context("", {"instruction": instruction, "page": "search", "available_actions": []}, []))
    query_ids = context["input_ids"][: len(units)]  # the context starts with the units, one token each
    ids = tokenizer.convert_tokens_to_ids(["search["]) + query_ids + tokenizer.convert_tokens_to_ids(["]"])
    assert tokenizer.decode(ids) == "search[" + " ".join(units) + "]"


def test_item_pages_list_only_options_not_yet_clicked(tokenizer):
    env = gym.make(ENV_ID, **CATALOGUE)
    goal_index = next(i for i in range(500) if env.unwrapped.shop.goals[i].goal_options)
    observation, info = env.reset(seed=0, options={"goal_index": goal_index})
    oracle = OracleAgent(env)
    oracle.reset()
    history = []
    for _ in range(3):  # search the title, open the product, click its first asked option
        action = oracle.act(observation, info)
        history.append((observation, action))
        observation, _, _, _, info = env.step(action)
    clicked = action[len("click[") : -1]
    assert info["page"] == "item" and clicked in env.unwrapped.goal.goal_options.values()
    history.append((observation, "click[no such option]"))  # rejected: changes nothing
    observation, _, _, _, info = env.step("click[no such option]")
    tokens = tokenizer.convert_ids_to_tokens(tokenizer(tiny_webshop_context(observation, info, history))["input_ids"])
    assert tokens[INSTRUCTION_SLOTS] == "\u2581<item>"
    shown = tokens[INSTRUCTION_SLOTS + 1 : -1]
    options = [a[len("click[") : -1] for a in info["available_actions"] if a[len("click[") : -1] not in BUTTONS]
    assert clicked in options
    assert shown == ["\u2581" + option for option in options if option != clicked]


def test_demonstrations_store_context_ids_the_rollout_context_builder_reproduces(tokenizer):
    model, _ = build_tiny_webshop_model(CATALOGUE)
    assert model.config.istar_context == TINY_WEBSHOP_CONTEXT
    assert context_builder(model, ENV_ID) is tiny_webshop_context
    turns = collect_webshop_demonstrations(CATALOGUE, episodes=20, seed=0, tokenizer=tokenizer)
    assert all(len(t.action_ids) <= MAX_ACTION_TOKENS for t in turns)
    assert all(tokenizer.decode(t.action_ids, skip_special_tokens=True) == t.action_text for t in turns)
    assert {t.action_text.split("[")[0] for t in turns} == {"search", "click"}


@pytest.mark.slow
def test_warm_started_policy_beats_random_play_on_held_out_goals(warm_policy):
    episodes = 200
    model, tokenizer = load_model(warm_policy)
    config = TrainConfig(**{**PRESETS["tiny_webshop"], "eval_episodes": episodes, "out": "unused"})
    envs = make_vector_env(ENV_ID, episodes, {**CATALOGUE, "split": "test"})
    actor = Actor(model, tokenizer, context_builder(model, ENV_ID), max_new_tokens=config.max_new_tokens)
    policy = evaluate_policy(actor, envs, config)
    envs.close()
    random_play = evaluate_agent(ENV_ID, "random", episodes=episodes, seed=0, num_envs=20, env_kwargs={**CATALOGUE, "split": "test"}, progress=False)
    # Both score the same 200 test goals; the margin is several standard errors of either mean.
    assert policy["eval_episode_return"] > random_play["score"] + 0.1
    assert policy["eval_invalid_rate"] < 0.5


@pytest.mark.slow
def test_one_istar_iteration_on_webshop_logs_finite_score_and_success_and_step_rewards_of_exactly_zero(tmp_path, warm_policy):
    config = TrainConfig(
        **{
            **PRESETS["tiny_webshop"],
            "model": str(warm_policy),
            "env_kwargs": {**CATALOGUE, "split": "train"},
            "istar": True,
            "groups": 2,
            "group_size": 4,
            "iterations": 1,
            "eval_episodes": 8,
            "score_batch_size": 3,  # many batches of unequal padding
            "out": str(tmp_path / "run"),
            "progress": False,
            "tensorboard": False,
        }
    )
    history = train(config)
    assert [record["iteration"] for record in history] == [0, 1]  # the start-of-run evaluation, then iteration 1
    record = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert record == history[-1]
    for key in ("success", "episode_return", "eval_success", "eval_episode_return", "prm_loss", "policy_loss"):
        assert math.isfinite(record[key]), key
    assert 0.0 <= record["episode_return"] <= 1.0
    # The PRM still equals pi_old, and both score the turns in the same batches: exactly 0, not float noise.
    assert record["step_reward_std"] == 0.0


def test_model_tiny_on_webshop_builds_the_webshop_warm_start(tmp_path):
    from istar_gym.rl.trainer import load_policy

    config = TrainConfig(
        **{
            **PRESETS["tiny_webshop"],
            "env_kwargs": {**CATALOGUE, "split": "train"},
            "sft_episodes": 5,
            "sft_clean_steps": 2,
            "sft_noisy_steps": 0,
            "out": str(tmp_path),
        }
    )
    model, tokenizer = load_policy(config, tmp_path)
    assert model.config.istar_context == TINY_WEBSHOP_CONTEXT
    assert tokenizer.decode(tokenizer("click[buy now]")["input_ids"]) == "click[buy now]"
    assert (tmp_path / "initial_policy" / "config.json").is_file()


@pytest.mark.slow
def test_webshop_benchmark_quick_run_returns_finite_metrics(tmp_path, monkeypatch):
    from benchmarks import repro_webshop

    monkeypatch.setenv("ISTAR_BENCH_OUT", str(tmp_path))
    result = repro_webshop.run(quick=True, seconds=4.0, lr_schedule="linear")
    assert result["metrics"] and all(math.isfinite(value) for value in result["metrics"].values())
    assert {row["variant"] for row in result["table"]} == {"rloo", "rloo+istar"}
    assert all(path.endswith(".png") for path in result["plots"])
    assert result["metrics"]["demonstrator_success"] <= result["metrics"]["best_shown_success"]
    assert "4 training seconds per run" in result["notes"] and "schedule linear" in result["notes"]
    for curve in (curve for seed_curves in result["curves"].values() for curve in seed_curves):
        steps, seconds = curve["env_steps"], curve["seconds"]
        assert steps[0] == 0 and steps == sorted(steps) and seconds == sorted(seconds) and len(steps) >= 2
        assert len(curve["success"]) == len(curve["score"]) == len(steps)
        assert 4.0 <= seconds[-1] < 4.0 + 30  # stopped by the time budget: its last iteration ends past it


def test_webshop_benchmark_refuses_more_cores_per_run_than_the_machine_has():
    from benchmarks import repro_webshop

    with pytest.raises(ValueError, match="cores_per_run"):
        repro_webshop.run(quick=True, cores_per_run=10_000)


def test_context_bars_replay_the_demonstrator_and_never_fall_below_it():
    """The benchmark's bars: the first is the demonstrator played start to end on fresh envs; the best
    of the shown results, tried on copies of the env, is at least as good on every measure."""
    from benchmarks.repro_webshop import context_bars
    from istar_gym.prompts import observation_text
    from istar_gym.rl.tiny_webshop import _demonstration

    bars = context_bars(24, {"split": "test"})
    env, wins, scores = gym.make(ENV_ID, split="test"), [], []
    for seed in range(24):
        observation, info = env.reset(seed=seed)
        history, score, won = [], 0.0, False
        for _ in range(10):
            name, units = _demonstration(env.unwrapped, observation, info, history, np.random.default_rng(0), noise=0.0)
            action = f"{name}[{' '.join(units)}]"
            history.append((observation_text(observation), action))
            observation, reward, terminated, truncated, info = env.step(action)
            if terminated or truncated:
                score, won = float(reward), bool(info.get("success", False))
                break
        wins.append(won)
        scores.append(score)
    assert bars["demonstrator"] == {"success": pytest.approx(np.mean(wins)), "score": pytest.approx(np.mean(scores))}
    assert 0 < bars["demonstrator"]["success"] <= bars["best_shown"]["success"] < 1
    assert bars["demonstrator"]["score"] <= bars["best_shown"]["score"]
