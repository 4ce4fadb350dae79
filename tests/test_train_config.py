"""Trainer configuration: presets, command-line flags, and bad settings refused at start."""

import pytest

from istar_gym.rl.config import PRESETS, TrainConfig, parse_config
from istar_gym.rl.tiny import build_tiny_model
from istar_gym.rl.trainer import load_policy, train


def test_paper_defaults_are_the_dataclass_defaults():
    config = parse_config(["--env", "istar/Sokoban-v0", "--algo", "rloo"])
    assert (config.group_size, config.policy_lr, config.prm_lr, config.beta, config.alpha) == (8, 5e-7, 1e-6, 0.05, 1.0)
    assert (config.clip_eps, config.kl_coef, config.iterations) == (0.2, 0.0, 200)
    assert config.resolved_max_turns() == 15


def test_webshop_ids_get_the_paper_webshop_shape():
    config = parse_config(["--env", "istar/WebShop-v0", "--algo", "rloo"])
    assert config.groups == 16 and config.resolved_max_turns() == 10


def test_model_tiny_selects_the_tiny_preset_and_flags_override_it():
    config = parse_config(["--model", "tiny", "--algo", "grpo", "--istar", "--iterations", "7", "--out", "x"])
    assert config.max_new_tokens == 2 and config.policy_lr == 1e-3
    assert (config.algo, config.istar, config.iterations, config.out) == ("grpo", True, 7, "x")


@pytest.mark.parametrize(
    ("changes", "recomputes"),
    [
        ({}, False),  # the tiny preset keeps the sampler's log-probs
        ({"recompute_old_logprobs": True}, True),
        ({"rollout_backend": "hf"}, True),  # text without log-probs
        ({"istar": True}, True),  # the PRM's pi_old reference comes from its own forward pass
        ({"istar": True, "prm_reference": "initial"}, False),
    ],
)
def test_old_logprobs_are_recomputed_exactly_where_needed(changes, recomputes):
    assert TrainConfig(**{**PRESETS["tiny"], **changes}).recomputes_old_logprobs() is recomputes


@pytest.mark.parametrize("native", [True, False], ids=["native-bf16", "emulated-bf16"])
def test_auto_precision_is_bf16_only_where_the_device_computes_it_natively(monkeypatch, native):
    from istar_gym.rl import config as config_module

    monkeypatch.setattr(config_module, "_native_bfloat16", lambda device: native)
    assert TrainConfig(precision="auto").resolved_precision() == ("bf16" if native else "fp32")
    assert TrainConfig(precision="fp32").resolved_precision() == "fp32"
    assert TrainConfig(precision="bf16").resolved_precision() == "bf16"
    assert PRESETS["tiny"]["precision"] == "auto" and TrainConfig().precision == "fp32"


def test_cpu_bf16_detection_reads_the_cpu_flags():
    from pathlib import Path

    from istar_gym.rl.config import _native_bfloat16

    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        flags = set()
    assert _native_bfloat16("cpu") == bool(flags & {"avx512_bf16", "amx_bf16"})


def test_env_kwargs_are_read_as_json():
    config = parse_config(["--env-kwargs", '{"min_optimal_steps": 3}'])
    assert config.env_kwargs == {"min_optimal_steps": 3}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"group_size": 1}, "group_size=1"),
        ({"alpha": -0.5}, "alpha=-0.5"),
        ({"env_id": "istar/Sokobn-v0"}, "not a registered Gymnasium id"),
        ({"algo": "ppo_lagrangian"}, "algo=.ppo_lagrangian."),
        ({"algo": "ppo", "istar": True}, "algo=.ppo. takes its advantages from the critic"),
        ({"beta": 0.0}, "beta=0.0"),
        ({"clip_eps": 1.5}, "clip_eps=1.5"),
        ({"step_normalisation": "episode"}, "step_normalisation=.episode."),
        ({"prm_trajectory_score": "max"}, "prm_trajectory_score=.max."),
        ({"prm_loss": "hinge"}, "prm_loss=.hinge."),
        ({"lr_schedule": "cosine"}, "lr_schedule=.cosine."),
        ({"target_kl": 0.0}, "target_kl=0.0"),
        ({"precision": "fp16"}, "precision=.fp16."),
        ({"prm_updates": -1}, "prm_updates=-1"),
        ({"prm_follows_policy": True}, "prm_follows_policy=True without a PRM"),
        ({"prm_rewards": "during"}, "prm_rewards=.during."),
        ({"prm_model": "/tmp/prm"}, "prm_model=.*add --istar or --prime"),
        ({"time_budget_s": -1.0}, "time_budget_s=-1.0"),
        ({"sft_temperature": 0.0}, "sft_temperature=0.0"),
        ({"dist_backend": "mpi"}, "dist_backend='mpi'"),
        ({"processes": 0}, "processes=0"),
        ({"groups": 3, "processes": 2}, "processes=2: each process plays whole groups; use a number >= 1 that divides groups=3"),
        ({"prime": True, "istar": True}, "prime=True with istar=True"),
        ({"gigpo": True, "gigpo_normalisation": "max"}, "gigpo_normalisation='max'"),
        ({"gigpo_gamma": 1.5}, "gigpo_gamma=1.5"),
        ({"model": "tiny", "env_id": "istar/WebShopBrowser-v0"}, "no preset for .istar/WebShopBrowser-v0."),
        ({"model": "tiny", "env_id": "istar/WebShop-v0", "max_new_tokens": 2}, "max_new_tokens=2"),
    ],
)
def test_bad_settings_fail_at_start_naming_the_setting(tmp_path, changes, message):
    config = TrainConfig(out=str(tmp_path / "run"), **changes)
    with pytest.raises(ValueError, match=message):
        train(config)
    assert not (tmp_path / "run").exists()


def test_a_tokenizer_larger_than_the_model_vocabulary_is_refused(tmp_path):
    model, tokenizer = build_tiny_model()
    model.resize_token_embeddings(8)
    model.save_pretrained(tmp_path / "broken")
    tokenizer.save_pretrained(tmp_path / "broken")
    with pytest.raises(ValueError, match="does not belong to this model"):
        load_policy(TrainConfig(model=str(tmp_path / "broken")), tmp_path)


def test_an_existing_run_is_not_overwritten_without_resume(tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"")
    with pytest.raises(FileExistsError, match="--resume"):
        train(TrainConfig(model="tiny", out=str(tmp_path)))
