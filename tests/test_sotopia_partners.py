"""The scripted Sotopia agent and the paper's action prompt."""

import json

from istar_gym.envs.sotopia import ScriptedSotopiaAgent, action_prompt, parallel_env


def _first_turn():
    sotopia_env = parallel_env()
    return sotopia_env, *sotopia_env.reset(seed=2)


def test_scripted_agent_is_deterministic():
    _, obs, infos = _first_turn()
    first, second = ScriptedSotopiaAgent(), ScriptedSotopiaAgent()
    assert first.act(obs["agent_0"], infos["agent_0"]) == second.act(obs["agent_0"], infos["agent_0"])


def test_scripted_agent_does_nothing_off_turn():
    _, obs, infos = _first_turn()
    assert json.loads(ScriptedSotopiaAgent().act(obs["agent_1"], infos["agent_1"]))["action_type"] == "none"


def test_scripted_agent_speaks_to_its_goal_first():
    _, obs, infos = _first_turn()
    action = json.loads(ScriptedSotopiaAgent().act(obs["agent_0"], infos["agent_0"]))
    assert action["action_type"] == "speak"
    assert infos["agent_0"]["partner_name"].split()[0] in action["argument"]


def test_scripted_agent_leaves_after_its_turn_budget():
    sotopia_env, obs, infos = _first_turn()
    agent = ScriptedSotopiaAgent(leave_after=2)
    turns = 0
    while sotopia_env.agents:
        obs, _, _, _, infos = sotopia_env.step({a: agent.act(obs[a], infos[a]) for a in sotopia_env.agents})
        turns += 1
    assert turns == 5
    assert "left the conversation" in infos["agent_0"]["termination_reasons"]


def test_action_prompt_wraps_the_history_with_turn_and_action_types():
    _, obs, infos = _first_turn()
    name = infos["agent_0"]["agent_name"]
    prompt = action_prompt(name, obs["agent_0"], infos["agent_0"]["turn_number"], infos["agent_0"]["available_actions"])
    assert prompt.startswith(f"Imagine you are {name}, your task is to act/speak as {name} would")
    assert f"{obs['agent_0']}.\nYou are at Turn #0. Your available action types are\n" in prompt
    assert "none speak non-verbal communication action leave." in prompt
    assert "Please only generate a JSON string including the action type and the argument." in prompt
