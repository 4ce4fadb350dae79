"""LLM backends behind one small interface: ``generate(prompts, ...)`` and ``logprobs(contexts, completions)``.

- `HFBackend`: transformers, CPU or GPU; the default model is SmolLM2-135M-Instruct, offline.
- `VLLMBackend`: vLLM on a GPU (optional extra ``istar-gym[vllm]``; vllm is imported on construction).
- `OpenAIBackend`: any OpenAI-compatible HTTP server (vLLM, ``transformers serve``, hosted APIs).

`load_model` gives ``(model, tokenizer)`` for the default model or any local transformers model, and
`tokenize_context_completion` is the one tokenisation rule the PRM and the trainers share.
"""

from istar_gym.llm.base import LLMBackend, Prompt, truncate_at_stop
from istar_gym.llm.default import DEFAULT_MODEL_NAME, LLMBackendError, load_model
from istar_gym.llm.hf import HFBackend, encode_prompt, tokenize_context_completion
from istar_gym.llm.openai import OpenAIBackend
from istar_gym.llm.vllm import VLLMBackend

__all__ = [
    "DEFAULT_MODEL_NAME",
    "HFBackend",
    "LLMBackend",
    "LLMBackendError",
    "OpenAIBackend",
    "Prompt",
    "VLLMBackend",
    "encode_prompt",
    "load_model",
    "tokenize_context_completion",
    "truncate_at_stop",
]
