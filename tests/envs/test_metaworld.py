"""Meta-World as ``env=metaworld`` (robolearn.envs.metaworld_env): task groups and instructions, the env's
observations, seeding and errors, its scripted expert, and ``eval.py`` (one task, and the task suite) end to end.

The tests that build an env need ``metaworld`` (``pip install --no-deps metaworld==3.1.1``); the others do not.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from robolearn.envs.metaworld_env import (
    DIFFICULTY_TO_TASKS, MT10_TASKS, TASK_DESCRIPTIONS, TASK_GROUPS, suite_conditions, task_description, task_names,
)
from tests.compose import compose_config  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def _compose(overrides):
    return compose_config("eval", overrides)


def _needs_metaworld():
    return pytest.importorskip("metaworld", reason="pip install --no-deps metaworld==3.1.1")


def test_task_groups_cover_the_fifty_tasks():
    assert len(TASK_DESCRIPTIONS) == 50 and set(TASK_GROUPS["mt50"]) == set(TASK_DESCRIPTIONS)
    by_difficulty = [t for group in DIFFICULTY_TO_TASKS.values() for t in group]
    assert sorted(by_difficulty) == sorted(TASK_DESCRIPTIONS)  # a partition: every task in exactly one group
    assert len(MT10_TASKS) == 10 and set(MT10_TASKS) <= set(TASK_DESCRIPTIONS)
    assert task_description("reach-v3") == "Reach a goal position"
    assert task_names("reach-v3, hard ,reach-v3") == ["reach-v3", *DIFFICULTY_TO_TASKS["hard"]]
    assert task_names(["mt10"]) == list(MT10_TASKS)


def test_unknown_task_names_list_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown Meta-World task 'reach-v9'.*reach-v3"):
        task_description("reach-v9")
    with pytest.raises(ValueError, match=r"'mt11'.*groups: mt10, mt50, easy.*window-open-v3"):
        task_names("reach-v3,mt11")
    with pytest.raises(ValueError, match="no Meta-World task selected"):
        task_names(" , ")


def test_suite_conditions_give_each_task_its_instruction():
    conditions = suite_conditions("push-v3,door-open-v3")
    assert conditions == {"push-v3": {"task_name": "push-v3", "task": "Push the puck to a goal"},
                          "door-open-v3": {"task_name": "door-open-v3", "task": "Open a door with a revolving joint"}}


def test_configs_compose_task_name_and_suite_groups():
    from hydra.utils import instantiate

    cfg = _compose(["policy=scripted", "env=metaworld", "env.task_name=reach-v3", "eval_suite=metaworld",
                    "eval_suite.conditions.tasks=very_hard"])
    spec = instantiate(cfg.env)
    assert spec.name == "metaworld" and spec.task == "Reach a goal position" and spec.fps == 80
    assert spec.make.keywords["task_name"] == "reach-v3" and spec.max_episode_steps == 400
    assert spec.features_map == {"pixels": "observation.image", "agent_pos": "observation.state"}
    blind = spec.without_cameras()  # a policy without cameras: no image rendered per step
    assert blind.features_map == {"agent_pos": "observation.state"}
    assert blind.make.args[1] == {"observe_camera": False} and blind.make.args[0].keywords["task_name"] == "reach-v3"
    suite = instantiate(cfg.eval_suite, _convert_="all")
    assert suite.name == "metaworld_very_hard" and suite.env == "metaworld"
    assert list(suite.conditions) == list(DIFFICULTY_TO_TASKS["very_hard"])
    assert suite.conditions["shelf-place-v3"] == {"task_name": "shelf-place-v3",
                                                  "task": "Pick and place a puck onto a shelf"}
    cfg = _compose(["policy=scripted", "env=metaworld", "env.task_name=reach-v9"])
    with pytest.raises(Exception, match="valid task_name values"):
        instantiate(cfg.env)


def test_env_observations_seeding_and_time_limit():
    _needs_metaworld()
    from robolearn.envs.metaworld_env import MetaWorldEnv

    env = MetaWorldEnv("push-v3", image_size=(24, 32), max_episode_steps=3)
    try:
        assert env.task == "Push the puck to a goal"
        obs, info = env.reset(seed=3)
        assert set(obs) == {"pixels", "agent_pos"} and info == {"is_success": False}
        assert obs["pixels"].shape == (24, 32, 3) and obs["pixels"].dtype == np.uint8 and obs["pixels"].std() > 0
        assert obs["agent_pos"].shape == (4,) and obs["agent_pos"].dtype == np.float32
        assert env.observation_space.contains(obs)
        first = env.raw_observation.copy()
        assert first.shape == (39,) and np.any(first[-3:] != 0)  # the goal is observed (the experts read it)
        env.reset(seed=3)
        np.testing.assert_array_equal(env.raw_observation, first)
        env.reset(seed=4)
        assert not np.allclose(env.raw_observation[4:7], first[4:7])  # another puck position
        frame = env.render()
        np.testing.assert_array_equal(frame, env.reset(seed=4)[0]["pixels"])
        flags = []
        for _ in range(3):
            obs, reward, terminated, truncated, info = env.step(np.zeros(4, np.float32))
            flags.append((terminated, truncated))
            assert isinstance(reward, float) and info["is_success"] is False and "near_object" in info
        assert flags == [(False, False), (False, False), (False, True)]
        with pytest.raises(ValueError, match=r"shape \(4,\)"):
            env.step(np.zeros(3, np.float32))
    finally:
        env.close()

    blind = MetaWorldEnv("reach-v3", image_size=16, observe_camera=False)
    try:
        obs, _ = blind.reset(seed=0)
        assert set(obs) == {"agent_pos"} and "pixels" not in blind.observation_space.spaces
        assert blind.render().shape == (16, 16, 3)  # videos still render
    finally:
        blind.close()


def test_env_rejects_bad_arguments():
    _needs_metaworld()
    from robolearn.envs.metaworld_env import MetaWorldEnv

    with pytest.raises(ValueError, match=r"unknown Meta-World camera 'front'.*corner2"):
        MetaWorldEnv("reach-v3", camera="front")
    with pytest.raises(ValueError, match=r"max_episode_steps must be in 1\.\.500"):
        MetaWorldEnv("reach-v3", max_episode_steps=501)
    with pytest.raises(ValueError, match="image_size"):
        MetaWorldEnv("reach-v3", image_size=(0, 16))
    with pytest.raises(ValueError, match="valid task_name values"):
        MetaWorldEnv("reach")


def test_scripted_expert_succeeds_and_rejects_other_envs():
    _needs_metaworld()
    import gymnasium as gym

    from robolearn.envs.expert_wrapper import EXPERT_ACTION_KEY, ExpertActionWrapper
    from robolearn.envs.metaworld_env import MetaWorldEnv, MetaWorldExpert

    env = ExpertActionWrapper(MetaWorldEnv("drawer-close-v3", image_size=16, observe_camera=False), MetaWorldExpert)
    try:
        _, info = env.reset(seed=7)
        for step in range(200):
            action = info[EXPERT_ACTION_KEY]
            assert action.shape == (4,) and action.dtype == np.float32 and np.all(np.abs(action) <= 1)
            _, _, terminated, truncated, info = env.step(action)
            if terminated or truncated:
                break
        assert terminated and info["is_success"] and step < 199
    finally:
        env.close()
    with pytest.raises(TypeError, match="needs a MetaWorldEnv"):
        MetaWorldExpert(gym.make("CartPole-v1"))


def test_eval_py_scripted_on_one_task(tmp_path):
    """``python eval.py policy=scripted env=metaworld env.task_name=reach-v3 ...`` composed and run in-process."""
    _needs_metaworld()
    from hydra.core.hydra_config import HydraConfig

    sys.path.insert(0, str(REPO))
    import eval as eval_script

    cfg = _compose(["policy=scripted", "env=metaworld", "env.task_name=reach-v3", "env.make.image_size=16",
                    "eval.n_episodes=2", "eval.batch_size=2", "eval.max_episodes_rendered=0", "eval.progress=false",
                    "seed=1000", f"paths.output_dir={tmp_path}"])
    HydraConfig.instance().set_config(cfg)
    info = eval_script.run_eval(cfg)
    episodes = info["per_episode"]
    assert [e["seed"] for e in episodes] == [1000, 1001] and all(e["success"] for e in episodes)
    assert all(e["task"] == "Reach a goal position" and 1 <= e["length"] < 400 for e in episodes)
    assert info["aggregated"]["pc_success"] == 100.0
    assert json.loads((tmp_path / "eval_info.json").read_text())["per_episode"] == episodes


def test_eval_suite_runs_each_task_with_its_instruction(tmp_path):
    """``eval.py env=metaworld eval_suite=metaworld`` over two tasks: one row per task, each with its instruction
    given to the policy; a camera policy receives the images (constant actions: the tasks are not solved)."""
    _needs_metaworld()
    from robolearn.eval.suite import evaluate_suite
    from robolearn.features import FeatureType, PolicyFeature
    from tests.eval.helpers import ConstantPolicy
    from hydra.utils import instantiate

    cfg = _compose(["policy=scripted", "env=metaworld", "env.make.image_size=24", "env.max_episode_steps=3",
                    "eval_suite=metaworld", "eval_suite.conditions.tasks='reach-v3,door-open-v3'"])
    spec, suite = instantiate(cfg.env), instantiate(cfg.eval_suite, _convert_="all")
    policy = ConstantPolicy(np.zeros(4), input_features={
        "observation.image": PolicyFeature(FeatureType.VISUAL, (3, 24, 24)),
        "observation.state": PolicyFeature(FeatureType.STATE, (4,))})
    info = evaluate_suite(policy, spec, suite, n_episodes=2, batch_size=2, seed=5, max_episodes_rendered=1,
                          output_dir=tmp_path, progress=False)
    assert suite.name == "metaworld_reach-v3,door-open-v3"
    assert [r["condition"] for r in info["table"]] == ["reach-v3", "door-open-v3"]
    assert [c["task"] for c in info["conditions"]] == ["Reach a goal position", "Open a door with a revolving joint"]
    assert all(e["length"] == 3 and not e["success"] for c in info["conditions"] for e in c["per_episode"])
    tasks_seen = {tuple(b["task"]) for b in policy.batches}
    assert tasks_seen == {("Reach a goal position",) * 2, ("Open a door with a revolving joint",) * 2}
    assert {b["observation.image"] for b in policy.batches} == {(2, 3, 24, 24)}
    assert (tmp_path / "conditions" / "door-open-v3" / "videos" / "eval_episode_0.mp4").is_file()
    assert "reach-v3" in (tmp_path / "suite_table.md").read_text()
