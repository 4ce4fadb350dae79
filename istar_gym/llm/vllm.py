"""The vLLM backend (GPU, optional extra ``istar-gym[vllm]``): fast generation and prompt log-probs.

Prompts are tokenised here with `istar_gym.llm.hf.encode_prompt` and handed to vLLM as token ids,
so generation and scoring see exactly the tokens `HFBackend` and the PRM would.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from istar_gym.llm.base import Prompt, check_batch, truncate_at_stop
from istar_gym.llm.default import LLMBackendError, default_model_dir
from istar_gym.llm.hf import encode_prompt, tokenize_context_completion

__all__ = ["VLLMBackend"]


class VLLMBackend:
    """Generate with and score a model loaded in a vLLM engine on the local GPU(s).

    Args:
        model: ``None`` for the default model (its converted cache directory), else a local path or
            a model id vLLM can load offline.
        gpu_memory_utilization: the share of GPU memory vLLM may take (leave room for a trainer).
        dtype: vLLM's dtype string (``"auto"``, ``"bfloat16"``, ``"float32"``).
        **engine_kwargs: passed to ``vllm.LLM`` (``tensor_parallel_size``, ``max_model_len``, ...).
    """

    supports_images = False

    def __init__(
        self,
        model: str | os.PathLike | None = None,
        gpu_memory_utilization: float = 0.5,
        dtype: str = "auto",
        **engine_kwargs,
    ):
        try:
            import vllm
        except ImportError as error:
            raise LLMBackendError(
                f"vLLM backend: vllm is not importable ({error}); install it with `pip install istar-gym[vllm]` "
                "on a machine with a CUDA GPU, or use HFBackend"
            ) from error
        source = str(default_model_dir() if model is None else model)
        try:
            self.engine = vllm.LLM(
                model=source, dtype=dtype, gpu_memory_utilization=gpu_memory_utilization, **engine_kwargs
            )
        except Exception as error:  # vLLM raises many kinds (CUDA, config, memory); all mean "no engine"
            raise LLMBackendError(f"vLLM backend: cannot start an engine for {source!r}: {error}") from error
        self.tokenizer = self.engine.get_tokenizer()
        self._vllm = vllm

    def generate(
        self,
        prompts: Sequence[Prompt],
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        seed: int | None = None,
        stop: Sequence[str] = (),
        top_p: float = 1.0,
    ) -> list[str]:
        """One completion per prompt (greedy when ``temperature == 0``), kept up to the first ``stop`` string."""
        check_batch("vLLM backend", prompts)
        params = self._vllm.SamplingParams(
            max_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p if temperature > 0 else 1.0,
            seed=seed,
            stop=list(stop) or None,
            include_stop_str_in_output=True,
        )
        requests = [{"prompt_token_ids": encode_prompt(self.tokenizer, prompt)} for prompt in prompts]
        outputs = self.engine.generate(requests, params, use_tqdm=False)
        return [truncate_at_stop(output.outputs[0].text, stop) for output in outputs]

    def logprobs(self, contexts: Sequence[Prompt], completions: Sequence[str]) -> list[list[float]]:
        """Log-probs of each completion token, from vLLM's prompt log-probs over context + completion."""
        check_batch("vLLM backend", contexts, completions)
        pairs = [tokenize_context_completion(self.tokenizer, c, k) for c, k in zip(contexts, completions)]
        params = self._vllm.SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0)
        requests = [{"prompt_token_ids": context + completion} for context, completion in pairs]
        outputs = self.engine.generate(requests, params, use_tqdm=False)
        results = []
        for (context, completion), output in zip(pairs, outputs):
            positions = range(len(context), len(context) + len(completion))
            # prompt_logprobs[i] maps token ids (at least the actual one) to Logprob objects.
            results.append([output.prompt_logprobs[i][token].logprob for i, token in zip(positions, completion)])
        return results
