"""The implicit process reward model of iStar: a trainable causal LM scored against a reference.

Step reward of turn t (iStar, Eq. 1):

    r_t = beta * sum over the tokens of a_t of [log pi_phi(tok | ctx_t, ...) - log pi_ref(tok | ctx_t, ...)]

where a_t is the whole text the policy wrote that turn and ctx_t the context it saw. pi_phi is
trained online, one optimizer step per call of `update`, with trajectory-level DPO (Eq. 2) or, as in
PRIME, the cross-entropy of sigmoid(beta * S(tau)) against the outcome label (``loss="ce"``). Both
losses share every other line: the scores, the two-pass gradient, clipping, data parallelism.

Where the public reference code departs from the paper, this follows the paper, by construction:

- the DPO loss is differentiated through pi_phi itself (that code detached the scores, so its PRM
  never changed); `update` reports the gradient norm, and takes no step only when there is no
  training example (no pair for DPO, no labelled trajectory for the cross-entropy);
- a trajectory's score is the *sum* of its step log-ratios (Eq. 2; ``trajectory_score="mean"``
  divides by the number of turns, a variant), and pairs span the whole group (not one device's shard);
- step rewards are not rescaled by the batch's largest magnitude (the paper never does);
- the PRM only ever reads text: for image envs the wrapper hands it a text rendering of the state
  (``obs["text"]`` or ``info["board_text"]``), where that code scored Sokoban turns without the board.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import torch

from istar_gym.llm.hf import tokenize_context_completion
from istar_gym.prm.dpo import ce_loss, dpo_loss, outcome_labels, preference_pairs
from istar_gym.prm.scoring import CachedScorer, action_logprobs
from istar_gym.prm.tokens import Turn, truncate_turn

__all__ = ["DPOUpdate", "EpisodeScorer", "ImplicitPRM", "TurnLike"]

# A turn as text (tokenised here with the backends' rule) or as the caller's own token ids
# ``(context_ids, action_ids)``, which is what trainers store.
TurnLike = Turn | tuple[Sequence[int], Sequence[int]]
# A reference log-prob of one turn: summed over the action tokens, or one value per action token.
ReferenceLogprob = float | Sequence[float]
PRM_LOSSES = ("dpo", "ce")


@dataclass
class DPOUpdate:
    """What one `ImplicitPRM.update` did (with either loss); log these for ablations (the paper's diagnostics)."""

    loss: float
    """The PRM's loss before the step: mean DPO loss over the pairs, or mean cross-entropy over the
    labelled trajectories (ln 2 for both means the PRM does not tell outcomes apart yet)."""
    pairs: int
    """Number of (preferred, rejected) pairs, counted under either loss (they define ``accuracy``)."""
    examples: int
    """Training examples of the loss: the pairs (DPO) or the labelled trajectories (cross-entropy); 0
    means no optimizer step was taken (data-parallel: none in any process)."""
    accuracy: float
    """Fraction of pairs with S(tau+) > S(tau-) before the step (NaN when there are no pairs), the
    same ranking metric under either loss."""
    grad_norm: float
    """Total gradient norm of pi_phi before clipping (data-parallel: of the averaged gradient); 0
    only when no step was taken."""
    step_rewards: list[torch.Tensor]
    """Per trajectory, the step rewards of its turns under the PRM *before* this step (Alg. 1)."""


class ImplicitPRM:
    """A causal LM ``pi_phi`` plus a reference ``pi_ref``, giving implicit step rewards.

    Args:
        model: the trainable LM, usually a copy of the policy at initialisation (the PRM owns it).
        tokenizer: its tokenizer, with a chat template; text turns are tokenised with the policy
            backends' rule (`istar_gym.llm.hf.tokenize_context_completion`).
        reference: ``"copy"`` (default) freezes a copy of ``model`` as pi_ref; ``"supplied"`` keeps
            none and every scoring call takes the reference log-probs from the caller (trainers pass
            those of the rollout policy pi_old, as the paper does); or a frozen model of its own.
        reference_tokenizer: the tokenizer of a ``reference`` model; refused if it differs from
            ``tokenizer``, since the two log-probs would then describe different token sequences.
        beta: reward scale (paper: 0.05), also the temperature of the loss.
        lr, max_grad_norm, weight_decay: AdamW settings of the update (paper: 1e-6, 10, 0).
        batch_size: turns per forward pass in batched scoring and in the update.
        max_length: token window per turn (default: the model's ``max_position_embeddings``); see
            `istar_gym.prm.truncate_turn` for the truncation rule.
        trajectory_score: how the loss scores a trajectory from its turns' log-ratios: ``"sum"`` (paper,
            Eq. 2) or ``"mean"``. With the sum, every turn of a long failed episode is pushed down as
            hard as a turn of a short success is pushed up, so moves common to both (often the good
            ones) go down; the mean gives every trajectory the same total weight.
        loss: ``"dpo"`` (iStar, Eq. 2: pairs of different outcomes within a group) or ``"ce"``
            (PRIME: each trajectory's sigmoid(beta * S) against its outcome label, see
            `istar_gym.prm.outcome_labels`; uses groups with a single outcome too).
        autocast: run the batched forwards under `torch.autocast` to this dtype (``torch.bfloat16``:
            mixed precision, as a trainer's ``--precision bf16``); ``None`` (default) keeps float32.

    Data-parallel training: set ``prm.data_parallel`` to a `DistributedDataParallel` around
    ``prm.model``; every process then calls `update` with its own whole groups (pairs never cross
    processes), and the gradients are averaged over processes before the one shared step.

    Example:
        >>> prm = ImplicitPRM.from_pretrained()                     # SmolLM2-135M-Instruct, frozen copy
        >>> turn = Turn([{"role": "user", "content": "Push the box."}], "<action>up</action>")
        >>> prm.step_rewards([turn])                                 # identical models: exactly 0
        tensor([0.])
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer,
        *,
        reference: str | torch.nn.Module = "copy",
        reference_tokenizer=None,
        beta: float = 0.05,
        lr: float = 1e-6,
        max_grad_norm: float = 10.0,
        weight_decay: float = 0.0,
        batch_size: int = 8,
        max_length: int | None = None,
        trajectory_score: str = "sum",
        loss: str = "dpo",
        autocast: torch.dtype | None = None,
    ):
        if not (isinstance(beta, (int, float)) and math.isfinite(beta) and beta > 0):
            raise ValueError(f"ImplicitPRM: beta={beta!r} must be a finite number > 0 (paper: 0.05)")
        if trajectory_score not in ("sum", "mean"):
            raise ValueError(f"ImplicitPRM: trajectory_score={trajectory_score!r}; expected 'sum' (paper) or 'mean'")
        if loss not in PRM_LOSSES:
            raise ValueError(f"ImplicitPRM: loss={loss!r}; expected 'dpo' (iStar) or 'ce' (PRIME's cross-entropy on outcome labels)")
        if tokenizer.pad_token_id is None and tokenizer.eos_token_id is None:
            raise ValueError("ImplicitPRM: the tokenizer has neither a pad nor an EOS token; set tokenizer.pad_token")
        self.model = model.eval().requires_grad_(True)
        self.tokenizer = tokenizer
        self.beta = float(beta)
        self.trajectory_score = trajectory_score
        self.loss = loss
        self.autocast = autocast  # the forwards' mixed-precision dtype (None: float32), as the policy's
        self.max_grad_norm = float(max_grad_norm)
        self.batch_size = int(batch_size)
        self.max_length = int(max_length or getattr(model.config, "max_position_embeddings", 2048))
        self.reference_model = _make_reference(model, tokenizer, reference, reference_tokenizer)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=lr, betas=(0.9, 0.999), weight_decay=weight_decay)
        self.version = 0  # optimizer steps taken; incremental scorers drop their caches when it moves
        self.data_parallel: torch.nn.Module | None = None  # a DDP wrapper of self.model, or None

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike | None = None,
        beta: float = 0.05,
        *,
        reference: str | os.PathLike | torch.nn.Module = "copy",
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        **kwargs,
    ) -> ImplicitPRM:
        """Load pi_phi with `istar_gym.llm.load_model` (``None``: the default SmolLM2-135M-Instruct).

        ``reference`` is ``"copy"``, ``"supplied"``, a model, or a local path to load as the reference
        (its tokenizer must match). Other keyword arguments go to the constructor.
        """
        from istar_gym.llm import load_model

        model, tokenizer = load_model(name_or_path, device=device, dtype=dtype)
        reference_tokenizer = kwargs.pop("reference_tokenizer", None)
        if not isinstance(reference, torch.nn.Module) and str(reference) not in ("copy", "supplied"):
            reference, reference_tokenizer = load_model(reference, device=device, dtype=dtype)
        return cls(model, tokenizer, reference=reference, reference_tokenizer=reference_tokenizer, beta=beta, **kwargs)

    # -- scoring -----------------------------------------------------------------------------

    def encode(self, turn: TurnLike) -> tuple[list[int], list[int]]:
        """``(context_ids, action_ids)`` of a turn, as every scoring path sees it (truncated to the window)."""
        return self._encode(turn)[:2]

    def log_ratios(self, turns: Sequence[TurnLike], reference_logprobs: Sequence[ReferenceLogprob] | None = None) -> torch.Tensor:
        """Per turn, ``log pi_phi(a_t|ctx_t) - log pi_ref(a_t|ctx_t)`` summed over the action's tokens.

        ``reference_logprobs`` gives, per turn, pi_ref's log-prob of the action: summed, or one value
        per action token (then checked against the PRM's tokenisation, which catches a policy with
        another tokenizer). Required with ``reference="supplied"``; overrides the frozen copy otherwise.
        """
        encoded = [self._encode(turn) for turn in turns]
        with torch.no_grad():
            policy = self._logprobs(self.model, [(c, a) for c, a, _ in encoded], "pi_phi")
            return policy - self._reference_logprobs(encoded, reference_logprobs)

    def step_rewards(self, turns: Sequence[TurnLike], reference_logprobs: Sequence[ReferenceLogprob] | None = None) -> torch.Tensor:
        """Batched step rewards ``beta * log_ratios(turns)``, shape ``[len(turns)]``, no gradient."""
        return self.beta * self.log_ratios(turns, reference_logprobs)

    def episode_scorer(self) -> EpisodeScorer:
        """An incremental scorer for the turns of one episode at a time (what the wrapper uses)."""
        if self.reference_model is None:
            raise ValueError(
                "ImplicitPRM: incremental scoring needs a reference model, but this PRM was built with "
                "reference='supplied'; build it with reference='copy' (or a model) to score inside an env"
            )
        return EpisodeScorer(self)

    # -- training ----------------------------------------------------------------------------

    def update(
        self,
        trajectories: Sequence[Sequence[TurnLike]],
        group_ids: Sequence[Hashable],
        outcomes: Sequence[bool | float | None],
        *,
        threshold: float | None = None,
        reference_logprobs: Sequence[Sequence[ReferenceLogprob]] | None = None,
        step: bool = True,
    ) -> DPOUpdate:
        """One optimizer step on pi_phi with the PRM's loss: multi-turn DPO over all preference pairs of
        each group (Eq. 2), or the cross-entropy against each trajectory's outcome label.

        Args:
            trajectories: per trajectory, its turns in order.
            group_ids, outcomes, threshold: how trajectories pair up (`preference_pairs`) and, for
                the cross-entropy, their labels (`outcome_labels`: success flags, scores above
                ``threshold``, or soft labels in [0, 1]).
            reference_logprobs: per trajectory, the reference log-prob of each turn (pi_old's, from
                the rollout policy), as in `log_ratios`; required with ``reference="supplied"``.
            step: ``False`` scores the batch and reports the loss and pair accuracy without changing
                pi_phi (a static PRM).

        The loss depends on pi_phi only through the trajectory scores S, so it is differentiated
        in two passes: S for every trajectory without a graph, then each micro-batch of turns is
        back-propagated with the weight dL/dS of its trajectory. Memory stays at one micro-batch
        however long the episodes are, and the gradient is exactly that of the full loss.
        """
        if not (len(trajectories) == len(group_ids) == len(outcomes)):
            raise ValueError(
                f"ImplicitPRM.update: {len(trajectories)} trajectories, {len(group_ids)} group ids and "
                f"{len(outcomes)} outcomes; give one of each per trajectory"
            )
        if reference_logprobs is not None and len(reference_logprobs) != len(trajectories):
            raise ValueError(
                f"ImplicitPRM.update: reference_logprobs has {len(reference_logprobs)} entries for "
                f"{len(trajectories)} trajectories; give one per-turn sequence per trajectory"
            )
        turns = [turn for trajectory in trajectories for turn in trajectory]
        owner = torch.tensor([index for index, trajectory in enumerate(trajectories) for _ in trajectory], dtype=torch.long)
        flat_reference = None
        if reference_logprobs is not None:
            flat_reference = [value for per_trajectory in reference_logprobs for value in per_trajectory]
        ratios = self.log_ratios(turns, flat_reference).cpu()
        scores = torch.zeros(len(trajectories)).index_add_(0, owner, ratios)
        turns_per_trajectory = torch.bincount(owner, minlength=len(trajectories)).clamp(min=1)
        if self.trajectory_score == "mean":
            scores = scores / turns_per_trajectory
        step_rewards = list(torch.split(self.beta * ratios, [len(trajectory) for trajectory in trajectories]))

        pairs = preference_pairs(group_ids, outcomes, threshold)
        accuracy = sum(float(scores[i] > scores[j]) for i, j in pairs) / len(pairs) if pairs else float("nan")
        labels = outcome_labels(outcomes, threshold) if self.loss == "ce" else []
        examples = sum(label is not None for label in labels) if self.loss == "ce" else len(pairs)
        if not step:
            loss = self._loss(scores, pairs, labels).item() if examples else 0.0
            return DPOUpdate(loss=loss, pairs=len(pairs), examples=examples, accuracy=accuracy, grad_norm=0.0, step_rewards=step_rewards)
        if self._examples_in_all_processes(examples) == 0:
            return DPOUpdate(loss=0.0, pairs=len(pairs), examples=0, accuracy=accuracy, grad_norm=0.0, step_rewards=step_rewards)
        # Data-parallel, a process without examples of its own still joins the shared step.
        loss, turn_weights = 0.0, torch.zeros(len(owner))
        if examples:
            leaf = scores.clone().requires_grad_(True)
            value = self._loss(leaf, pairs, labels)
            value.backward()
            loss, turn_weights = value.item(), leaf.grad[owner]
            if self.trajectory_score == "mean":
                turn_weights = turn_weights / turns_per_trajectory[owner]

        self.optimizer.zero_grad(set_to_none=True)
        active = turn_weights.nonzero().flatten().tolist()
        encoded = [self.encode(turns[index]) for index in active]
        trainable = self.model if self.data_parallel is None else self.data_parallel
        with self.data_parallel.no_sync() if self.data_parallel is not None else contextlib.nullcontext():
            for start in range(0, len(active), self.batch_size):
                chunk = slice(start, start + self.batch_size)
                logprobs = self._logprobs(trainable, encoded[chunk], "pi_phi")
                (logprobs * turn_weights[active[chunk]].to(logprobs.device)).sum().backward()
        self._average_gradients(turns)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.max_grad_norm)
        if not torch.isfinite(grad_norm):
            self.optimizer.zero_grad(set_to_none=True)
            raise FloatingPointError(
                f"ImplicitPRM.update: the {self.loss} gradient norm is {grad_norm.item()}; the step was skipped. "
                "Lower the learning rate or check the rewards and model for NaN/inf"
            )
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.version += 1
        return DPOUpdate(loss=loss, pairs=len(pairs), examples=examples, accuracy=accuracy, grad_norm=grad_norm.item(), step_rewards=step_rewards)

    # -- helpers -----------------------------------------------------------------------------

    def _loss(self, scores: torch.Tensor, pairs: list[tuple[int, int]], labels: list[float | None]) -> torch.Tensor:
        return ce_loss(scores, labels, self.beta) if self.loss == "ce" else dpo_loss(scores, pairs, self.beta)

    def _examples_in_all_processes(self, examples: int) -> int:
        if self.data_parallel is None:
            return examples
        total = torch.tensor([examples], device=next(self.model.parameters()).device)
        torch.distributed.all_reduce(total, group=self.data_parallel.process_group)
        return int(total.item())

    def _average_gradients(self, turns: Sequence[TurnLike]) -> None:
        """DDP averages the gradients accumulated under ``no_sync`` in the next backward pass through
        it: one zero-weight pass per update, so every process syncs once whatever its micro-batches."""
        if self.data_parallel is None:
            return
        probe = next((encoded for encoded in map(self.encode, turns) if encoded[1]), None)
        if probe is None:
            raise ValueError("ImplicitPRM.update: every action of this batch is empty; there is no turn to score")
        (self._logprobs(self.data_parallel, [probe], "pi_phi").sum() * 0.0).backward()

    def _logprobs(self, model, encoded, name: str) -> torch.Tensor:
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        return action_logprobs(model, encoded, pad_token_id=pad, batch_size=self.batch_size, name=name, autocast=self.autocast)

    def _encode(self, turn: TurnLike) -> tuple[list[int], list[int], int]:
        """Truncated context and action ids, plus the action's untruncated token count."""
        if isinstance(turn, Turn):
            if not isinstance(turn.action, str):
                raise TypeError(f"ImplicitPRM: a turn's action must be the generated text, got {type(turn.action).__name__}")
            context_ids, action_ids = tokenize_context_completion(self.tokenizer, turn.context, turn.action)
        elif isinstance(turn, (tuple, list)) and len(turn) == 2:
            context_ids, action_ids = (list(map(int, ids)) for ids in turn)
        else:
            raise TypeError(f"ImplicitPRM: a turn must be a Turn(context, action) or a (context_ids, action_ids) pair, got {turn!r:.80}")
        return (*truncate_turn(context_ids, action_ids, self.max_length), len(action_ids))

    def _reference_logprobs(self, encoded, supplied) -> torch.Tensor:
        device = next(self.model.parameters()).device
        if supplied is None:
            if self.reference_model is None:
                raise ValueError(
                    "ImplicitPRM: this PRM was built with reference='supplied', so pass reference_logprobs "
                    "(the rollout policy's log-probs of each turn's action)"
                )
            return self._logprobs(self.reference_model, [(c, a) for c, a, _ in encoded], "pi_ref").to(device)
        if len(supplied) != len(encoded):
            raise ValueError(f"ImplicitPRM: {len(supplied)} reference log-probs for {len(encoded)} turns; give one entry per turn")
        sums = []
        for index, ((_, action_ids, full_length), value) in enumerate(zip(encoded, supplied)):
            if isinstance(value, (int, float)) or (torch.is_tensor(value) and value.dim() == 0):
                sums.append(float(value))
                continue
            per_token = [float(v) for v in value]
            if len(per_token) != full_length:
                raise ValueError(
                    f"ImplicitPRM: turn {index} has {len(per_token)} reference token log-probs but its action has "
                    f"{full_length} tokens under the PRM's tokenizer; the policy and the PRM must share one tokenizer"
                )
            sums.append(sum(per_token[: len(action_ids)]))
        values = torch.tensor(sums, dtype=torch.float32, device=device)
        if not torch.isfinite(values).all():
            bad = (~torch.isfinite(values)).nonzero()[0].item()
            raise ValueError(
                f"ImplicitPRM: reference log-prob of turn {bad} is {values[bad].item()}; the rollout policy's "
                "log-probs must be finite (check its dtype and the sampled tokens)"
            )
        return values


class EpisodeScorer:
    """Step rewards of one episode's turns in order, reusing both models' KV caches across turns.

    Equal to `ImplicitPRM.step_rewards` on the same turns (up to float noise), but an episode whose
    contexts extend each other costs O(T) new tokens instead of O(T^2). Call `reset` between episodes.
    """

    def __init__(self, prm: ImplicitPRM):
        self.prm = prm
        self._policy = CachedScorer(prm.model, "pi_phi")
        self._reference = CachedScorer(prm.reference_model, "pi_ref")
        self._version = prm.version

    @property
    def tokens_processed(self) -> int:
        """New tokens run through pi_phi so far (pi_ref runs the same number)."""
        return self._policy.tokens_processed

    def reset(self) -> None:
        self._policy.reset()
        self._reference.reset()

    def step_reward(self, turn: TurnLike) -> float:
        """The implicit step reward of the next turn of the episode."""
        if self._version != self.prm.version:
            # pi_phi changed since its cache was filled: the cached keys and values are stale.
            self._policy.reset()
            self._version = self.prm.version
        context, action = self.prm.encode(turn)
        return self.prm.beta * (self._policy.logprob(context, action) - self._reference.logprob(context, action))


def _make_reference(model, tokenizer, reference, reference_tokenizer):
    if isinstance(reference, torch.nn.Module):
        if reference is model:
            raise ValueError("ImplicitPRM: reference is the trainable model itself; pass reference='copy' to freeze a copy")
        _check_same_vocabulary(model, tokenizer, reference, reference_tokenizer)
        return reference.eval().requires_grad_(False)
    if reference == "copy":
        return copy.deepcopy(model).eval().requires_grad_(False)
    if reference == "supplied":
        return None
    raise ValueError(f"ImplicitPRM: reference={reference!r}; expected 'copy', 'supplied' or a torch model")


def _check_same_vocabulary(model, tokenizer, reference, reference_tokenizer) -> None:
    model_vocab = model.get_input_embeddings().num_embeddings
    reference_vocab = reference.get_input_embeddings().num_embeddings
    if model_vocab != reference_vocab:
        raise ValueError(
            f"ImplicitPRM: the PRM has {model_vocab} token embeddings but the reference has {reference_vocab}; "
            "the log-ratio needs both models on one tokenizer (initialise the PRM from the reference policy)"
        )
    if reference_tokenizer is not None and reference_tokenizer.get_vocab() != tokenizer.get_vocab():
        raise ValueError(
            f"ImplicitPRM: tokenizer {tokenizer.name_or_path!r} and reference tokenizer "
            f"{reference_tokenizer.name_or_path!r} map text to different ids; the log-ratio needs one "
            "tokenizer (initialise the PRM from the reference policy)"
        )
