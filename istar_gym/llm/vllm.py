"""The vLLM backend (GPU, optional extra ``istar-gym[vllm]``): fast generation and prompt log-probs.

Prompts are tokenised here with `istar_gym.llm.hf.encode_prompt` and handed to vLLM as token ids,
so generation and scoring see exactly the tokens `HFBackend` and the PRM would.

A trainer that samples its rollouts here sends the policy's new weights after every update with
`VLLMBackend.load_weights`: vLLM's documented route for RL, a worker extension
(``worker_extension_cls``) whose method, called on every worker through ``LLM.collective_rpc``,
hands the tensors to the model's own ``load_weights`` (vLLM >= 0.8.2).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Sequence

import torch

from istar_gym.llm.base import Prompt, check_batch, truncate_at_stop
from istar_gym.llm.default import LLMBackendError, default_model_dir
from istar_gym.llm.hf import encode_prompt, tokenize_context_completion

__all__ = ["VLLMBackend", "WeightLoadingExtension"]

_EXTENSION = "istar_gym.llm.vllm.WeightLoadingExtension"


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
        # Weight loading needs our worker extension; vllm < 0.8.2 has no extensions, and a caller's own
        # extension replaces ours.
        if "worker_extension_cls" in {f.name for f in dataclasses.fields(vllm.EngineArgs)}:
            engine_kwargs.setdefault("worker_extension_cls", _EXTENSION)
        self._loads_weights = engine_kwargs.get("worker_extension_cls") == _EXTENSION
        try:
            self.engine = vllm.LLM(
                model=source, dtype=dtype, gpu_memory_utilization=gpu_memory_utilization, **engine_kwargs
            )
        except Exception as error:  # vLLM raises many kinds (CUDA, config, memory); all mean "no engine"
            raise LLMBackendError(f"vLLM backend: cannot start an engine for {source!r}: {error}") from error
        self.tokenizer = self.engine.get_tokenizer()
        self._vllm = vllm

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Replace the engine's weights in place with ``(name, tensor)`` pairs named as in the
        transformers model (e.g. ``policy.state_dict().items()``); later calls generate with them.

        The cached prefixes (KV computed with the old weights) are dropped.
        """
        if not self._loads_weights:
            raise LLMBackendError(
                f"vLLM backend: cannot load weights into this engine: it needs vllm >= 0.8.2 (worker extensions and "
                f"LLM.collective_rpc; installed: {getattr(self._vllm, '__version__', 'unknown')}) started with "
                f"worker_extension_cls={_EXTENSION!r} (the default); upgrade vllm or drop your own worker_extension_cls"
            )
        named = [(name, tensor.detach().to("cpu")) for name, tensor in weights]
        self.engine.collective_rpc("istar_load_weights", args=(named,))
        self.engine.reset_prefix_cache()

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


class WeightLoadingExtension:
    """Mixed into every vLLM worker (``worker_extension_cls``): receives new weights in place."""

    def istar_load_weights(self, weights: list[tuple[str, torch.Tensor]]) -> None:
        # The model's own loader maps checkpoint names (and fused or tied layers) onto its parameters.
        self.model_runner.model.load_weights(weights=weights)
