"""Sokoban for LLM agents: text actions, a text board, and an image variant."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from istar_gym.envs._inputs import EpisodeNotRunning, action_body, index_option, quoted, reset_options
from istar_gym.envs.sokoban.levels import DIRECTIONS, Level, check_enclosed, generate_level, level_split, load_boxoban, parse_level
from istar_gym.envs.sokoban.render import TILE_CODES, render_rgb, tile_sheet
from istar_gym.envs.sokoban.solver import optimal_steps
from istar_gym.spaces import Text

__all__ = ["SokobanEnv", "VisualSokobanEnv", "parse_action"]

ACTIONS = tuple(DIRECTIONS)
MAX_ACTION_LENGTH = 8192

_PUNCTUATION = " \t\r\n.,;:!?'\"`*()[]{}"
_FEEDBACK_ECHO = 60
_SYMBOLS = np.array(list("#_OX√PS"))  # the observation's symbol for each of TILE_CODES, in order
# Levels generated for a seed, with their optimal moves and the RNG state after the generation,
# shared by every env of the process: a trainer resets G copies of each task with one seed, and a
# hit restores the state a generation would have left, so a hit and a miss continue identically.
_SEEDED_LEVELS: dict[tuple, tuple[Level, int | None, dict]] = {}
_SEEDED_LEVELS_KEPT = 4096


def parse_action(text: str) -> str | None:
    """The move named by an LLM's text, or None if it names none.

    The text inside the first ``<action>...</action>`` is used if present, else the whole text;
    it is lower-cased and stripped of whitespace, quotes and punctuation, and must then be exactly
    one of ``up``, ``down``, ``left``, ``right`` (``"Up."`` is up; ``"upward"`` is invalid).
    Linear in the length of the text.
    """
    if not isinstance(text, str):
        return None
    word = action_body(text).strip(_PUNCTUATION).lower()
    return word if word in DIRECTIONS else None


class SokobanEnv(gym.Env):
    """Sokoban with string actions and a text board, set up as in the iStar paper.

    ## Description
    Push every box onto a target. Levels are generated from the reset seed by reverse play from a
    solved position, so each is solvable, or taken from a level list (e.g. a Boxoban file).

    ## Observation Space
    ``istar_gym.spaces.Text``: the board, one row per line, with the symbols
    ``#`` wall, ``_`` floor, ``O`` target, ``X`` box, ``√`` box on target, ``P`` player,
    ``S`` player on target. After an invalid action a feedback paragraph follows the board.
    ``info["board_text"]`` always holds the bare board. For RL libraries that need numbers,
    `SokobanOneHot` wraps the env with ``Discrete(4)`` actions and a one-hot board.

    ## Action Space
    ``istar_gym.spaces.Text``: free text. The move is read from ``<action>...</action>`` if present,
    else from the whole text, case-insensitively, and must be exactly ``up``, ``down``, ``left`` or
    ``right`` once whitespace, quotes and punctuation are stripped (see `parse_action`). Anything
    else (empty, garbage, several words) is an invalid action: the board does not change and the
    step costs ``invalid_penalty``; so is a text longer than the space's ``max_length`` (8192). The
    feedback quotes at most 60 characters of the action, so the observation stays in its space
    whatever the action holds. Walking into a wall or an immovable box is a valid no-op move.

    ## Rewards
    | event                       | reward            |
    |-----------------------------|-------------------|
    | each valid step             | -0.1              |
    | box pushed onto a target    | +1                |
    | box pushed off a target     | -1                |
    | the step that solves it     | +10               |
    | invalid action              | ``invalid_penalty`` (default -0.1) |

    ## Episode End
    Terminated when every box is on a target. Truncated by ``max_episode_steps`` (15 for the
    registered ids, through ``gym.make``; invalid actions count as steps). A terminated episode is
    over: ``step()`` then raises `EpisodeNotRunning` (a ``gymnasium.error.ResetNeeded``) until
    ``reset()``, as in every ``istar/...`` env, so a solved puzzle cannot pay twice.

    ## Info
    ``action_is_valid``, ``success`` (all boxes on targets), ``instruction`` (the rules, for a
    prompt), ``available_actions`` (always the four moves ``["up", "down", "left", "right"]``, each a valid
    action as it stands, so an agent may pick one instead of writing it), ``board_text``, ``optimal_steps``
    (moves of an optimal solution of the episode's starting level; None when over ``solver_budget``),
    ``boxes_on_target``.

    ## Arguments
    ``dim_room=(rows, cols)`` and ``num_boxes`` as in gym-sokoban; ``levels`` (a Boxoban/XSB file
    path, or a list of `Level` or level strings) to play fixed levels instead of generated ones;
    ``split`` ("train"/"test"; generated levels only, disjoint by canonical level hash);
    ``min_optimal_steps`` (reject easier generated levels); ``invalid_penalty``;
    ``render_mode`` ("rgb_array", "ansi", "human"); ``tile_size`` (pixels per cell);
    ``solver_budget`` (positions the solver may expand for ``info["optimal_steps"]``; 0 skips it,
    which is worth doing for large Boxoban lists, where a move-optimal solve can take a second).

    ``reset(options={"level": ascii})`` plays the given level (a string in either format, or a
    `Level`); ``{"level_index": i}`` picks from ``levels`` (an ``int`` or NumPy integer; strings,
    floats and bools are refused). Give at most one of them; other keys are ignored.

    ## Example
    >>> import gymnasium as gym, istar_gym
    >>> env = gym.make("istar/Sokoban-v0")
    >>> obs, info = env.reset(seed=0)
    >>> obs, reward, terminated, truncated, info = env.step("<think>box is right</think><action>right</action>")

    ## Version History
    * v0: initial version.
    """

    metadata = {"render_modes": ["rgb_array", "ansi", "human"], "render_fps": 4}

    def __init__(
        self,
        dim_room: tuple[int, int] = (6, 6),
        num_boxes: int = 1,
        levels: str | Path | list[Level | str] | None = None,
        split: str = "train",
        min_optimal_steps: int = 0,
        invalid_penalty: float = -0.1,
        render_mode: str | None = None,
        tile_size: int = 16,
        solver_budget: int = 20_000,
    ):
        if split not in ("train", "test"):
            raise ValueError(f"split={split!r}: expected 'train' or 'test'")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode={render_mode!r}: expected one of {self.metadata['render_modes']}")
        self.levels = _load_levels(levels)
        rows, cols = dim_room
        if self.levels:
            rows = max(level.height for level in self.levels)
            cols = max(level.width for level in self.levels)
        self.dim_room = (int(rows), int(cols))
        self.num_boxes = int(num_boxes)
        self.split = split
        self.min_optimal_steps = int(min_optimal_steps)
        self.invalid_penalty = float(invalid_penalty)
        self.render_mode = render_mode
        self.tile_size = int(tile_size)
        self.solver_budget = int(solver_budget)

        self.action_space = Text(MAX_ACTION_LENGTH)
        self.observation_space = Text(rows * (cols + 1) + 512)
        self._instruction = _instruction_text()
        self._level: Level | None = None
        self._boxes: set[int] = set()
        self._player = 0
        self._optimal_steps: int | None = None
        self._optimal_cache: dict[Level, int | None] = {}
        self._codes = np.zeros(0, dtype=np.intp)
        self._board: str | None = None
        self._terminated = False
        self._window = None
        self._clock = None

    # --- Gymnasium API -----------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        options = reset_options(options, type(self).__name__, "level_index")
        generated = seed is not None and not self.levels and "level" not in options and "level_index" not in options
        key = (seed, self.dim_room, self.num_boxes, self.split, self.min_optimal_steps, self.solver_budget) if generated else None
        if key in _SEEDED_LEVELS:  # the same task again (a trainer's group copies): no second generation
            self._level, optimal, rng_state = _SEEDED_LEVELS[key]
            self._optimal_cache[self._level] = optimal
            self.np_random.bit_generator.state = rng_state
        else:
            self._level = self._choose_level(options)
            if key is not None:
                if len(_SEEDED_LEVELS) >= _SEEDED_LEVELS_KEPT:
                    del _SEEDED_LEVELS[next(iter(_SEEDED_LEVELS))]
                _SEEDED_LEVELS[key] = (self._level, self._solve_cached(self._level), self.np_random.bit_generator.state)
        self._boxes = set(self._level.boxes)
        self._player = self._level.player
        self._codes = np.array(
            [TILE_CODES[self._level.cell_name(cell)] for cell in range(self._level.height * self._level.width)],
            dtype=np.intp,
        )
        self._board = None
        self._terminated = False
        self._optimal_steps = self._solve_cached(self._level)
        return self._observation(feedback=""), self._info(action_is_valid=True)

    def step(self, action: str):
        if self._level is None:
            raise EpisodeNotRunning(f"{type(self).__name__}.step(): call reset() before step()")
        if self._terminated:
            raise EpisodeNotRunning(f"{type(self).__name__}.step(): the puzzle is solved and the episode is over; call reset()")
        too_long = isinstance(action, str) and len(action) > self.action_space.max_length
        move = None if too_long else parse_action(action)
        if move is None:
            return (
                self._observation(feedback=_invalid_feedback(action, self.action_space.max_length)),
                self.invalid_penalty,
                False,
                False,
                self._info(action_is_valid=False),
            )
        was_solved = self._boxes <= self._level.targets
        reward = -0.1 + self._move(move)
        solved = self._boxes <= self._level.targets
        if solved and not was_solved:
            reward += 10.0
        self._terminated = bool(solved)
        if self.render_mode == "human":
            self.render()
        return self._observation(feedback=""), float(reward), bool(solved), False, self._info(action_is_valid=True)

    def render(self):
        if self.render_mode == "ansi":
            return self.board_text()
        if self.render_mode == "rgb_array":
            return self.rgb_frame()
        if self.render_mode == "human":
            return self._render_human()
        return None

    def close(self):
        if self._window is not None:
            import pygame

            pygame.display.quit()
            self._window = None

    # --- state views -------------------------------------------------------------------------

    @property
    def level(self) -> Level:
        """The current position as an immutable `Level` (what the solver takes)."""
        if self._level is None:
            raise gym.error.ResetNeeded("call reset() before reading the level")
        return Level(
            self._level.height,
            self._level.width,
            self._level.walls,
            self._level.targets,
            frozenset(self._boxes),
            self._player,
        )

    def board_text(self) -> str:
        """The board in the compact symbols of the observation."""
        if self._board is None:
            rows = _SYMBOLS[self._codes].reshape(self._level.height, self._level.width).tolist()
            self._board = "\n".join(map("".join, rows))
        return self._board

    def tile_codes(self) -> np.ndarray:
        """The board as `TILE_CODES` indices, shape ``dim_room``; cells beyond a smaller level are wall."""
        codes = np.full(self.dim_room, TILE_CODES["wall"], dtype=np.intp)
        codes[: self._level.height, : self._level.width] = self._codes.reshape(self._level.height, self._level.width)
        return codes

    def rgb_frame(self) -> np.ndarray:
        """The board as an RGB image, ``tile_size`` pixels per cell."""
        codes = self._codes.reshape(self._level.height, self._level.width)
        return _pad_image(render_rgb(codes, self.tile_size), self.dim_room, self.tile_size)

    # --- private -----------------------------------------------------------------------------

    def _choose_level(self, options: dict[str, Any]) -> Level:
        if "level" in options:
            if "level_index" in options:
                raise ValueError("options: give 'level' or 'level_index', not both")
            level = options["level"]
            if isinstance(level, str):
                level = parse_level(level, "options['level']")
            elif isinstance(level, Level):
                check_enclosed(level, "options['level']")  # a hand-built Level could let the player walk off the board
            else:
                raise ValueError(f"options['level']={quoted(level)}: expected a level string (XSB or compact) or a Level")
            return self._fit(level)
        if self.levels:
            if "level_index" in options:
                index = index_option(options, "level_index", len(self.levels), " (an index into levels)")
            else:
                index = int(self.np_random.integers(len(self.levels)))
            return self.levels[index]
        if "level_index" in options:
            raise ValueError("options['level_index'] needs a level list: pass levels=<Boxoban file or list> to the env")
        return self._generate()

    def _generate(self) -> Level:
        for _ in range(2000):
            level = generate_level(self.np_random, self.dim_room, self.num_boxes)
            if level_split(level) != self.split:
                continue
            if self.min_optimal_steps and (self._solve_cached(level) or 0) < self.min_optimal_steps:
                continue
            return level
        raise ValueError(
            f"no {self.split} level with min_optimal_steps={self.min_optimal_steps} found in 2000 draws for "
            f"dim_room={self.dim_room}, num_boxes={self.num_boxes}; lower min_optimal_steps or enlarge the room"
        )

    def _solve_cached(self, level: Level) -> int | None:
        """Optimal moves of ``level``; remembered for level lists, where levels repeat."""
        if level not in self._optimal_cache:
            if len(self._optimal_cache) > 10_000:
                self._optimal_cache.clear()
            self._optimal_cache[level] = optimal_steps(level, self.solver_budget) if self.solver_budget else None
        return self._optimal_cache[level]

    def _fit(self, level: Level) -> Level:
        rows, cols = self.dim_room
        if level.height > rows or level.width > cols:
            raise ValueError(f"level of size {level.height}x{level.width} does not fit dim_room={self.dim_room}; create the env with a larger dim_room")
        return level

    def _move(self, move: str) -> float:
        """Apply one valid move and return its box reward (+1 onto a target, -1 off one)."""
        level = self._level
        dr, dc = DIRECTIONS[move]
        step = dr * level.width + dc
        to = self._player + step
        if to in level.walls:
            return 0.0
        reward = 0.0
        if to in self._boxes:
            beyond = to + step
            if beyond in level.walls or beyond in self._boxes:
                return 0.0
            self._boxes.remove(to)
            self._boxes.add(beyond)
            reward += (beyond in level.targets) - (to in level.targets)
            self._recode(beyond)
        previous, self._player = self._player, to
        self._recode(previous)
        self._recode(to)
        self._board = None
        return float(reward)

    def _recode(self, cell: int) -> None:
        self._codes[cell] = TILE_CODES[self._level.cell_name(cell, self._boxes, self._player)]

    def _observation(self, feedback: str):
        board = self.board_text()
        return f"{board}\n\n{feedback}" if feedback else board

    def _info(self, action_is_valid: bool) -> dict[str, Any]:
        on_target = len(self._boxes & self._level.targets)
        return {
            "action_is_valid": bool(action_is_valid),
            "success": on_target == len(self._boxes),
            "instruction": self._instruction,
            "available_actions": list(ACTIONS),
            "board_text": self.board_text(),
            "optimal_steps": self._optimal_steps,
            "boxes_on_target": on_target,
        }

    def _render_human(self) -> None:
        import pygame

        frame = self.rgb_frame()
        if self._window is None:
            pygame.display.init()
            self._window = pygame.display.set_mode((frame.shape[1], frame.shape[0]))
            self._clock = pygame.time.Clock()
        surface = pygame.surfarray.make_surface(frame.swapaxes(0, 1))
        self._window.blit(surface, (0, 0))
        pygame.event.pump()
        pygame.display.flip()
        self._clock.tick(self.metadata["render_fps"])


class VisualSokobanEnv(SokobanEnv):
    """Sokoban whose observation is an image of the board plus its text.

    Everything is as in `SokobanEnv` except the observation: a dict with ``"image"``, a uint8
    array of shape ``(rows * tile_size, cols * tile_size, 3)`` (96x96 for the 6x6 default, like
    gym-sokoban's sprites), and ``"text"``, the `SokobanEnv` observation. Text-only models (and the
    implicit PRM) read ``obs["text"]`` or ``info["board_text"]``, so they see the board too.
    Smaller levels from a level list are drawn in the top-left corner on a wall background.

    >>> env = gym.make("istar/VisualSokoban-v0")
    >>> obs, info = env.reset(seed=0)
    >>> obs["image"].shape
    (96, 96, 3)
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        rows, cols = self.dim_room
        self.observation_space = spaces.Dict(
            {
                "image": spaces.Box(0, 255, (rows * self.tile_size, cols * self.tile_size, 3), np.uint8),
                "text": Text(rows * (cols + 1) + 512),
            }
        )

    def _observation(self, feedback: str):
        return {"image": self.rgb_frame(), "text": super()._observation(feedback)}


def _load_levels(levels) -> list[Level]:
    if levels is None:
        return []
    if isinstance(levels, (str, Path)):
        return load_boxoban(levels)
    loaded = []
    for index, level in enumerate(levels):
        if not isinstance(level, (Level, str)):
            raise TypeError(f"levels[{index}]={quoted(level)}: expected a level string (XSB or compact) or a Level")
        loaded.append(level if isinstance(level, Level) else parse_level(level, f"levels[{index}]"))
    if not loaded:
        raise ValueError("levels=[]: give at least one level, or None to generate levels")
    return loaded


def _instruction_text() -> str:
    return (
        "You are playing Sokoban. Push every box onto a target.\n"
        "Board symbols: # wall, _ floor, O target, X box, √ box on target, P you (the player), "
        "S you standing on a target.\n"
        "You move one cell per action: up, down, left or right. Moving into a box pushes it one cell "
        "if the cell behind it is free; you cannot pull boxes, and a box pushed into a corner is stuck."
    )


def _invalid_feedback(action: Any, max_length: int) -> str:
    if isinstance(action, str) and len(action) > max_length:
        problem = f"had {len(action)} characters, over the limit of {max_length}, so nothing moved"
    else:
        problem = f"{quoted(action, _FEEDBACK_ECHO)} was invalid, so nothing moved"
    return f"Your last action {problem}. Answer with exactly one of up, down, left, right inside <action>...</action>."


def _pad_image(image: np.ndarray, dim_room: tuple[int, int], tile_size: int) -> np.ndarray:
    rows, cols = dim_room
    height, width = rows * tile_size, cols * tile_size
    if image.shape[:2] == (height, width):
        return image
    canvas = np.tile(tile_sheet(tile_size)[TILE_CODES["wall"]], (rows, cols, 1))
    canvas[: image.shape[0], : image.shape[1]] = image
    return canvas
