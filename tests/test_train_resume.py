"""Checkpoints: a run stopped after any iteration and resumed ends exactly where an uninterrupted run does."""

import json

import pytest
import torch

from istar_gym.rl.config import PRESETS, TrainConfig
from istar_gym.rl.trainer import TrainingDiverged, train

# Timings differ between two runs of the same computation; everything else must not.
_TIMING = ("train_seconds", "time_", "tokens_per_s", "env_steps_per_s")


def config(model, out, **changes) -> TrainConfig:
    values = {
        **PRESETS["tiny"],
        "model": str(model),
        "out": str(out),
        "groups": 4,
        "group_size": 4,
        "istar": True,
        "eval_episodes": 16,
        "eval_every": 1,
        "progress": False,
        "tensorboard": True,
    }
    values.update(changes)
    return TrainConfig(**values)


def test_resumed_run_equals_uninterrupted_run(tiny_policy, tmp_path):
    train(config(tiny_policy, tmp_path / "straight", iterations=3))
    # The first run "dies" after iteration 1 (its process ends; the checkpoint is all that is left).
    train(config(tiny_policy, tmp_path / "resumed", iterations=1))
    (tmp_path / "resumed" / "checkpoint.pt.tmp").write_bytes(b"half-written checkpoint of a killed save")
    train(config(tiny_policy, tmp_path / "resumed", iterations=3, resume=True))

    straight = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=False)
    resumed = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=False)
    assert straight["iteration"] == resumed["iteration"] == 3
    for name, value in straight["policy"].items():
        assert torch.equal(value, resumed["policy"][name]), name
    for name, value in straight["prm"]["model"].items():
        assert torch.equal(value, resumed["prm"]["model"][name]), name
    optimizers = [(straight["optimizer"], resumed["optimizer"]), (straight["prm"]["optimizer"], resumed["prm"]["optimizer"])]
    for saved, again in optimizers:
        for index, moments in saved["state"].items():
            for key, value in moments.items():
                assert torch.equal(value, again["state"][index][key]), (index, key)
    assert straight["numpy_rng"] == resumed["numpy_rng"]
    assert torch.equal(straight["torch_generator"], resumed["torch_generator"])
    assert _untimed_log(tmp_path / "straight") == _untimed_log(tmp_path / "resumed")


def test_resume_refuses_changed_settings(tiny_policy, tmp_path):
    train(config(tiny_policy, tmp_path / "run", iterations=1, eval_episodes=0))
    with pytest.raises(ValueError, match="alpha"):
        train(config(tiny_policy, tmp_path / "run", iterations=2, eval_episodes=0, alpha=0.5, resume=True))


def test_nan_stops_the_run_and_names_the_checkpoint(tiny_policy, tmp_path):
    # An absurd learning rate drives the weights to overflow within a few iterations.
    with pytest.raises(TrainingDiverged, match="checkpoint") as failure:
        train(config(tiny_policy, tmp_path / "run", iterations=20, istar=False, eval_episodes=0, policy_lr=1e30, groups=2))
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert f"after iteration {state['iteration']}" in str(failure.value)
    log = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert len(log) >= state["iteration"]


def _untimed_log(run) -> list[dict]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.startswith(_TIMING)} for r in records]


def test_a_run_resumes_in_another_precision(tiny_policy, tmp_path):
    # Weights and optimizer state are float32 in either precision, so a run may continue in the other.
    train(config(tiny_policy, tmp_path / "run", iterations=1, eval_episodes=0, precision="bf16"))
    records = train(config(tiny_policy, tmp_path / "run", iterations=2, eval_episodes=0, precision="fp32", resume=True))
    assert [record["iteration"] for record in records] == [2]
