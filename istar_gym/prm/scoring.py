"""Log-probabilities of actions under a causal LM: batched for trainers, incremental for one episode.

Both paths return, per turn, ``sum over the action's tokens of log pi(token | context, earlier
action tokens)``: the quantity whose difference between pi_phi and pi_ref is the implicit step
reward (iStar, Eq. 1). They agree to floating-point noise; the incremental path reuses the KV cache
of the previous turn, so an episode whose contexts extend each other costs O(T) new tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from contextlib import nullcontext
from typing import Any

import torch

from istar_gym.llm.hf import left_pad
from istar_gym.prm.tail import cache_keyword, tail_kwargs

__all__ = ["CachedScorer", "action_logprobs", "autocast_forward", "distinct", "forward_with_cache"]


def autocast_forward(device: torch.device | str, dtype: torch.dtype | None):
    """`torch.autocast` to ``dtype`` on ``device``'s type, or a no-op context for ``None`` (float32)."""
    return nullcontext() if dtype is None else torch.autocast(torch.device(device).type, dtype=dtype)


def forward_with_cache(model: torch.nn.Module, cache: Any, **inputs) -> tuple[Any, Any]:
    """``model(**inputs)`` extending the KV cache ``cache`` (``None``: a new one); returns the
    output and its cache. transformers 5 renamed ``past_key_values`` to ``cache`` (the old name is
    deprecated and goes in 5.40); this passes whichever name the model's ``forward`` takes."""
    keyword = cache_keyword(type(model))
    output = model(**inputs, **{keyword: cache}, use_cache=True)
    return output, getattr(output, keyword)


def action_logprobs(
    model: torch.nn.Module,
    encoded: Sequence[tuple[Sequence[int], Sequence[int]]],
    *,
    pad_token_id: int,
    batch_size: int = 8,
    name: str = "model",
    autocast: torch.dtype | None = None,
) -> torch.Tensor:
    """Summed action log-probs of many ``(context_ids, action_ids)`` turns, shape ``[len(encoded)]``.

    Identical turns are scored once (G copies of a task often share states and moves; the gradient
    of a shared value reaches every copy). Distinct turns are sorted by length and left-padded in
    micro-batches of ``batch_size`` (explicit position ids keep every token at its unpadded
    position), and only the logits over the action span are materialised. Gradients flow when grad
    mode is on. Non-finite results raise `FloatingPointError`. A model given
    `istar_gym.prm.tail.trim_last_layer` runs its last layer over the action span alone.
    ``autocast`` (e.g. ``torch.bfloat16``) runs the forward under `torch.autocast` (mixed precision);
    the log-softmax stays in float32.
    """
    if batch_size < 1:
        raise ValueError(f"action_logprobs: batch_size={batch_size} must be >= 1")
    device = _device_of(model)
    turns, inverse = distinct([(tuple(context), tuple(action)) for context, action in encoded])
    result = torch.zeros(len(turns), device=device)
    order = sorted(range(len(turns)), key=lambda i: len(turns[i][0]) + len(turns[i][1]))
    scored = [i for i in order if len(turns[i][1]) > 0]
    for start in range(0, len(scored), batch_size):
        rows = scored[start : start + batch_size]
        with autocast_forward(device, autocast):
            values = _batch_logprobs(model, [turns[i] for i in rows], pad_token_id, device)
        _check_finite(values, rows, name, turn_of=inverse.index)  # a distinct turn's first row, named on error
        result = result.index_put((torch.tensor(rows, device=device),), values)
    return result[torch.tensor(inverse, dtype=torch.long, device=device)]


def distinct(items: Sequence[Hashable]) -> tuple[list, list[int]]:
    """The distinct ``items`` in first-seen order, and each item's index among them."""
    index: dict = {}
    inverse = [index.setdefault(item, len(index)) for item in items]
    return list(index), inverse


class CachedScorer:
    """Scores successive turns of one episode with one model, keeping its KV cache between calls.

    Each call reuses the cache for the longest token prefix shared with everything processed so
    far, crops the rest, and runs only the new tokens. When the next context extends the previous
    context + action (a growing chat), every token of the episode is processed about once.
    """

    def __init__(self, model: torch.nn.Module, name: str = "model"):
        self.model = model
        self.name = name
        self.tokens_processed = 0
        self._ids: list[int] = []
        self._cache = None

    def reset(self) -> None:
        """Forget the episode (call at every env reset)."""
        self._ids = []
        self._cache = None

    @torch.no_grad()
    def logprob(self, context_ids: Sequence[int], action_ids: Sequence[int]) -> float:
        """Summed log-prob of ``action_ids`` after ``context_ids``; 0.0 for an empty action."""
        if not action_ids:
            return 0.0
        ids = list(context_ids) + list(action_ids)
        # The logits at the last context position predict the first action token, so that position
        # is always re-run even when it is cached.
        keep = min(_common_prefix(self._ids, ids), len(context_ids) - 1)
        if self._cache is None or keep == 0:
            from transformers import DynamicCache

            self._cache, keep = DynamicCache(), 0
        elif keep < len(self._ids):
            self._cache.crop(keep - len(self._ids))  # a negative count removes that many tokens
        device = _device_of(self.model)
        new = torch.tensor([ids[keep:]], device=device)
        positions = torch.arange(keep, len(ids), device=device).unsqueeze(0)
        read = len(action_ids) + 1
        output, self._cache = forward_with_cache(
            self.model, self._cache, input_ids=new, position_ids=positions, logits_to_keep=read, **tail_kwargs(self.model, read)
        )
        logits = output.logits[0, :-1]
        targets = torch.tensor(action_ids, device=device)
        value = torch.log_softmax(logits.float(), dim=-1).gather(-1, targets[:, None]).sum()
        self._ids = ids
        self.tokens_processed += len(ids) - keep
        _check_finite(value.reshape(1), [0], self.name)
        return float(value)


def _batch_logprobs(model, batch, pad_token_id: int, device) -> torch.Tensor:
    span = max(len(action) for _, action in batch) + 1
    input_ids, attention_mask = left_pad([(*context, *action) for context, action in batch], pad_token_id)
    targets, target_mask = left_pad([action for _, action in batch], 0, span - 1)
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    logits = model(
        input_ids=input_ids.to(device),
        attention_mask=attention_mask.to(device),
        position_ids=position_ids.to(device),
        logits_to_keep=span,
        **tail_kwargs(model, span),
    ).logits[:, :-1]
    token_logprobs = torch.log_softmax(logits.float(), dim=-1).gather(-1, targets.to(device)[..., None])[..., 0]
    return (token_logprobs * target_mask.to(device, torch.float32)).sum(-1)


def _check_finite(values: torch.Tensor, rows: Sequence[int], name: str, turn_of: Callable[[int], int] = int) -> None:
    bad = (~torch.isfinite(values.detach())).nonzero().flatten().tolist()
    if bad:
        raise FloatingPointError(
            f"{name} returned a non-finite log-prob ({values[bad[0]].item()}) for turn {turn_of(rows[bad[0]])}; its weights "
            "or activations hold NaN/inf (a diverged update, or fp16 overflow): reload the model, use float32 or "
            "bfloat16, or lower the learning rate"
        )


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def _device_of(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device
