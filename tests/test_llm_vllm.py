"""The vLLM backend agrees with the transformers backend on the default model (needs a CUDA GPU and vllm)."""

import importlib.util

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
def backends():
    from istar_gym.llm import HFBackend, VLLMBackend

    return VLLMBackend(dtype="float32", gpu_memory_utilization=0.3), HFBackend(device="cuda")


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
