"""Multi-turn rollouts of an LLM policy in a vector env, in groups of identical tasks.

One call of `collect_rollouts` plays one episode in every sub-env of a vector env: each turn, the
contexts of all running episodes are generated for in one batch, the action text goes to the env, and
a `Turn` row keeps what the trainer and the PRM need (context and action token ids, the policy's
log-probs of the action tokens, the env reward, whether the env accepted the action). Seeds
``[s1]*G + [s2]*G + ...`` give G copies of each task, the groups RLOO/GRPO compare within (DESIGN 3).

An `Actor` holds the model, its prompt function and its sampling settings. The prompt function
comes from `context_builder`: the shared chat prompt (`istar_gym.prompts.build_messages`) for
instruction-tuned models, or the compact prompt of a tiny preset (named by the env's adapter,
`istar_gym.adapters`), tokenised by the backends' rule (`istar_gym.llm.hf.encode_prompt`). The PRM later scores the stored token ids, so it sees exactly the
policy's context.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import istar_gym  # noqa: F401  (registers the istar/... ids)
from istar_gym.adapters import adapter_for, load_entry_point
from istar_gym.llm.base import LLMBackend, Prompt
from istar_gym.llm.hf import encode_prompt, left_pad
from istar_gym.prm.scoring import autocast_forward, distinct, forward_with_cache
from istar_gym.prm.tail import tail_kwargs
from istar_gym.prompts import build_messages, observation_text

__all__ = [
    "Actor",
    "ContextBuilder",
    "Rollouts",
    "Turn",
    "collect_rollouts",
    "context_builder",
    "group_seeds",
    "make_vector_env",
    "random_play_success",
    "sample_actions",
]

_KNOWN_PROMPTS, _KNOWN_PROMPT_CHARS = 50_000, 256  # the most prompts an Actor keeps the token ids of, and their longest

# (observation, info, history of (observation text, action text)) -> the prompt of this turn
ContextBuilder = Callable[[Any, dict, Sequence[tuple[str, str]]], Prompt]


@dataclass
class Turn:
    """One (context, action) row of a trajectory: the unit of the policy loss and of a step reward."""

    episode: int
    group: int
    step: int
    context_ids: list[int]
    action_ids: list[int]
    action_text: str
    old_logprobs: list[float] = field(default_factory=list)
    reward: float = 0.0
    action_is_valid: bool = True
    state: Hashable = None


@dataclass
class Rollouts:
    """All turns of one batch of episodes plus per-episode outcomes (arrays indexed by episode).

    ``episode_return`` is the sum of env rewards: on WebShop, the purchase score (the paper's Score).
    """

    turns: list[Turn]
    group: np.ndarray
    episode_return: np.ndarray
    success: np.ndarray
    length: np.ndarray
    invalid_actions: np.ndarray

    @property
    def num_episodes(self) -> int:
        return len(self.group)

    def summary(self) -> dict[str, float]:
        """Batch-level statistics for the logs."""
        steps = max(int(self.length.sum()), 1)
        return {
            "success": float(self.success.mean()),
            "episode_return": float(self.episode_return.mean()),
            "episode_length": float(self.length.mean()),
            "invalid_rate": float(self.invalid_actions.sum() / steps),
            "env_steps": float(self.length.sum()),
        }


def group_seeds(rng: np.random.Generator, num_groups: int, group_size: int) -> list[int]:
    """``[s1]*G + [s2]*G + ...`` with fresh task seeds drawn from ``rng``."""
    tasks = rng.integers(0, 2**31 - 1, size=num_groups)
    return [int(seed) for seed in np.repeat(tasks, group_size)]


def make_vector_env(env_id: str, num_envs: int, env_kwargs: dict | None = None, mode: str = "sync") -> gym.vector.VectorEnv:
    """A vector env of ``num_envs`` copies; ``mode="async"`` runs them in subprocesses, started with
    "spawn" because a forked worker can deadlock in torch's thread pool once the trainer used it."""
    vector_kwargs = {"autoreset_mode": gym.vector.AutoresetMode.NEXT_STEP}
    if mode == "async":
        vector_kwargs.update(shared_memory=False, context="spawn")
    return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode=mode, vector_kwargs=vector_kwargs, **(env_kwargs or {}))


def context_builder(model, env_id: str, history_window: int = 2) -> ContextBuilder:
    """The prompt function for ``model`` on ``env_id``: the tiny preset's compact prompt if the model
    was built by one (its config carries the preset's marker; the env's adapter must name that
    preset), else the shared chat prompt (rendered by the model's chat template)."""
    marker = getattr(model.config, "istar_context", None)
    if marker is not None:
        preset = adapter_for(env_id).tiny_preset
        if preset is None or preset.marker != marker:
            raise ValueError(
                f"the model is a tiny {marker!r} policy, whose prompt {env_id} does not provide; train it on the env "
                "it was built for or pass --model default|PATH"
            )
        return load_entry_point(preset.context)

    def chat(observation, info, history) -> Prompt:
        return build_messages(
            info.get("instruction", ""),
            observation_text(observation),
            info.get("available_actions", ()),
            history,
            history_window,
        )

    return chat


@torch.no_grad()
def sample_actions(
    model,
    contexts: Sequence[Sequence[int]],
    *,
    max_new_tokens: int,
    eos_token_id: int,
    pad_token_id: int,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    autocast: torch.dtype | None = None,
) -> tuple[list[list[int]], list[list[float]]]:
    """Sample one completion per context (stopping at EOS, which is kept) with a KV cache.

    ``temperature=0`` is greedy. Returns the token ids and their log-probs under the untempered
    policy, the pi_old of the PPO ratio. Non-finite logits raise `FloatingPointError`. ``autocast``
    runs the forwards in that dtype, as `istar_gym.prm.action_logprobs` does for the update's.
    """
    device = next(model.parameters()).device
    # Identical contexts (copies of a task in the same state) share one prompt forward; each row
    # then samples, and decodes, on its own.
    prompts, inverse = distinct([tuple(context) for context in contexts])
    input_ids, attention_mask = (tensor.to(device) for tensor in left_pad(prompts, pad_token_id))
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    batch, rows = len(contexts), torch.tensor(inverse, dtype=torch.long, device=device)
    tokens = torch.full((batch, max_new_tokens), pad_token_id, dtype=torch.long, device=device)
    logprobs = torch.zeros(batch, max_new_tokens, device=device)
    lengths = torch.zeros(batch, dtype=torch.long, device=device)
    finished = torch.zeros(batch, dtype=torch.bool, device=device)
    past, read_last = None, tail_kwargs(model, 1)  # only the last position's logits are read
    step_ids, step_positions = input_ids, position_ids
    for index in range(max_new_tokens):
        with autocast_forward(device, autocast):
            output, past = forward_with_cache(
                model, past, input_ids=step_ids, attention_mask=attention_mask, position_ids=step_positions, logits_to_keep=1, **read_last
            )
        logits = output.logits[:, -1].float()
        if index == 0 and len(prompts) < batch:
            logits, attention_mask, step_positions = logits[rows], attention_mask[rows], step_positions[rows]
            past.reorder_cache(rows)
        _check_finite(logits, "policy logits during rollout")
        log_probs = torch.log_softmax(logits, dim=-1)
        if temperature > 0:
            choice = torch.multinomial(torch.softmax(logits / temperature, dim=-1), 1, generator=generator).squeeze(-1)
        else:
            choice = logits.argmax(-1)
        choice = torch.where(finished, torch.full_like(choice, pad_token_id), choice)
        tokens[:, index] = choice
        logprobs[:, index] = log_probs.gather(-1, choice[:, None]).squeeze(-1).masked_fill(finished, 0.0)
        lengths += (~finished).long()
        finished |= choice == eos_token_id
        if bool(finished.all()):
            break
        attention_mask = torch.cat([attention_mask, torch.ones(batch, 1, dtype=attention_mask.dtype, device=device)], -1)
        step_ids = choice[:, None]
        step_positions = step_positions[:, -1:] + 1
    tokens_list, logprob_list = tokens.tolist(), logprobs.tolist()
    counts = lengths.tolist()
    return [t[:n] for t, n in zip(tokens_list, counts)], [p[:n] for p, n in zip(logprob_list, counts)]


@dataclass
class Actor:
    """What plays the turns: a model, the prompt it reads and how it samples (``autocast``: the dtype
    of its forwards under mixed precision, ``None`` for float32).

    By default actions are sampled from ``model`` here, keeping the sampled token ids and their
    log-probs. With ``backend`` (any `istar_gym.llm` backend, e.g. ``HFBackend`` around the same
    model, or a vLLM one) the backend writes the text; its tokens are then the tokenizer's reading
    of that text and ``old_logprobs`` stay empty, so the trainer must recompute them.
    """

    model: Any
    tokenizer: Any
    build_context: ContextBuilder
    max_new_tokens: int
    temperature: float = 1.0
    generator: torch.Generator | None = None
    backend: LLMBackend | None = None
    autocast: torch.dtype | None = None
    # Token ids of plain-string prompts seen before: a tiny preset's boards recur across turns,
    # copies and iterations, and tokenising them again cost 8% of a Sokoban rollout.
    _known_prompts: dict[str, list[int]] = field(default_factory=dict, init=False, repr=False)

    def act(self, prompts: list[Prompt]) -> tuple[list[list[int]], list[list[int]], list[list[float]], list[str]]:
        """Context ids, action ids, action log-probs (empty from a backend) and action texts."""
        contexts = _encode_prompts(self.tokenizer, prompts, self._known_prompts)
        if self.backend is None:
            action_ids, action_logprobs = sample_actions(
                self.model,
                contexts,
                max_new_tokens=self.max_new_tokens,
                eos_token_id=self.tokenizer.eos_token_id,
                pad_token_id=self.tokenizer.pad_token_id,
                temperature=self.temperature,
                generator=self.generator,
                autocast=self.autocast,
            )
            return contexts, action_ids, action_logprobs, self.tokenizer.batch_decode(action_ids, skip_special_tokens=True)
        generator = self.generator
        seed = None if generator is None else int(torch.randint(2**31 - 1, (1,), generator=generator, device=generator.device))
        # The stored token ids, not the prompts: an engine re-tokenising them could differ from the rows the PRM scores.
        texts = self.backend.generate(contexts, max_new_tokens=self.max_new_tokens, temperature=self.temperature, seed=seed)
        action_ids = [list(self.tokenizer(text, add_special_tokens=False)["input_ids"]) for text in texts]
        return contexts, action_ids, [[] for _ in texts], texts


def collect_rollouts(
    envs: gym.vector.VectorEnv,
    actor: Actor,
    seeds: Sequence[int],
    *,
    group_size: int,
    max_turns: int,
    state_key: Callable[[Any, dict], Hashable] | None = None,
) -> Rollouts:
    """Play one episode in each sub-env (reset with ``seeds``) and return its turns and outcomes.

    ``state_key(observation, info)`` (the env adapter's) labels each turn with the exact state it
    was taken in, for step-level grouping and credit metrics.

    Episodes end when the env terminates or truncates, or after ``max_turns`` turns. A finished
    sub-env is reset at once to its own task (``reset_mask``), not left to the vector env's
    autoreset, which on the next step would start a random task nobody plays (for Sokoban,
    generating and solving a level: 0.1 s of a tiny preset's 1.4-s iteration; a seeded level is a
    cache hit). It then receives empty actions until the others finish; those steps are not recorded.
    """
    num_envs = envs.num_envs
    if len(seeds) != num_envs:
        raise ValueError(f"collect_rollouts: got {len(seeds)} seeds for {num_envs} envs; pass one seed per sub-env")
    observations, infos = envs.reset(seed=list(seeds))
    env_infos = {i: _sub_info(infos, i) for i in range(num_envs)}  # each sub-env's info, split once per step
    histories: list[list[tuple[str, str]]] = [[] for _ in range(num_envs)]
    running = np.ones(num_envs, dtype=bool)
    returns = np.zeros(num_envs)
    success = np.zeros(num_envs, dtype=bool)
    length = np.zeros(num_envs, dtype=int)
    invalid = np.zeros(num_envs, dtype=int)
    turns: list[Turn] = []
    for step in range(max_turns):
        active = np.flatnonzero(running)
        if active.size == 0:
            break
        prompts = [actor.build_context(observations[i], env_infos[i], histories[i]) for i in active]
        contexts, action_ids, action_logprobs, texts = actor.act(prompts)
        actions = [""] * num_envs
        for j, i in enumerate(active):
            actions[i] = texts[j]
        next_observations, rewards, terminated, truncated, next_infos = envs.step(actions)
        next_env_infos = {}
        ended = np.zeros(num_envs, dtype=bool)
        for j, i in enumerate(active):
            info = next_env_infos[i] = _sub_info(next_infos, i)
            valid = bool(info.get("action_is_valid", True))
            turns.append(
                Turn(
                    episode=int(i),
                    group=int(i) // group_size,
                    step=step,
                    context_ids=contexts[j],
                    action_ids=action_ids[j],
                    action_text=texts[j],
                    old_logprobs=action_logprobs[j],
                    reward=float(rewards[i]),
                    action_is_valid=valid,
                    state=None if state_key is None else state_key(observations[i], env_infos[i]),
                )
            )
            histories[i].append((observation_text(observations[i]), texts[j]))
            returns[i] += float(rewards[i])
            length[i] += 1
            invalid[i] += not valid
            success[i] = bool(info.get("success", False))
            if terminated[i] or truncated[i]:
                running[i], ended[i] = False, True
        if ended.any() and running.any():
            envs.reset(seed=list(seeds), options={"reset_mask": ended})
        observations, env_infos = next_observations, next_env_infos
    return Rollouts(
        turns=turns,
        group=np.arange(num_envs) // group_size,
        episode_return=returns,
        success=success,
        length=length,
        invalid_actions=invalid,
    )


def random_play_success(env_id: str, env_kwargs: dict | None, seeds: Sequence[int], max_turns: int, seed: int = 0) -> float:
    """Success rate of uniformly random choices among ``info["available_actions"]``: the floor a
    learned policy must clear (27.5% on 6x6 / 1-box Sokoban in the CPU feasibility study)."""
    env = gym.make(env_id, **(env_kwargs or {}))
    rng = np.random.default_rng(seed)
    wins = 0
    for task in seeds:
        _, info = env.reset(seed=int(task))
        for _ in range(max_turns):
            actions = info["available_actions"]
            _, _, terminated, truncated, info = env.step(actions[int(rng.integers(len(actions)))])
            if terminated or truncated:
                break
        wins += bool(info["success"])
    env.close()
    return wins / max(len(seeds), 1)


# --- private helpers -------------------------------------------------------------------------


def _encode_prompts(tokenizer, prompts: list[Prompt], known: dict[str, list[int]]) -> list[list[int]]:
    """`encode_prompt` of each prompt. Plain-string prompts not in ``known`` go through the tokenizer
    in one call; the short ones (a tiny preset's; longer ones rarely recur) then join ``known``,
    which is emptied when it would pass ``_KNOWN_PROMPTS`` entries."""
    if not all(isinstance(prompt, str) for prompt in prompts):
        return [encode_prompt(tokenizer, prompt) for prompt in prompts]
    new = [prompt for prompt in dict.fromkeys(prompts) if prompt not in known]
    fresh = dict(zip(new, tokenizer(new)["input_ids"])) if new else {}
    ids = [list(fresh[prompt] if prompt in fresh else known[prompt]) for prompt in prompts]
    short = {prompt: value for prompt, value in fresh.items() if len(prompt) <= _KNOWN_PROMPT_CHARS}
    if len(known) + len(short) > _KNOWN_PROMPTS:
        known.clear()
    known.update(short)
    return ids


def _sub_info(infos: dict, index: int) -> dict:
    """Sub-env ``index``'s info from a vector env's batched info dict (keys with a ``_key`` mask;
    a dict-valued info, such as WebShop's ``reward_details``, is batched as a nested dict)."""
    return {
        key: _sub_info(value, index) if isinstance(value, dict) else value[index]
        for key, value in infos.items()
        if not key.startswith("_") and (f"_{key}" not in infos or infos[f"_{key}"][index])
    }


def _check_finite(values: torch.Tensor, what: str) -> None:
    if not torch.isfinite(values).all():
        raise FloatingPointError(f"{what} contain NaN or inf: the model weights have diverged")
