"""SO-101 pick-and-place as a ``gymnasium.Env``, for ``eval.py env=so101_pick_place``.

Built on :class:`robolearn.envs.so101.SO101PickPlaceSim` with the defaults of the embedded default dataset
(:mod:`robolearn.demos.so101_pick_place`: ``workspace`` camera, 96x96, 10 fps), so a policy trained with plain
``python train.py`` sees the same keys, units and image size here. Observation (a ``Dict`` space):

- ``agent_pos`` float32 (6,): arm joints in radians, gripper opening in [0, 1] (dataset ``observation.state``);
- ``environment_state`` float32 (15,): block centre, goal centre, grasp point, block and goal minus grasp point,
  metres (``observation.environment_state``);
- ``pixels.<camera>`` uint8 (H, W, 3) (``observation.images.<camera>``), when ``camera`` is not None and
  ``observe_camera`` is True. With ``observe_camera=False`` nothing is rendered per step (about 10x faster for
  a policy that reads no camera); ``render()`` still returns the camera image for videos.

Action: the native ``[dx, dy, dz, grasp]`` (see :mod:`robolearn.envs.so101`), the dataset's ``action``.
``info["is_success"]`` is the env's success flag; reward is 1.0 on the successful step, which terminates.
"""

from __future__ import annotations

from typing import Any, Mapping

import gymnasium as gym
import numpy as np

from robolearn.envs.expert import ScriptedExpert
from robolearn.envs.so101 import (ACTION_NAMES, DEFAULT_CAMERA, DEFAULT_IMAGE_SIZE, ENV_STATE_NAMES, MAX_EPISODE_STEPS,
                                  NATIVE_FPS, STATE_NAMES, SO101PickPlaceSim)
from robolearn.envs.so101_perturb import PerturbationSet, make_perturbations


class SO101PickPlaceEnv(gym.Env):
    """Gymnasium env around :class:`SO101PickPlaceSim` with lerobot-style native keys.

    Args:
        camera: a key of :data:`robolearn.envs.so101.CAMERAS`, or None for state-only observations.
        image_size: square size or ``(H, W)`` of the camera, pixels.
        fps: control rate, Hz (one step = 1/fps s).
        max_episode_steps: time limit in steps (truncation).
        render_mode: only ``"rgb_array"`` (``render()`` returns the camera image, uint8 (H, W, 3)).
        observe_camera: put ``pixels.<camera>`` in the observations (False: render only on ``render()``).
        perturbation: a robustness condition, ``{name: {argument: value}}`` with names of
            :data:`robolearn.envs.so101_perturb.PERTURBATIONS` (lighting, camera, block, positions, distractors), or
            a :class:`~robolearn.envs.so101_perturb.PerturbationSet`; None or ``{}``: the nominal env.
        show_robot: False renders the camera without the arm (the scene camera of
            :class:`~robolearn.envs.so101.SO101PickPlaceSim`: block, goal, table; ~2 ms instead of ~40 ms a frame in
            software rendering). The arm's pose is then in ``agent_pos`` only; the physics is unchanged.

    Raises:
        ValueError, TypeError: a bad perturbation (see :func:`robolearn.envs.so101_perturb.make_perturbations`).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": NATIVE_FPS}

    def __init__(self, camera: str | None = DEFAULT_CAMERA, image_size: int | tuple[int, int] = DEFAULT_IMAGE_SIZE,
                 fps: int = NATIVE_FPS, max_episode_steps: int = MAX_EPISODE_STEPS,
                 render_mode: str | None = "rgb_array", observe_camera: bool = True,
                 perturbation: Mapping[str, Any] | PerturbationSet | None = None, show_robot: bool = True) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"SO101PickPlaceEnv supports render_mode 'rgb_array' only, got {render_mode!r}")
        self.perturbation = make_perturbations(perturbation)
        self.sim = SO101PickPlaceSim(camera=camera, image_size=image_size, fps=fps, max_episode_steps=max_episode_steps,
                                     observe_camera=observe_camera, perturbation=self.perturbation,
                                     show_robot=show_robot)
        self.render_mode = render_mode
        self.metadata = {**self.metadata, "render_fps": int(fps)}
        spaces: dict[str, gym.Space] = {
            "agent_pos": gym.spaces.Box(-np.inf, np.inf, (len(STATE_NAMES),), np.float32),
            "environment_state": gym.spaces.Box(-np.inf, np.inf, (len(ENV_STATE_NAMES),), np.float32),
        }
        if self.sim.image_key is not None:
            h, w = self.sim.image_size
            spaces["pixels"] = gym.spaces.Dict({self.sim.camera_name: gym.spaces.Box(0, 255, (h, w, 3), np.uint8)})
        self.observation_space = gym.spaces.Dict(spaces)
        self.action_space = gym.spaces.Box(
            low=np.array([-1, -1, -1, 0], np.float32), high=np.ones(len(ACTION_NAMES), np.float32), dtype=np.float32
        )

    def _convert(self, obs: dict[str, np.ndarray]) -> dict[str, Any]:
        out: dict[str, Any] = {"agent_pos": obs["observation.state"],
                               "environment_state": obs["observation.environment_state"]}
        if self.sim.image_key is not None:
            out["pixels"] = {self.sim.camera_name: obs[self.sim.image_key]}
        return out

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        obs, info = self.sim.reset(seed=seed)
        return self._convert(obs), {**info, "is_success": False}

    def step(self, action):
        obs, reward, terminated, truncated, info = self.sim.step(np.asarray(action, dtype=np.float32))
        return self._convert(obs), reward, terminated, truncated, {**info, "is_success": info["success"]}

    def render(self) -> np.ndarray:
        """The camera image, uint8 (H, W, 3).

        Raises:
            RuntimeError: the env was built with ``camera=None``.
        """
        return self.sim.render()

    def close(self) -> None:
        self.sim.close()


class SO101Expert(ScriptedExpert):
    """The pick-place expert (:class:`robolearn.envs.so101_expert.PickPlaceExpert`, through :meth:`SO101PickPlaceSim.expert_action`) as a
    :class:`ScriptedExpert` for :class:`SO101PickPlaceEnv` (any wrappers around it).

    Raises:
        TypeError: ``env.unwrapped`` is not an :class:`SO101PickPlaceEnv`.
    """

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        if not isinstance(env.unwrapped, SO101PickPlaceEnv):
            raise TypeError(f"SO101Expert needs an SO101PickPlaceEnv, got {type(env.unwrapped).__name__}")
        self.sim = env.unwrapped.sim

    def reset(self) -> None:
        self.sim.expert.reset()

    def act(self, observation: Any = None) -> np.ndarray:
        """The expert's native ``[dx, dy, dz, grasp]`` float32 (4,) for the current state (advances the plan)."""
        return self.sim.expert_action()
