"""The tiny CPU preset for WebShop: a ~0.1M-parameter Llama that shops, and its SFT warm start.

Like `istar_gym.rl.tiny` (Sokoban), the policy is a real `LlamaForCausalLM` with a real
`PreTrainedTokenizerFast`, saved and loaded with ``save_pretrained``/``from_pretrained``; only its
size and its prompt are chosen so that RL runs in minutes on two CPU cores:

* **Vocabulary**: one token per *unit* of the catalogue: instruction words, option names, whole
  option values (``12 ounce (pack of 2)`` is one token), the page buttons, plus the action syntax
  ``search[``, ``click[`` and ``]``. A unit token starts with ``▁``, which WebShop text never
  contains, so tokenizing is unambiguous and decoding joins units with spaces: the tokens
  ``click[`` ``▁navy blue`` ``]`` decode to exactly ``click[navy blue]``. An ASIN is ``▁b0`` and
  one token per character (``b0ffte7xay``: 9 tokens): copying 8 frequent characters from the
  results list is learnt in a few hundred warm-start steps, copying one of a thousand rarely seen
  ASIN tokens is not. The tokenizer is built from one catalogue (`build_webshop_tokenizer`), so a
  policy belongs to its ``env_kwargs``.
* **Context** (`tiny_webshop_context`, at most 45 tokens): the instruction compacted to
  ``INSTRUCTION_SLOTS`` units (opening words, stop words and the price clause dropped; option names
  and values kept, as search ranks by them) padded with ``·`` to a fixed length, so a query copied
  from it sits at a fixed distance; the page kind; the first ``RESULT_SLOTS`` result ASINs on a
  results page, or the option values not yet clicked on an item page; and ``>``. The policy answers
  ``search[<units>]`` or ``click[<unit>]`` and EOS. The PRM scores exactly these token ids.
* **Warm start** (`prepare_tiny_webshop_policy`): supervised learning on demonstrations of a player
  that knows the goal's options and acts only through what the context shows: it searches the
  compacted instruction, clicks the first result, clicks the asked options and buys; first clean,
  then with random choices mixed in. RL starts from a weak policy that must still learn, among
  other things, when a lower result is the better buy.

Example (then ``istar-train --model runs/tiny-webshop --env istar/WebShop-v0``, same env kwargs):
    >>> prepare_tiny_webshop_policy("runs/tiny-webshop", env_kwargs={"num_products": 1000})  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

import gymnasium as gym
import numpy as np
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

import istar_gym  # noqa: F401  (registers the istar/... ids)
from istar_gym.envs.webshop.search import STOP_WORDS
from istar_gym.envs.webshop.shop import Shop
from istar_gym.envs.webshop.site import parse_action
from istar_gym.prompts import observation_text
from istar_gym.rl.rollout import Turn
from istar_gym.rl.tiny import TinySpec, bake_temperature, build_tiny_model, save_policy, warm_start_in_phases

__all__ = [
    "BUTTONS",
    "ENV_ID",
    "INSTRUCTION_SLOTS",
    "MAX_ACTION_TOKENS",
    "RESULT_SLOTS",
    "TINY_WEBSHOP_CONTEXT",
    "WEBSHOP_SPEC",
    "build_tiny_webshop_model",
    "build_webshop_tokenizer",
    "collect_webshop_demonstrations",
    "compact_instruction",
    "prepare_tiny_webshop_policy",
    "tiny_webshop_context",
]

ENV_ID = "istar/WebShop-v0"
# Marker saved in the model config, so `istar_gym.rl.rollout.context_builder` gives a reloaded model this prompt.
TINY_WEBSHOP_CONTEXT = "tiny_webshop"
INSTRUCTION_SLOTS = 16  # the longest compacted synthetic instruction of a 3000-product catalogue
RESULT_SLOTS = 3
OPTION_SLOTS = 12
MAX_ACTION_TOKENS = INSTRUCTION_SLOTS + 3  # search[, the query, ], EOS
BUTTONS = ("back to search", "next >", "< prev", "description", "features", "reviews", "buy now")
# Contexts hold up to 45 tokens and actions up to 19.
WEBSHOP_SPEC = TinySpec(max_positions=64)

_MARK = "\u2581"
_ASIN_HEAD = "b0"  # an ASIN is "b0" and 8 of these characters, one token each
_ASIN_CHARS = "0123456789abcdefghijklmnopqrstuvwxyz"
_FILL = "\u00b7"
_PAGES = ("search", "results", "item", "sub", "done")
_SPECIALS = ("<pad>", "<s>", "</s>", "<unk>")
_SYNTAX = ("search[", "click[", "]")
_OPENING_WORDS = frozenset(
    ("i", "i'm", "am", "looking", "searching", "for", "would", "like", "need", "want", "can", "you", "find", "show", "get", "me", "a", "an")
)
_FILLER_WORDS = STOP_WORDS | {"featuring"}
_PRICE_CLAUSE = re.compile(r",? and price lower than [\d.]+ dollars\s*$")
_OPTION_CLAUSE = re.compile(r"(?: with|, and) ([^,:]+): ([^,]+)")


def compact_instruction(instruction: str) -> list[str]:
    """The instruction's units for the tiny context: product words without the opening words
    (``i am looking for``), stop words and ``featuring``, then each asked option's name and value
    (one unit each), without the price clause; product words are cut first to fit the slots."""
    text = _PRICE_CLAUSE.sub("", instruction.lower().strip())
    first_option = _OPTION_CLAUSE.search(text)
    product = text if first_option is None else text[: first_option.start()]
    options = [] if first_option is None else _OPTION_CLAUSE.findall(text[first_option.start() :])
    words = [word.strip(".;!?") for word in re.split(r"[\s,]+", product)]
    words = [word for word in words if word]
    while words and words[0] in _OPENING_WORDS:
        words.pop(0)
    option_units = [unit.strip() for pair in options for unit in pair][:INSTRUCTION_SLOTS]
    product_units = [word for word in words if word not in _FILLER_WORDS]
    return product_units[: INSTRUCTION_SLOTS - len(option_units)] + option_units


def tiny_webshop_context(observation, info: dict, history: Sequence[tuple[str, str]]) -> str:
    """The tiny policy's prompt (an `istar_gym.rl.rollout.ContextBuilder`): instruction units padded to
    ``INSTRUCTION_SLOTS``, ``<page>``, the click targets it may choose from, and ``>``.

    Item pages list only options not yet clicked since the product was opened (read from
    ``history``, skipping actions the env rejected), so the prompt shows what is left to choose.
    """
    missing = [key for key in ("instruction", "page", "available_actions") if key not in info]
    if missing:
        raise ValueError(
            f"the tiny WebShop preset reads info[{missing[0]!r}], which this env does not provide; train it on {ENV_ID} or pass --model default|PATH"
        )
    units = compact_instruction(info["instruction"])
    units += [_FILL] * (INSTRUCTION_SLOTS - len(units))
    units += [f"<{info['page']}>", *_shown_targets(observation, info, history), ">"]
    return "".join(_MARK + unit for unit in units)


def build_webshop_tokenizer(shop: Shop) -> PreTrainedTokenizerFast:
    """A word-level tokenizer over the units of ``shop``'s goals, options and buttons, with ASINs
    spelt out (see the module docstring); anything else is ``<unk>``, which decoding drops."""
    units = {*BUTTONS, "<query>", _FILL, ">", _ASIN_HEAD, *(f"<{page}>" for page in _PAGES)}
    for product in shop.products:
        units.update(value for values in product.options.values() for value in values)
    for goal in shop.goals:
        units.update(compact_instruction(goal.instruction_text))
    tokens = [*_SPECIALS, *_SYNTAX, *_ASIN_CHARS, *sorted(_MARK + unit for unit in units)]
    backend = Tokenizer(models.WordLevel({token: index for index, token in enumerate(tokens)}, unk_token="<unk>"))
    backend.normalizer = normalizers.Replace("[", "[" + _MARK)
    asin = rf"{_MARK}{_ASIN_HEAD}(?=[{_ASIN_CHARS}]{{8}}(?:\]|{_MARK}|$))"
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(rf"search\[|click\[|\]|{asin}|{_MARK}[^{_MARK}\]]*|[\s\S]"), behavior="isolated")
    backend.decoder = decoders.Sequence([decoders.Fuse(), decoders.Replace("[" + _MARK, "["), decoders.Replace(_MARK, " ")])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )


def build_tiny_webshop_model(env_kwargs: dict | None = None, spec: TinySpec = WEBSHOP_SPEC, seed: int = 0) -> tuple[LlamaForCausalLM, PreTrainedTokenizerFast]:
    """A freshly initialised tiny Llama with the tokenizer of the catalogue ``env_kwargs`` make."""
    tokenizer = build_webshop_tokenizer(_shop(env_kwargs))
    return build_tiny_model(spec, seed, tokenizer=tokenizer, context=TINY_WEBSHOP_CONTEXT)


def collect_webshop_demonstrations(
    env_kwargs: dict | None = None,
    episodes: int = 300,
    noise: float = 0.0,
    seed: int = 0,
    tokenizer: PreTrainedTokenizerFast | None = None,
    max_turns: int = 10,
) -> list[Turn]:
    """Turns of a demonstrator that knows the goal's options but chooses only among what the tiny
    context shows (the first result; the asked options, then ``buy now``); with probability
    ``noise`` per turn it chooses at random instead (a random subset of the
    query units on the search page, a random shown result, a random shown option or ``buy now``).

    Goals come from the train split unless ``env_kwargs`` names a split, so test goals stay unseen.
    """
    env_kwargs = {"split": "train", **(env_kwargs or {})}
    tokenizer = tokenizer or build_webshop_tokenizer(_shop(env_kwargs))
    env = gym.make(ENV_ID, **env_kwargs)
    rng = np.random.default_rng(seed)
    turns: list[Turn] = []
    for episode in range(episodes):
        observation, info = env.reset(seed=int(rng.integers(2**31)))
        history: list[tuple[str, str]] = []
        for step in range(max_turns):
            name, units = _demonstration(env.unwrapped, observation, info, history, rng, noise)
            action = f"{name}[{' '.join(units)}]"
            action_ids = _encode_units(tokenizer, name, units)
            turns.append(
                Turn(
                    episode=episode,
                    group=episode,
                    step=step,
                    context_ids=tokenizer(tiny_webshop_context(observation, info, history))["input_ids"],
                    action_ids=action_ids + [tokenizer.eos_token_id],
                    action_text=action,
                )
            )
            history.append((observation_text(observation), action))
            observation, _, terminated, truncated, info = env.step(action)
            if terminated or truncated:
                break
    env.close()
    return turns


def prepare_tiny_webshop_policy(
    target: str | os.PathLike,
    *,
    seed: int = 0,
    episodes: int = 2000,
    clean_steps: int = 600,
    noisy_steps: int = 0,
    noise: float = 0.2,
    temperature: float = 1.0,
    lr: float = 3e-3,
    env_kwargs: dict | None = None,
    spec: TinySpec = WEBSHOP_SPEC,
) -> Path:
    """Build, warm-start and save a tiny WebShop policy to ``target``, unless one is there.

    As for Sokoban (`istar_gym.rl.tiny.prepare_tiny_policy`): ``clean_steps`` on noise-free
    demonstrations teach copying the query and the ASIN and matching options, then ``noisy_steps``
    with ``noise`` random choices flatten the policy. The defaults skip the noisy phase: copying is
    learnt late (after 300-450 steps of batch 64) and is not yet stable then, while the clean
    policy is already weak (on the test goals of the 1000-product catalogue, about 0.2 success and
    0.5 score at temperature 1; the clean demonstrator reaches 0.4 and 0.64), so no temperature
    is baked in by default (`istar_gym.rl.tiny.bake_temperature`).
    """
    target = Path(target)
    if (target / "config.json").is_file():
        return target
    model, tokenizer = build_tiny_webshop_model(env_kwargs, spec, seed)

    def demonstrations(phase_noise: float, phase_seed: int) -> list[Turn]:
        return collect_webshop_demonstrations(env_kwargs, episodes, phase_noise, phase_seed, tokenizer)

    phases = ((0.0, clean_steps), (noise, noisy_steps))
    # A constant rate, as every WebShop comparison of the README was measured with (Sokoban's anneals).
    warm_start_in_phases(model, tokenizer, demonstrations, phases, lr=lr, batch_size=64, seed=seed, anneal=False)
    bake_temperature(model, temperature)
    return save_policy(model, tokenizer, target)


# --- private helpers -------------------------------------------------------------------------


def _shop(env_kwargs: dict | None) -> Shop:
    env = gym.make(ENV_ID, **{**(env_kwargs or {}), "split": "all"})
    shop = env.unwrapped.shop
    env.close()
    return shop


def _click_targets(available_actions: Sequence[str]) -> list[str]:
    """The products (results page) or option values (item page) among the available clicks."""
    targets = []
    for action in available_actions:
        name, argument = parse_action(action)
        if name == "click" and argument not in BUTTONS:
            targets.append(argument)
    return targets


def _shown_targets(observation, info: dict, history: Sequence[tuple[str, str]]) -> list[str]:
    targets = _click_targets(info["available_actions"])
    if info["page"] == "results":
        return targets[:RESULT_SLOTS]
    if info["page"] == "item":
        clicked = _clicked_options(observation, history, set(targets))
        return [target for target in targets if target not in clicked][:OPTION_SLOTS]
    return []


def _clicked_options(observation, history: Sequence[tuple[str, str]], options: set[str]) -> set[str]:
    """Options clicked since the current product was opened: walk back through the accepted actions
    while they are option clicks or visits to the product's sub-pages (which keep the options)."""
    clicked: set[str] = set()
    after = observation_text(observation)
    for seen, action in reversed(history):
        accepted = not after.startswith("Invalid action")
        after = seen
        if not accepted:
            continue
        name, argument = parse_action(action)
        if name == "click" and argument in options:
            clicked.add(argument)
        elif not (name == "click" and argument in ("description", "features", "reviews", "< prev")):
            break
    return clicked


def _encode_units(tokenizer: PreTrainedTokenizerFast, name: str, units: Sequence[str]) -> list[int]:
    """Token ids of ``name[unit unit ...]``, one unit after another: the text of a query joins its
    units with spaces, so it cannot be split back into units, but each unit can be tokenized."""
    ids = tokenizer.convert_tokens_to_ids([f"{name}["])
    for unit in units:
        ids += tokenizer(_MARK + unit)["input_ids"]
    return ids + tokenizer.convert_tokens_to_ids(["]"])


def _demonstration(env, observation, info: dict, history, rng: np.random.Generator, noise: float) -> tuple[str, list[str]]:
    """The demonstrator's action as (``search`` or ``click``, units)."""
    page = info["page"]
    explore = rng.random() < noise
    if page == "search":
        units = compact_instruction(info["instruction"])
        if explore:
            kept = [unit for unit in units if rng.random() < 0.5]
            units = kept or [units[int(rng.integers(len(units)))]]
        return "search", units
    shown = _shown_targets(observation, info, history)
    if page == "results":
        if not shown:
            return "click", ["back to search"]
        return "click", [shown[int(rng.integers(len(shown))) if explore else 0]]
    if page == "item":
        if explore:
            choices = [*shown, "buy now"]
            return "click", [choices[int(rng.integers(len(choices)))]]
        options = env.goal.goal_options
        wanted = options.values() if isinstance(options, dict) else options
        remaining = [value for value in wanted if value in shown]
        return "click", [remaining[0] if remaining else "buy now"]
    return "click", ["< prev"]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m istar_gym.rl.tiny_webshop", description="Build and warm-start the tiny WebShop policy.")
    parser.add_argument("--out", required=True, help="directory to save the model and tokenizer to")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clean-steps", type=int, default=600, help="supervised steps on noise-free demonstrations")
    parser.add_argument("--noisy-steps", type=int, default=0, help="supervised steps on noisy demonstrations")
    parser.add_argument("--noise", type=float, default=0.2, help="share of random choices in the noisy demonstrations")
    parser.add_argument("--env-kwargs", type=json.loads, default=None, metavar="JSON", help="the catalogue, e.g. num_products")
    arguments = parser.parse_args()
    print(
        prepare_tiny_webshop_policy(
            arguments.out,
            seed=arguments.seed,
            clean_steps=arguments.clean_steps,
            noisy_steps=arguments.noisy_steps,
            noise=arguments.noise,
            env_kwargs=arguments.env_kwargs,
        )
    )
