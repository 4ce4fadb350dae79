import subprocess
import sys

import gymnasium as gym

import istar_gym


def test_import_registers_the_ids():
    env = gym.make("istar/VisualSokoban-v0")
    assert env.spec.max_episode_steps == 15
    assert env.spec.id == "istar/VisualSokoban-v0"


def test_module_prefixed_id_works_without_importing_the_package():
    code = (
        "import gymnasium as gym, sys\n"
        "assert 'istar_gym' not in sys.modules\n"
        "env = gym.make('istar_gym:istar/VisualSokoban-v0')\n"
        "obs, info = env.reset(seed=0)\n"
        "print(obs['image'].shape)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "(96, 96, 3)"


def test_reimport_does_not_register_twice():
    import importlib

    importlib.reload(istar_gym)
    assert sum(env_id == "istar/Sokoban-v0" for env_id in gym.registry) == 1


def test_constructor_keywords_pass_through_make():
    env = gym.make("istar/Sokoban-v0", dim_room=(8, 8), num_boxes=2, max_episode_steps=30, invalid_penalty=-1.0)
    obs, _ = env.reset(seed=0)
    assert len(obs.splitlines()) == 8 and env.spec.max_episode_steps == 30
    _, reward, *_ = env.step("nonsense")
    assert reward == -1.0


def test_main_names_are_reexported_without_importing_torch_eagerly():
    code = (
        "import sys, istar_gym\n"
        "assert 'torch' not in sys.modules, 'import istar_gym pulled in torch'\n"
        "from istar_gym import ImplicitPRM, ImplicitStepRewardWrapper, Text, build_messages\n"
        "print(ImplicitPRM.__module__, ImplicitStepRewardWrapper.__module__)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["istar_gym.prm.model", "istar_gym.wrappers.implicit_step_reward"]
