"""Planar 2-link reach: analytic kinematics against hand-computed poses, dynamics, PD baseline vs random."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest

from robolearn.envs.planar_arm import ENV_ID, PlanarReachEnv, PlanarReachPD, forward_kinematics, inverse_kinematics


def test_forward_kinematics_hand_computed():
    np.testing.assert_allclose(forward_kinematics([0, 0]), [1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(forward_kinematics([math.pi / 2, 0]), [0.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(forward_kinematics([0, math.pi / 2]), [0.5, 0.5], atol=1e-12)
    np.testing.assert_allclose(forward_kinematics([math.pi / 2, -math.pi / 2], 0.3, 0.2), [0.2, 0.3], atol=1e-12)


def test_inverse_kinematics_round_trip_and_branches():
    np.testing.assert_allclose(inverse_kinematics([0.5, 0.5]), [0.0, math.pi / 2], atol=1e-12)
    np.testing.assert_allclose(inverse_kinematics([0.5, 0.5], elbow_up=True), [math.pi / 2, -math.pi / 2], atol=1e-12)
    rng = np.random.default_rng(0)
    for _ in range(50):
        q = rng.uniform(-math.pi, math.pi, 2)
        xy = forward_kinematics(q)
        if np.linalg.norm(xy) < 1e-3:
            continue
        np.testing.assert_allclose(forward_kinematics(inverse_kinematics(xy)), xy, atol=1e-9)
    with pytest.raises(ValueError, match="unreachable"):
        inverse_kinematics([1.2, 0.0])


def test_dynamics_and_observation():
    env = PlanarReachEnv(control="velocity", fps=20, max_joint_velocity=2.0)
    obs, _ = env.reset(seed=0)
    q0 = obs["agent_pos"][:2].astype(np.float64)
    obs, reward, term, trunc, info = env.step(np.array([0.5, -1.0]))
    np.testing.assert_allclose(obs["agent_pos"][:2], q0 + np.array([1.0, -2.0]) * 0.05, atol=1e-6)
    np.testing.assert_allclose(obs["agent_pos"][2:], [1.0, -2.0])
    np.testing.assert_allclose(reward, -info["distance"] + (1.0 if term else 0.0))
    np.testing.assert_allclose(obs["environment_state"][2:], forward_kinematics(obs["agent_pos"][:2]), atol=1e-6)
    torque = PlanarReachEnv(control="torque", max_joint_accel=10.0, damping=2.0)
    torque.reset(seed=0)
    obs, *_ = torque.step(np.array([1.0, 0.0]))
    np.testing.assert_allclose(obs["agent_pos"][2:], [0.5, 0.0], atol=1e-6)  # dq = (10*1 - 2*0) * 0.05
    assert env.render().shape == (96, 96, 3)
    with pytest.raises(ValueError, match="control"):
        PlanarReachEnv(control="position")


def _success_rate(env, policy, episodes=20):
    wins = 0
    for ep in range(episodes):
        obs, _ = env.reset(seed=ep)
        if hasattr(policy, "reset"):
            policy.reset()
        for _ in range(env.unwrapped.max_episode_steps):
            obs, _, term, trunc, info = env.step(policy.act(obs) if hasattr(policy, "act") else policy(obs))
            if term or trunc:
                break
        wins += bool(info["is_success"])
    return wins / episodes


@pytest.mark.parametrize("control", ["velocity", "torque"])
def test_pd_baseline_beats_random(control):
    env = gym.make(ENV_ID, control=control)
    pd = PlanarReachPD(env)
    rng = np.random.default_rng(0)
    assert _success_rate(env, pd) >= 0.95
    assert _success_rate(env, lambda obs: rng.uniform(-1, 1, 2)) <= 0.2
