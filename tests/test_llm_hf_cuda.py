"""The transformers backend gives the same text and log-probs on a CUDA GPU as on the CPU (the default
model, or the model saved at ``$ISTAR_TEST_MODEL``, as scripts/gpu_check.sh does)."""

import pytest
import torch

from istar_gym.llm import HFBackend

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device; none is present"),
]

CHATS = [
    [{"role": "user", "content": "Which way is the box? Answer up or down inside <action>...</action>."}],
    [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Say hi"}],
    "The capital of France is",
]


def test_generation_and_logprobs_on_gpu_match_cpu(gpu_test_model):
    cpu, gpu = HFBackend(gpu_test_model), HFBackend(gpu_test_model, device="cuda")
    assert gpu.generate(CHATS, max_new_tokens=8) == cpu.generate(CHATS, max_new_tokens=8)
    completions = [" up", " Hello", " Paris"]
    for ours, reference in zip(gpu.logprobs(CHATS, completions), cpu.logprobs(CHATS, completions)):
        assert ours == pytest.approx(reference, abs=1e-3)
