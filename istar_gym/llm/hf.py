"""The transformers backend: any local causal LM, on CPU or GPU, with batched generation and scoring.

Tokenisation is defined once here, because the implicit PRM must score an action on exactly the
tokens the policy produced it from (iStar, Eq. 1):

- a **chat** context is rendered with the tokenizer's chat template and ``add_generation_prompt=True``
  (so it ends with the assistant turn's opening, e.g. ``<|im_start|>assistant\\n``), then tokenised
  with ``add_special_tokens=False`` (the template already holds any BOS);
- a **string** context is tokenised as it is, with the tokenizer's default special tokens;
- a **token-id** context (a list of ints) is taken as it is: the caller already applied this rule;
- a **completion** is tokenised on its own with ``add_special_tokens=False`` and appended; no
  end-of-turn token is added, so its log-probability covers exactly the action text.

`tokenize_context_completion` is that rule; the PRM and the trainers call it instead of re-deriving it.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch

from istar_gym.llm.base import Prompt, check_batch, is_token_ids, text_only_chat, truncate_at_stop
from istar_gym.llm.default import LLMBackendError, load_model

__all__ = ["HFBackend", "encode_prompt", "left_pad", "tokenize_context_completion"]


class HFBackend:
    """Generate with and score any transformers causal LM (default: SmolLM2-135M-Instruct, offline).

    Args:
        model: ``None`` for the default model, a local path or cached model id, or a loaded
            ``PreTrainedModel`` (then pass its ``tokenizer`` too).
        tokenizer: the tokenizer of a model passed as an object; loaded with the model otherwise.
        device: where a model loaded here is placed; a model passed in stays where it is.
        dtype: parameter dtype of a model loaded here.
        batch_size: prompts per forward pass; prompts are grouped by length to limit padding.

    Example:
        >>> backend = HFBackend()  # doctest: +SKIP
        >>> backend.generate([[{"role": "user", "content": "Say hi"}]], max_new_tokens=8)  # doctest: +SKIP
        ['Hello! How can I help']
    """

    supports_images = False  # images in a chat are dropped; agents send the text board instead

    def __init__(
        self,
        model=None,
        tokenizer=None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        batch_size: int = 8,
    ):
        if batch_size < 1:
            raise ValueError(f"transformers backend: batch_size={batch_size}; it must be at least 1")
        if model is None or isinstance(model, (str, os.PathLike)):
            self.model, self.tokenizer = load_model(model, device=device, dtype=dtype)
        elif tokenizer is None:
            raise ValueError("transformers backend: a model passed as an object needs its tokenizer= too")
        else:
            self.model, self.tokenizer = model, tokenizer
        if self.tokenizer.pad_token_id is None:
            raise ValueError("transformers backend: the tokenizer has no pad token; set tokenizer.pad_token (load_model does this for you)")
        self.batch_size = batch_size

    @property
    def device(self) -> torch.device:
        return self.model.device

    def generate(
        self,
        prompts: Sequence[Prompt],
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        seed: int | None = None,
        stop: Sequence[str] = (),
        top_p: float = 1.0,
    ) -> list[str]:
        """One completion per prompt (special tokens removed), cut after the first ``stop`` string.

        Greedy decoding when ``temperature == 0`` (deterministic); otherwise sampling seeded by
        ``seed`` without touching the global torch RNG. Each row of a batch draws its own tokens from
        that one generator, so copies of a prompt sample independently. The same call with the same
        seed and ``batch_size`` gives the same texts.
        """
        from transformers import GenerationConfig

        check_batch("transformers backend", prompts)
        if max_new_tokens < 1 or temperature < 0:
            raise ValueError(f"transformers backend: max_new_tokens={max_new_tokens}, temperature={temperature}; use max_new_tokens >= 1 and temperature >= 0")
        sampling = temperature > 0
        config = GenerationConfig(
            max_new_tokens=max_new_tokens,
            do_sample=sampling,
            temperature=temperature if sampling else None,
            top_p=top_p if sampling else None,
            top_k=0 if sampling else None,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.model.generation_config.eos_token_id or self.tokenizer.eos_token_id,
            stop_strings=list(stop) or None,
        )
        encoded = [encode_prompt(self.tokenizer, prompt) for prompt in prompts]
        texts: list[str] = [""] * len(encoded)
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices, enabled=seed is not None), torch.inference_mode():
            if seed is not None:
                torch.manual_seed(seed)
            for indices in _length_batches([len(ids) for ids in encoded], self.batch_size):
                input_ids, attention_mask = self._left_pad([encoded[i] for i in indices])
                with _explain_out_of_memory(len(indices), input_ids.shape[1] + max_new_tokens, self.device):
                    output = self.model.generate(
                        input_ids=input_ids,
                        attention_mask=attention_mask,
                        generation_config=config,
                        tokenizer=self.tokenizer if stop else None,
                    )
                new_tokens = output[:, input_ids.shape[1] :]
                for index, row in zip(indices, new_tokens):
                    texts[index] = truncate_at_stop(self.tokenizer.decode(row, skip_special_tokens=True), stop)
        return texts

    def logprobs(self, contexts: Sequence[Prompt], completions: Sequence[str]) -> list[list[float]]:
        """``log p(token | context, earlier completion tokens)`` for each completion token.

        Tokens follow `tokenize_context_completion`; sequences are left-padded with position ids
        counted from each sequence's first real token, so batching does not change the result
        beyond float rounding.
        """
        check_batch("transformers backend", contexts, completions)
        pairs = [tokenize_context_completion(self.tokenizer, c, k) for c, k in zip(contexts, completions)]
        results: list[list[float]] = [[] for _ in pairs]
        with torch.inference_mode():
            for indices in _length_batches([len(c) + len(k) for c, k in pairs], self.batch_size):
                longest = max(len(pairs[i][1]) for i in indices)
                if longest == 0:
                    continue
                input_ids, attention_mask = self._left_pad([pairs[i][0] + pairs[i][1] for i in indices])
                position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
                with _explain_out_of_memory(len(indices), input_ids.shape[1], self.device):
                    # Only the last `longest + 1` positions predict completion tokens: skip the
                    # vocabulary projection for the rest (it dominates memory for long contexts).
                    logits = self.model(
                        input_ids=input_ids,
                        attention_mask=attention_mask,
                        position_ids=position_ids,
                        logits_to_keep=longest + 1,
                    ).logits
                log_probs = torch.log_softmax(logits[:, :-1].float(), dim=-1)
                targets = input_ids[:, -longest:]
                token_log_probs = log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1).cpu()
                for row, index in enumerate(indices):
                    length = len(pairs[index][1])
                    results[index] = token_log_probs[row, longest - length :].tolist() if length else []
        return results

    def _left_pad(self, sequences: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        input_ids, attention_mask = left_pad(sequences, self.tokenizer.pad_token_id)
        return input_ids.to(self.device), attention_mask.to(self.device)


def left_pad(sequences: Sequence[Sequence[int]], pad_token_id: int, width: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids left-padded with ``pad_token_id`` to ``width`` (default: the longest sequence) and
    their attention mask, as two CPU ``long`` tensors. Filled in one vectorised copy: a tensor write
    per row cost a tenth of a tiny preset's update."""
    lengths = np.fromiter(map(len, sequences), dtype=np.int64, count=len(sequences))
    width = int(lengths.max(initial=0)) if width is None else width
    if (lengths > width).any():
        raise ValueError(f"left_pad: a sequence of {int(lengths.max())} tokens does not fit in width {width}")
    mask = np.arange(width) >= (width - lengths)[:, None]
    ids = np.full(mask.shape, pad_token_id, dtype=np.int64)
    ids[mask] = np.fromiter(itertools.chain.from_iterable(sequences), dtype=np.int64, count=int(lengths.sum()))
    return torch.from_numpy(ids), torch.from_numpy(mask.astype(np.int64))


def encode_prompt(tokenizer, prompt: Prompt) -> list[int]:
    """Token ids of a prompt or context (see the module docstring for the rule)."""
    if is_token_ids(prompt):
        return [int(token) for token in prompt]
    if isinstance(prompt, str):
        return list(tokenizer(prompt)["input_ids"])
    text = tokenizer.apply_chat_template(text_only_chat(prompt), tokenize=False, add_generation_prompt=True)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def tokenize_context_completion(tokenizer, context: Prompt, completion: str) -> tuple[list[int], list[int]]:
    """``(context_ids, completion_ids)``: the tokens a completion is generated from, and its own tokens."""
    context_ids = encode_prompt(tokenizer, context)
    if not context_ids:
        raise ValueError(
            f"context {context!r} is empty after tokenisation, so the first completion token has nothing to be predicted from; give a non-empty context"
        )
    return context_ids, list(tokenizer(completion, add_special_tokens=False)["input_ids"])


@contextmanager
def _explain_out_of_memory(batch: int, tokens: int, device: torch.device) -> Iterator[None]:
    try:
        yield
    except torch.cuda.OutOfMemoryError as error:
        raise LLMBackendError(
            f"transformers backend: out of memory on {device} for a batch of {batch} sequences of up to {tokens} tokens; lower batch_size or max_new_tokens"
        ) from error


def _length_batches(lengths: Sequence[int], batch_size: int) -> Iterator[list[int]]:
    order = sorted(range(len(lengths)), key=lambda index: lengths[index])
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]
