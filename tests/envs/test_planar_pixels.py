"""The planar reach task's camera observation, sparse reward and hold-at-goal option (HIL-SERL's pixel variant)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from robolearn.envs.planar_arm import PlanarReachEnv, PlanarReachPD

GREEN, RED = np.array([40, 180, 60]), np.array([220, 40, 40])


def _pixel(env: PlanarReachEnv, img: np.ndarray, xy) -> np.ndarray:
    """The pixel of ``img`` at workspace point ``xy`` (m), with the env's projection."""
    s = env.render_size
    scale = (s / 2 - 1) / (env.l1 + env.l2)
    col, row = int(s / 2 + xy[0] * scale), int(s / 2 - xy[1] * scale)
    return img[row, col].astype(int)


def test_default_observation_is_unchanged():
    env = PlanarReachEnv()
    obs, _ = env.reset(seed=0)
    assert set(obs) == {"agent_pos", "environment_state"} == set(env.observation_space.spaces)
    assert env.render().shape == (96, 96, 3)


def test_pixels_observation_draws_goal_and_fingertip():
    env = PlanarReachEnv(obs_type="pixels_agent_pos", render_size=64, success_radius=0.1)
    obs, _ = env.reset(seed=1)
    img = obs["pixels"]
    assert img.shape == (64, 64, 3) and img.dtype == np.uint8
    assert env.observation_space.contains(obs)
    np.testing.assert_array_equal(img, env.render())
    # goal disc (green) at the target, fingertip dot (red) at the tip, light background in a corner
    assert np.abs(_pixel(env, img, env.target) - GREEN).max() < 40
    assert np.abs(_pixel(env, img, env.tip()) - RED).max() < 60
    assert (img[0, 0] == 245).all()
    # the picture follows the arm
    obs2, *_ = env.step(np.array([1.0, 1.0]))
    assert not np.array_equal(obs2["pixels"], img)


def test_sparse_reward_and_holding_the_goal_without_termination():
    env = gym.make("robolearn/PlanarReach-v0", reward_type="sparse", terminate_on_success=False, success_radius=0.1,
                   max_episode_steps=40)
    expert = PlanarReachPD(env)
    obs, _ = env.reset(seed=0)
    expert.reset()
    rewards, successes = [], []
    for t in range(40):
        obs, r, term, trunc, info = env.step(expert.act(obs))
        rewards.append(r)
        successes.append(info["is_success"])
        assert not term
        assert trunc == (t == 39)
    assert rewards == [float(s) for s in successes]
    first = successes.index(True)
    assert 0 < first < 35 and all(successes[first:])  # PD reaches the goal, then holds it
    # default: terminate at the first success with the dense reward -distance + 1
    env = PlanarReachEnv(success_radius=0.1)
    obs, _ = env.reset(seed=0)
    expert = PlanarReachPD(env)
    expert.reset()
    for _ in range(40):
        obs, r, term, trunc, info = env.step(expert.act(obs))
        if term:
            break
    assert term and info["is_success"] and r == pytest.approx(1.0 - info["distance"])


@pytest.mark.parametrize("kwargs, match", [({"obs_type": "pixels"}, "obs_type"),
                                           ({"reward_type": "binary"}, "reward_type"),
                                           ({"render_size": 4}, "render_size")])
def test_bad_options_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PlanarReachEnv(**kwargs)
