"""Dense step rewards for Sokoban in one page.

Play one level a few times (the solver's plan succeeds, detours fail), take DPO steps on the
implicit PRM with those trajectories as a group, then read the step rewards the wrapper reports
for a good and a bad first move. Runs on the CPU with the default SmolLM2-135M-Instruct.

    python examples/step_rewards.py
"""

import gymnasium as gym

import istar_gym  # noqa: F401  (registers istar/Sokoban-v0)
from istar_gym.envs.sokoban import solve
from istar_gym.prm import ImplicitPRM, Turn
from istar_gym.prompts import build_messages
from istar_gym.wrappers import ImplicitStepRewardWrapper

SEED = 5


def play(env: gym.Env, actions: list[str]) -> tuple[list[Turn], bool]:
    """The turns of one episode, each in the context the policy (and the wrapper) builds."""
    observation, info = env.reset(seed=SEED)
    turns, history, success = [], [], False
    for move in actions:
        action = f"<action>{move}</action>"
        context = build_messages(info["instruction"], observation, info["available_actions"], history)
        turns.append(Turn(context, action))
        history.append((observation, action))
        observation, _, terminated, truncated, info = env.step(action)
        success = info["success"]
        if terminated or truncated:
            break
    return turns, success


env = gym.make("istar/Sokoban-v0")
env.reset(seed=SEED)
plan = solve(env.unwrapped.level)
good_first, bad_first = plan[0], next(move for move in ("up", "down", "left", "right") if move != plan[0])
print(env.unwrapped.board_text(), f"\noptimal plan: {plan}\n")

prm = ImplicitPRM.from_pretrained(beta=0.05, lr=1e-5)  # pi_phi = SmolLM2; reference = a frozen copy
group = [play(env, plan), play(env, plan), play(env, [bad_first] * 15), play(env, [bad_first, good_first] * 7)]
trajectories, outcomes = [turns for turns, _ in group], [success for _, success in group]
print("outcomes:", outcomes)
for step in range(3):
    update = prm.update(trajectories, group_ids=[SEED] * len(group), outcomes=outcomes)
    print(f"DPO step {step}: loss {update.loss:.4f}, pairs {update.pairs}, pair accuracy {update.accuracy:.2f}")

wrapped = ImplicitStepRewardWrapper(gym.make("istar/Sokoban-v0"), prm)
for move in (good_first, bad_first):
    wrapped.reset(seed=SEED)
    _, reward, _, _, info = wrapped.step(f"<action>{move}</action>")
    print(f"first move {move:>5}: env reward {info['reward_env']:+.2f}, implicit step reward {info['reward_implicit']:+.4f}")
