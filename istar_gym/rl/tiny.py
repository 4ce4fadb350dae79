"""The tiny CPU preset: a ~0.1M-parameter Llama that plays Sokoban, and its SFT warm start.

The trainer treats it as any Hugging Face causal LM (it is a real `LlamaForCausalLM` with a real
`PreTrainedTokenizerFast`, saved and loaded with ``save_pretrained``/``from_pretrained``); only its
size and its prompt are chosen for speed on two CPU cores:

* **Vocabulary** of 18 tokens: one per board symbol, one per action word, ``none``/``bad`` for the
  previous action, ``>`` to ask for the next action, and the pad/BOS/EOS/UNK specials.
* **Context** (`tiny_context`): the board without its outer wall ring (a 6x6 room gives 16 cells),
  the player's four neighbour cells, the previous action and ``>``: 22 tokens instead of a
  ~400-token chat prompt. The policy answers with an action word and EOS. The PRM scores exactly
  these token ids, since rollout rows store them.
* **Warm start** (`prepare_tiny_policy`): like a pretrained model, good features and a weak policy.
  Supervised learning on clean solver demonstrations builds the features; then a sampling
  temperature is baked into the weights (`bake_temperature`), so the policy starts flat and weak,
  as the paper's base models do, with its mode and features intact. (The earlier warm start
  trained every weight on demonstrations with 60% random moves: that destroyed the mode, greedy
  success fell to 0.095, and RL did not recover it; docs/learning.md.) Embeddings use std 0.02
  (Llama's ``initializer_range``): with std 1 the loss sits at ln 4 for hundreds of steps.

Example (also ``python -m istar_gym.rl.tiny --out runs/tiny``; then ``istar-train --model runs/tiny``):
    >>> prepare_tiny_policy("runs/tiny", seed=0)       # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from istar_gym.envs.sokoban.oracle import SokobanOracle
from istar_gym.prm import action_logprobs
from istar_gym.rl.rollout import Turn

__all__ = [
    "ACTION_WORDS",
    "TINY_CONTEXT",
    "TinySpec",
    "bake_temperature",
    "build_tiny_model",
    "build_tiny_tokenizer",
    "collect_demonstrations",
    "prepare_tiny_policy",
    "save_policy",
    "tiny_context",
    "tiny_sokoban_context",
    "unflattened_policy",
    "warm_start",
    "warm_start_in_phases",
]

ACTION_WORDS = ("up", "down", "left", "right")
# Marker saved in the model config, so a reloaded tiny model is given the tiny context again.
TINY_CONTEXT = "tiny_sokoban"
_SPECIALS = ("<pad>", "<s>", "</s>", "<unk>")
_BOARD_SYMBOLS = ("#", "_", "O", "X", "√", "P", "S")
_VOCAB = _SPECIALS + _BOARD_SYMBOLS + ACTION_WORDS + ("none", "bad", ">")


@dataclass(frozen=True)
class TinySpec:
    """Shape of the tiny Llama. The defaults (~0.1M parameters) run a 64-episode Sokoban iteration
    several times faster than the 0.6M-parameter model of the CPU feasibility study."""

    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 4
    intermediate_size: int = 192
    max_positions: int = 64


def build_tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A word/character tokenizer: action words and ``none``/``bad`` are single tokens, every other
    character is its own token (unknown ones map to ``<unk>``)."""
    vocab = {token: index for index, token in enumerate(_VOCAB)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    words = "|".join(ACTION_WORDS + ("none", "bad"))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(rf"{words}|[\s\S]"), behavior="isolated")
    backend.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        padding_side="left",
    )


def build_tiny_model(
    spec: TinySpec = TinySpec(),
    seed: int = 0,
    *,
    tokenizer: PreTrainedTokenizerFast | None = None,
    context: str = TINY_CONTEXT,
) -> tuple[LlamaForCausalLM, PreTrainedTokenizerFast]:
    """A freshly initialised tiny Llama and its tokenizer (``seed`` fixes the weights).

    ``tokenizer`` and ``context`` (the prompt marker `istar_gym.rl.rollout.context_builder` reads) default
    to the Sokoban preset; other tiny presets pass their own.
    """
    tokenizer = tokenizer or build_tiny_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_heads,
        max_position_embeddings=spec.max_positions,
        initializer_range=0.02,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        istar_context=context,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def tiny_context(board_text: str, last_action: str | None) -> str:
    """The tiny policy's prompt: board cells (outer wall ring dropped), the four cells next to the
    player (up, down, left, right), the previous action, and ``>``.

    The neighbour cells repeat what the board shows, next to the answer position: a two-layer model
    otherwise has to find the player before it can look around it, and its warm start then sits on
    the ln 4 loss plateau far longer. ``last_action`` is the raw text of the previous action (None on
    the first turn); anything other than an action word shows as ``bad``, since the env rejected it.
    """
    rows = board_text.strip("\n").split("\n")
    neighbours = _player_neighbours(rows)
    if _has_wall_ring(rows):
        rows = [row[1:-1] for row in rows[1:-1]]
    if last_action is None:
        previous = "none"
    else:
        word = last_action.strip().lower()
        previous = word if word in ACTION_WORDS else "bad"
    return "".join(rows) + neighbours + previous + ">"


def tiny_sokoban_context(observation: Any, info: dict, history: Sequence[tuple[str, str]]) -> str:
    """`tiny_context` as a `istar_gym.rl.rollout.ContextBuilder` (the Sokoban adapter's tiny prompt)."""
    if "board_text" not in info:
        raise ValueError(
            "the tiny preset reads info['board_text'], which this env does not provide; train the tiny model on istar/Sokoban-v0 or pass --model default|PATH"
        )
    return tiny_context(info["board_text"], history[-1][1] if history else None)


def collect_demonstrations(
    env_id: str = "istar/Sokoban-v0",
    env_kwargs: dict | None = None,
    episodes: int = 300,
    noise: float = 0.0,
    seed: int = 0,
    tokenizer: PreTrainedTokenizerFast | None = None,
) -> list[Turn]:
    """Turns of a solver that plays, with probability ``noise``, a uniform random move instead of
    one of the optimal moves (from `SokobanOracle`); each turn is labelled with the move played."""
    tokenizer = tokenizer or build_tiny_tokenizer()
    env = gym.make(env_id, **(env_kwargs or {}))
    rng = np.random.default_rng(seed)
    oracle = SokobanOracle()
    turns: list[Turn] = []
    for episode in range(episodes):
        _, info = env.reset(seed=int(rng.integers(2**31)))
        last_action = None
        for step in range(env.spec.max_episode_steps or 15):
            board = info["board_text"]
            optimal = sorted(oracle.optimal_actions(env.unwrapped.level))
            if not optimal or rng.random() < noise:
                action = ACTION_WORDS[int(rng.integers(len(ACTION_WORDS)))]
            else:
                action = optimal[int(rng.integers(len(optimal)))]
            turns.append(
                Turn(
                    episode=episode,
                    group=episode,
                    step=step,
                    context_ids=tokenizer(tiny_context(board, last_action))["input_ids"],
                    action_ids=tokenizer(action)["input_ids"] + [tokenizer.eos_token_id],
                    action_text=action,
                    state=board,
                )
            )
            _, _, terminated, truncated, info = env.step(action)
            last_action = action
            if terminated or truncated:
                break
    env.close()
    return turns


def warm_start(
    model: LlamaForCausalLM,
    tokenizer: PreTrainedTokenizerFast,
    demonstrations: Sequence[Turn],
    *,
    steps: int = 175,
    batch_size: int = 128,
    lr: float = 3e-3,
    seed: int = 0,
    anneal: bool = True,
) -> list[float]:
    """Supervised learning of the action tokens (and EOS) of demonstration turns; returns the losses.

    ``anneal`` lowers the learning rate linearly to 0 over the steps. At a constant rate the tiny
    model ends wherever the last noisy steps leave it: three builds of the Sokoban warm start that
    differ only in float rounding or seed played held-out levels greedily at 0.205-0.625; annealed,
    the same three and a fourth at 0.595-0.745 (docs/learning.md)."""
    turns = list(demonstrations)
    if not turns:
        raise ValueError("warm_start: no demonstration turns; collect at least one episode")
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    losses = []
    for step in range(steps):
        if anneal:
            optimizer.param_groups[0]["lr"] = lr * (1.0 - step / steps)
        picked = torch.randint(len(turns), (min(batch_size, len(turns)),), generator=generator)
        batch = [(turns[i].context_ids, turns[i].action_ids) for i in picked.tolist()]
        loss = -action_logprobs(model, batch, pad_token_id=tokenizer.pad_token_id, batch_size=len(batch)).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    return losses


def prepare_tiny_policy(
    target: str | os.PathLike,
    *,
    seed: int = 0,
    episodes: int = 600,
    clean_steps: int = 600,
    noisy_steps: int = 0,
    noise: float = 0.6,
    temperature: float = 3.0,
    lr: float = 3e-3,
    env_kwargs: dict | None = None,
    spec: TinySpec = TinySpec(),
    anneal: bool = True,
) -> Path:
    """Build, warm-start and save a tiny policy (model + tokenizer) to ``target``, unless one is there.

    ``clean_steps`` on noise-free solver moves teach the model where the player, box and target
    are (noisy labels keep it on the ln 4 plateau far longer); optional ``noisy_steps`` on
    demonstrations with ``noise`` random moves follow (the earlier default, kept to reproduce
    it); then ``temperature`` is baked in, so the policy starts weak (held-out success about 0.2
    at temperature 1 against 0.63 greedy), with features RL can sharpen; ``anneal`` as in
    `warm_start`. The directory is written
    beside ``target`` and renamed, so it is never seen half-saved.
    """
    target = Path(target)
    if (target / "config.json").is_file():
        return target
    model, tokenizer = build_tiny_model(spec, seed=seed)

    def demonstrations(phase_noise: float, phase_seed: int) -> list[Turn]:
        return collect_demonstrations(env_kwargs=env_kwargs, episodes=episodes, noise=phase_noise, seed=phase_seed, tokenizer=tokenizer)

    warm_start_in_phases(model, tokenizer, demonstrations, ((0.0, clean_steps), (noise, noisy_steps)), lr=lr, seed=seed, anneal=anneal)
    bake_temperature(model, temperature)
    return save_policy(model, tokenizer, target)


@torch.no_grad()
def bake_temperature(model: LlamaForCausalLM, temperature: float) -> None:
    """Make sampling at temperature 1 behave as sampling at ``temperature`` did, by dividing the
    final norm's gain by it: every logit scales by ``1 / temperature`` (the output head is linear),
    so the greedy action and all features are unchanged while the policy flattens."""
    if temperature <= 0:
        raise ValueError(f"temperature={temperature}: use a positive temperature (1 leaves the policy as it is)")
    model.get_decoder().norm.weight.div_(temperature)


def unflattened_policy(policy: str | os.PathLike, target: str | os.PathLike, temperature: float = 3.0) -> Path:
    """Save (once) a copy of a warm-started tiny policy with its baked ``temperature`` taken out again:
    the clean supervised policy, a better policy than the one RL starts from. iStar's PRM can start
    from it (``TrainConfig.prm_model``)."""
    target = Path(target)
    if (target / "config.json").is_file():
        return target
    model = LlamaForCausalLM.from_pretrained(policy)
    with torch.no_grad():
        bake_temperature(model, 1.0 / temperature)
    return save_policy(model, PreTrainedTokenizerFast.from_pretrained(policy), target)


def warm_start_in_phases(
    model: LlamaForCausalLM,
    tokenizer: PreTrainedTokenizerFast,
    demonstrations: Callable[[float, int], Sequence[Turn]],
    phases: Sequence[tuple[float, int]],
    *,
    lr: float = 3e-3,
    batch_size: int = 128,
    seed: int = 0,
    anneal: bool = True,
) -> None:
    """`warm_start` phase by phase: phase ``i`` of ``(noise, steps)`` trains ``steps`` steps on
    ``demonstrations(noise, seed + i)`` (skipped when ``steps`` is 0), on one torch thread."""
    with _one_thread():
        for phase, (phase_noise, steps) in enumerate(phases):
            if steps:
                turns = demonstrations(phase_noise, seed + phase)
                warm_start(model, tokenizer, turns, steps=steps, batch_size=batch_size, lr=lr, seed=seed + phase, anneal=anneal)


def save_policy(model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, target: str | os.PathLike) -> Path:
    """Save model and tokenizer to ``target`` unless a policy is already there (written beside it and
    renamed, so a reader never sees it half-saved; a concurrent writer's copy wins)."""
    target = Path(target)
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    try:
        os.rename(staging, target)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not (target / "config.json").is_file():
            raise
    return target


@contextmanager
def _one_thread():
    """A model this small is bound by per-operation overhead: one torch thread is fastest, and more
    threads on a busy machine can be an order of magnitude slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _player_neighbours(rows: list[str]) -> str:
    """The cells above, below, left and right of the player; ``#`` off the board."""
    for r, row in enumerate(rows):
        for c, symbol in enumerate(row):
            if symbol in ("P", "S"):
                cells = []
                for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
                    rr, cc = r + dr, c + dc
                    inside = 0 <= rr < len(rows) and 0 <= cc < len(rows[rr])
                    cells.append(rows[rr][cc] if inside else "#")
                return "".join(cells)
    return "####"


def _has_wall_ring(rows: list[str]) -> bool:
    if len(rows) < 3 or any(len(row) != len(rows[0]) for row in rows) or len(rows[0]) < 3:
        return False
    ring = rows[0] + rows[-1] + "".join(row[0] + row[-1] for row in rows)
    return set(ring) == {"#"}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m istar_gym.rl.tiny", description="Build and warm-start the tiny Sokoban policy.")
    parser.add_argument("--out", required=True, help="directory to save the model and tokenizer to")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clean-steps", type=int, default=600, help="supervised steps on noise-free solver moves")
    parser.add_argument("--noisy-steps", type=int, default=0, help="supervised steps on noisy demonstrations")
    parser.add_argument("--temperature", type=float, default=3.0, help="sampling temperature baked into the policy")
    parser.add_argument("--noise", type=float, default=0.6, help="share of random moves in the noisy demonstrations")
    parser.add_argument("--env-kwargs", type=json.loads, default=None, metavar="JSON")
    arguments = parser.parse_args()
    print(
        prepare_tiny_policy(
            arguments.out,
            seed=arguments.seed,
            clean_steps=arguments.clean_steps,
            noisy_steps=arguments.noisy_steps,
            noise=arguments.noise,
            temperature=arguments.temperature,
            env_kwargs=arguments.env_kwargs,
        )
    )
