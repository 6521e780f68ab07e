"""Intervention sources (keyboard toggle, scripted expert, gamepad's optional import, leader-arm teleop) and the
real-robot RL env wrappers (crop/resize, gripper penalty, end-effector bounds, joint-pose reset, reward classifier)."""

from __future__ import annotations

import sys

import gymnasium as gym
import numpy as np
import pytest
import torch

from robolearn.envs.planar_arm import PlanarReachPD
from robolearn.rl.hil.interventions import (GamepadIntervention, KeyboardIntervention, ScriptedIntervention,
                                            TeleopIntervention)
from robolearn.rl.wrappers import (EndEffectorActionSpace, GripperPenalty, ImageCropResize, ResetToJointPose,
                                   RewardClassifierWrapper)


class CameraEnv(gym.Env):
    """Observations {"pixels": {"front": (8, 10, 3) uint8}, "state": (3,)}; action [dx, dy, dz, gripper]."""

    def __init__(self):
        self.observation_space = gym.spaces.Dict({
            "pixels": gym.spaces.Dict({"front": gym.spaces.Box(0, 255, (8, 10, 3), np.uint8)}),
            "state": gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)})
        self.action_space = gym.spaces.Box(np.array([-1, -1, -1, 0], np.float32), np.ones(4, np.float32))
        self.pos = np.zeros(3)
        self.last_action = None
        self.t = 0

    def _obs(self):
        img = np.zeros((8, 10, 3), np.uint8)
        img[2:6, 3:7] = 200 if self.t >= 2 else 0  # a bright square appears at step 2
        return {"pixels": {"front": img}, "state": self.pos.astype(np.float32)}

    def reset(self, *, seed=None, options=None):
        self.t, self.pos = 0, np.zeros(3)
        return self._obs(), {}

    def step(self, action):
        self.last_action = np.asarray(action)
        self.pos = self.pos + self.last_action[:3]
        self.t += 1
        return self._obs(), -1.0, False, False, {}


def test_keyboard_intervention_toggles_and_drives_the_action():
    source = KeyboardIntervention(action_dim=2, step=0.5, listen=False)
    source.connect()
    obs = {}
    source.press("w")
    assert source.intervene(obs) is None  # not in control: keys do not pile up
    source.press("i")
    source.press("w")
    source.press("d")
    np.testing.assert_allclose(source.intervene(obs), [0.5, -0.5])
    np.testing.assert_allclose(source.intervene(obs), [0.0, 0.0])
    source.press("i")
    assert source.intervene(obs) is None
    with pytest.raises(ValueError, match="toggle_key"):
        KeyboardIntervention(action_dim=2, toggle_key="w", listen=False)
    with pytest.raises(ValueError, match="1..4"):
        KeyboardIntervention(action_dim=5, listen=False)


def test_teleop_intervention_reads_a_leader_arm_in_action_order():
    class FakeLeader:
        name, is_connected = "fake_leader", False
        action_features = {"shoulder.pos": float, "elbow.pos": float}

        def connect(self):
            self.is_connected = True

        def disconnect(self):
            self.is_connected = False

        def get_action(self):
            return {"elbow.pos": 2.0, "shoulder.pos": 1.0}

    source = TeleopIntervention(FakeLeader(), listen=False)
    with source:
        assert source.intervene({}) is None
        source.toggle()
        np.testing.assert_allclose(source.intervene({}), [1.0, 2.0])
        source.action_keys = ["wrist.pos"]
        with pytest.raises(KeyError, match="wrist.pos"):
            source.intervene({})
    assert not source.teleop.is_connected


def test_scripted_intervention_steps_and_probability():
    env = gym.make("robolearn.envs.planar_arm:robolearn/PlanarReach-v0", control="velocity")
    env.reset(seed=1)
    source = ScriptedIntervention(PlanarReachPD, steps=[1])
    source.bind(env)
    source.reset()
    assert [source.intervene({}) is not None for _ in range(3)] == [False, True, False]
    always = ScriptedIntervention(PlanarReachPD, probability=1.0, duration=2)
    always.bind(env)
    always.reset()
    assert all(always.intervene({}) is not None for _ in range(5))
    with pytest.raises(ValueError, match="probability"):
        ScriptedIntervention(PlanarReachPD, probability=2.0)


def test_gamepad_without_pygame_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pygame", None)
    source = GamepadIntervention(axes=[1, 0])
    with pytest.raises(ImportError, match="pip install pygame"):
        source.connect()
    with pytest.raises(ValueError, match="one entry per axis"):
        GamepadIntervention(axes=[1, 0], scale=[1.0])


def test_image_crop_resize():
    env = ImageCropResize(CameraEnv(), crop={"pixels.front": [2, 3, 4, 4]}, size=[2, 2])
    assert env.observation_space["pixels"]["front"].shape == (2, 2, 3)
    env.reset()
    obs, *_ = env.step(np.zeros(4, np.float32))
    obs, *_ = env.step(np.zeros(4, np.float32))
    assert obs["pixels"]["front"].shape == (2, 2, 3) and (obs["pixels"]["front"] == 200).all()
    assert env.observation_space.contains(obs)
    with pytest.raises(ValueError, match="outside"):
        ImageCropResize(CameraEnv(), crop={"pixels.front": [6, 0, 4, 4]})
    with pytest.raises(KeyError, match="pixels.side"):
        ImageCropResize(CameraEnv(), crop={"pixels.side": [0, 0, 1, 1]})


def test_gripper_penalty_on_switches_only():
    env = GripperPenalty(CameraEnv(), penalty=-0.5, threshold=0.5)
    env.reset()
    rewards = [env.step(np.array([0, 0, 0, g], np.float32))[1] for g in (0.0, 0.0, 1.0, 1.0, 0.0)]
    assert rewards == [-1.0, -1.0, -1.5, -1.0, -1.5]


def test_end_effector_action_space_scales_and_bounds():
    inner = CameraEnv()
    env = EndEffectorActionSpace(inner, step_sizes=[0.1, 0.1, 0.1], bounds_min=[-0.15, -1, -1], bounds_max=[0.15, 1, 1],
                                 ee_position=lambda e: e.unwrapped.pos)
    assert env.action_space.shape == (4,)
    env.reset()
    env.step(np.array([1, -0.5, 3, 1], np.float32))  # z clipped to 1 step
    np.testing.assert_allclose(inner.last_action, [0.1, -0.05, 0.1, 1], atol=1e-6)
    env.step(np.array([1, 0, 0, 0], np.float32))  # x would reach 0.2 > 0.15: clipped at the bound
    np.testing.assert_allclose(inner.pos, [0.15, -0.05, 0.1], atol=1e-6)
    with pytest.raises(ValueError, match="ee_position"):
        EndEffectorActionSpace(CameraEnv(), [0.1] * 3, [-1] * 3, [1] * 3)


def test_reset_to_joint_pose():
    moved = []

    def move(env, pose):
        moved.append(pose)
        env.unwrapped.pos = pose.copy()
        return env.unwrapped._obs()

    env = ResetToJointPose(CameraEnv(), [0.1, 0.2, 0.3], move)
    obs, _ = env.reset()
    np.testing.assert_allclose(obs["state"], [0.1, 0.2, 0.3], atol=1e-6)
    assert len(moved) == 1


def test_reward_classifier_wrapper_callable_and_predict_success():
    def brightness(frames):
        return frames["observation.images.front"].mean()

    env = RewardClassifierWrapper(CameraEnv(), brightness, {"pixels.front": "observation.images.front"}, threshold=0.05)
    env.reset()
    out = [env.step(np.zeros(4, np.float32)) for _ in range(2)]
    assert [o[1] for o in out] == [0.0, 1.0] and [o[2] for o in out] == [False, True]
    assert out[1][4]["is_success"] and out[1][4]["env_reward"] == -1.0

    class Classifier:
        def predict_success(self, obs):
            assert obs["observation.images.front"].shape == (1, 3, 8, 10)
            return torch.tensor([0.9])

    env = RewardClassifierWrapper(CameraEnv(), Classifier(), {"pixels.front": "observation.images.front"},
                                  terminate_on_success=False)
    env.reset()
    _, reward, terminated, _, info = env.step(np.zeros(4, np.float32))
    assert reward == 1.0 and not terminated and info["success_probability"] == pytest.approx(0.9)
    with pytest.raises(TypeError, match="predict_success"):
        RewardClassifierWrapper(CameraEnv(), object(), {})


def test_gym_hil_pick_cube_steps_headless():
    pytest.importorskip("gym_hil")
    from robolearn.rl.actor import EnvActor

    env = gym.make("gym_hil:gym_hil/PandaPickCube-v0", max_episode_steps=5)
    actor = EnvActor(env, {"agent_pos": "observation.state", "environment_state": "observation.environment_state"})
    for _ in range(5):
        t, finished = actor.step(None)
    assert t["observation.state"].shape == (18,) and t["observation.environment_state"].shape == (3,)
    assert finished is not None and finished.length == 5
    env.close()
