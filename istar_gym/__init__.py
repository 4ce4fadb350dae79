"""istar-gym: Gymnasium/PettingZoo agent environments for LLMs, with implicit step rewards.

Importing the package registers the ``istar/...`` ids, so ``gym.make("istar/VisualSokoban-v0")``
works after ``import istar_gym`` and ``gym.make("istar_gym:istar/VisualSokoban-v0")`` works without it.
"""

from gymnasium.envs.registration import register, registry

from istar_gym.prompts import build_messages, format_history
from istar_gym.spaces import Text

__version__ = "0.1.0"

__all__ = [
    "ImplicitPRM",
    "ImplicitStepRewardParallelWrapper",
    "ImplicitStepRewardWrapper",
    "Text",
    "build_messages",
    "format_history",
    "__version__",
]

# Names that need torch/transformers are imported on first use, so `import istar_gym` stays light
# for users who only want the environments.
_LAZY = {
    "ImplicitPRM": "istar_gym.prm",
    "ImplicitStepRewardWrapper": "istar_gym.wrappers",
    "ImplicitStepRewardParallelWrapper": "istar_gym.wrappers",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'istar_gym' has no attribute {name!r}")

# id -> (entry point, max_episode_steps, extra kwargs). Entry points are strings, so an env's
# heavy imports (pygame, flask, selenium) happen only when that env is made.
_ENVS = {
    "istar/Sokoban-v0": ("istar_gym.envs.sokoban.env:SokobanEnv", 15, {}),
    "istar/VisualSokoban-v0": ("istar_gym.envs.sokoban.env:VisualSokobanEnv", 15, {}),
    "istar/WebShop-v0": ("istar_gym.envs.webshop.env:WebShopEnv", 15, {}),
    "istar/WebShopBrowser-v0": ("istar_gym.envs.webshop.browser:WebShopBrowserEnv", 15, {}),
}

for _env_id, (_entry_point, _max_steps, _kwargs) in _ENVS.items():
    if _env_id not in registry:
        register(
            id=_env_id,
            entry_point=_entry_point,
            max_episode_steps=_max_steps,
            kwargs=_kwargs,
            disable_env_checker=False,
        )
