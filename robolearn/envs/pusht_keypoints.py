"""PushT with Diffusion Policy's keypoint observation (the "state" variant of Chi et al. 2023).

Diffusion Policy's PushT demonstrations (``pusht_cchi_v7_replay.zarr``, converted by
``robolearn.tools.convert.zarr_replay``) store ``observation.environment_state`` as 9 keypoints of the T block,
``(x, y)`` each in the 512×512 pixel frame: 18 values. gym-pusht's own keypoint observation has a different
layout, so a policy trained on the real demonstrations cannot be evaluated with it. This wrapper rebuilds the
demonstrations' keypoints from the block pose that gym-pusht simulates (``x, y`` in pixels, ``angle`` in radians):

    keypoint_i = R(angle) · LOCAL_KEYPOINTS[i] + (x, y)

``LOCAL_KEYPOINTS`` are the keypoints in the block's own frame. They were recovered from the zarr itself by
inverting that transform on its recorded ``state`` and ``keypoint`` arrays. Over all 25,650 recorded frames the
rebuilt keypoints match the recorded ones to 0.001 px (median), 0.035 px (99th percentile) and 2.1 px (worst
frame), so the wrapper reproduces the training observations.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

LOCAL_KEYPOINTS = np.array([
    [9.270, 90.041], [-60.983, -1.186], [60.913, -1.394], [-0.270, 25.544], [-14.064, 122.816],
    [39.003, 32.857], [-39.966, 32.730], [-16.824, 62.863], [23.541, -1.700],
])


def block_keypoints(block_x: float, block_y: float, angle: float) -> np.ndarray:
    """The 9 keypoints ``(9, 2)`` (pixels) of the T block at pose ``(x, y, angle)`` (pixels, radians)."""
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    return LOCAL_KEYPOINTS @ rot.T + np.array([block_x, block_y])


class PushTKeypoints(gym.ObservationWrapper):
    """gym-pusht (``obs_type="state"``) with observations ``{"agent_pos": (2,), "environment_state": (18,)}``.

    The wrapped env must return gym-pusht's state vector ``[agent_x, agent_y, block_x, block_y, block_angle]``.

    Raises:
        ValueError: at the first observation if it is not a 5-vector.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.observation_space = gym.spaces.Dict({
            "agent_pos": gym.spaces.Box(0.0, 512.0, shape=(2,), dtype=np.float64),
            "environment_state": gym.spaces.Box(-np.inf, np.inf, shape=(18,), dtype=np.float64),
        })

    def observation(self, observation: Any) -> dict[str, np.ndarray]:
        state = np.asarray(observation, dtype=np.float64).reshape(-1)
        if state.shape != (5,):
            raise ValueError(f"PushTKeypoints needs gym-pusht's 5-d state (obs_type='state'), got shape {state.shape}")
        return {"agent_pos": state[:2].copy(), "environment_state": block_keypoints(*state[2:5]).reshape(18)}


def make_pusht_keypoints(max_episode_steps: int | None = None, perturbation: Any = None, **kwargs: Any) -> gym.Env:
    """``gym_pusht/PushT-v0`` with ``obs_type="state"`` wrapped by :class:`PushTKeypoints` (kwargs go to gym-pusht).

    Args:
        max_episode_steps: time limit in steps (None: gym-pusht's 300).
        perturbation: perturbations of the initial state only (kinds of
            :data:`robolearn.envs.pusht_perturb.STATE_PERTURBATIONS`, e.g. ``{"positions": {"objects": "block"}}``),
            or None. The keypoints are those of the nominal-size T, and nothing drawn reaches this observation.

    Raises:
        ValueError: a visual or block-size perturbation (the message names the state kinds), or a bad value.
    """
    from robolearn.envs.pusht_perturb import STATE_PERTURBATIONS, make_perturbations, make_pusht

    perturbations = make_perturbations(perturbation)
    refused = sorted(set(perturbations.describe()) - STATE_PERTURBATIONS)
    if refused:
        raise ValueError(f"pusht_keypoints observes the state, not an image: perturbations {refused} change what is "
                         f"drawn or the T's size (its keypoints are the nominal T's); it takes "
                         f"{sorted(STATE_PERTURBATIONS)} (use env=pusht for the others)")
    kwargs.setdefault("render_mode", "rgb_array")
    kwargs.setdefault("disable_env_checker", True)
    env = make_pusht(perturbations, obs_type="state", max_episode_steps=max_episode_steps, **kwargs)
    return PushTKeypoints(env)
