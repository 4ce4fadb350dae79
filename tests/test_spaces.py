import pickle

import gymnasium as gym
import pytest

from istar_gym.spaces import Text


def test_text_space_accepts_any_unicode_within_length():
    space = Text(max_length=20)
    for value in ["", "<action>up</action>", "café ☕ 你好", "line\nbreak\t!"]:
        assert value in space
    assert "x" * 21 not in space
    assert b"bytes" not in space
    assert 3 not in space


def test_text_space_min_length_is_enforced():
    space = Text(max_length=5, min_length=2)
    assert "a" not in space and "ab" in space


def test_text_space_rejects_inconsistent_bounds():
    with pytest.raises(ValueError, match="min_length"):
        Text(max_length=3, min_length=4)


def test_text_space_samples_are_members_and_seeded():
    a, b = Text(50, seed=1), Text(50, seed=1)
    samples = [a.sample() for _ in range(20)]
    assert samples == [b.sample() for _ in range(20)]
    assert all(sample in a for sample in samples)


def test_text_space_pickles_and_compares():
    space = Text(64, min_length=1)
    assert pickle.loads(pickle.dumps(space)) == space
    assert space != Text(65, min_length=1)


class _EchoEnv(gym.Env):
    """Observes the last action verbatim: any change in the string must reach the caller."""

    def __init__(self):
        self.observation_space = Text(64)
        self.action_space = Text(64)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return "start", {}

    def step(self, action):
        return action, 0.0, False, False, {}


@pytest.mark.parametrize("shared_memory", [False, True])
def test_async_vector_env_returns_fresh_unicode_strings(shared_memory):
    envs = gym.vector.AsyncVectorEnv([_EchoEnv, _EchoEnv], shared_memory=shared_memory)
    try:
        obs, _ = envs.reset(seed=0)
        assert tuple(obs) == ("start", "start")
        for actions in [("up", "café ☕"), ("<action>left</action>", "")]:
            obs, *_ = envs.step(actions)
            assert tuple(obs) == actions
    finally:
        envs.close()


def test_gymnasium_text_would_reject_llm_output():
    """The reason this space exists: Gymnasium's own Text rejects ordinary LLM text."""
    assert "move up, please" not in gym.spaces.Text(64)
    assert "move up, please" in Text(64)


def test_async_vector_env_without_copy_gives_a_live_view():
    envs = gym.vector.AsyncVectorEnv([_EchoEnv, _EchoEnv], shared_memory=True, copy=False)
    try:
        obs, _ = envs.reset(seed=0)
        envs.step(("right", "→ ok"))
        assert list(obs) == ["right", "→ ok"]
    finally:
        envs.close()
