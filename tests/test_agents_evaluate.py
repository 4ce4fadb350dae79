"""agents.evaluate: same seeds give the same tasks, files and summary statistics are right, bad actions are counted."""

import json

import pytest

from agents.evaluate import evaluate, main, mean_interval, wilson_interval


def _records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


class SilentAgent:
    """Answers nothing, as an LLM whose generation came back empty does."""

    def reset(self):
        pass

    def act(self, observation, info):
        return ""


def test_same_seed_gives_every_agent_the_same_tasks(tmp_path):
    evaluate("istar/Sokoban-v0", "solver", episodes=6, seed=11, num_envs=3, out_dir=tmp_path, progress=False)
    evaluate("istar/Sokoban-v0", "random", episodes=6, seed=11, num_envs=2, out_dir=tmp_path, progress=False)
    solver = _records(tmp_path / "istar_Sokoban-v0.solver.episodes.jsonl")
    random = _records(tmp_path / "istar_Sokoban-v0.random.episodes.jsonl")
    assert [r["first_observation"] for r in solver] == [r["first_observation"] for r in random]
    assert [r["seed"] for r in solver] == list(range(11, 17))


def test_results_do_not_depend_on_the_number_of_sub_envs():
    one = evaluate("istar/WebShop-v0", "oracle", episodes=5, num_envs=1, progress=False)
    many = evaluate("istar/WebShop-v0", "oracle", episodes=5, num_envs=4, progress=False)
    for key in ("success_rate", "score", "mean_steps"):
        assert one[key] == many[key]


def test_files_hold_one_record_per_episode_and_the_summary(tmp_path):
    summary = evaluate("istar/Sokoban-v0", "solver", episodes=5, num_envs=2, out_dir=tmp_path, progress=False)
    records = _records(tmp_path / "istar_Sokoban-v0.solver.episodes.jsonl")
    assert sorted(r["episode"] for r in records) == list(range(5))
    assert json.loads((tmp_path / "istar_Sokoban-v0.solver.summary.json").read_text()) == summary
    assert summary["mean_steps"] == pytest.approx(sum(r["steps"] for r in records) / 5)
    low, high = summary["success_rate_ci95"]
    assert low <= summary["success_rate"] <= high


def test_empty_replies_count_as_invalid_actions_and_do_not_crash():
    summary = evaluate("istar/Sokoban-v0", lambda env: SilentAgent(), episodes=2, progress=False, agent_name="silent")
    assert summary["agent"] == "silent"
    assert summary["invalid_action_rate"] == 1.0
    assert summary["mean_steps"] == 15  # the registered time limit ends each episode
    assert summary["success_rate"] == 0.0


def test_cli_writes_the_summary(tmp_path):
    summary = main(["--env", "istar/Sokoban-v0", "--agent", "solver", "--episodes", "3", "--out", str(tmp_path)])
    assert summary["episodes"] == 3 and (tmp_path / "istar_Sokoban-v0.solver.summary.json").is_file()


def test_unknown_agent_name_is_rejected_with_the_choices():
    with pytest.raises(ValueError, match="unknown agent 'greedy'.*random"):
        evaluate("istar/Sokoban-v0", "greedy", episodes=1, progress=False)


def test_wilson_interval_stays_inside_zero_one_at_the_extremes():
    assert wilson_interval(0, 10) == pytest.approx([0.0, 0.2775], abs=1e-4)
    assert wilson_interval(10, 10) == pytest.approx([0.7225, 1.0], abs=1e-4)


def test_mean_interval_is_mean_plus_minus_196_standard_errors():
    assert mean_interval([1.0, 3.0]) == pytest.approx([2.0 - 1.959964, 2.0 + 1.959964], abs=1e-5)
    assert mean_interval([4.0]) is None
