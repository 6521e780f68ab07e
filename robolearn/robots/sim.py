"""Simulated robots: the :class:`~robolearn.robots.robot.Robot` interface over a simulator, for ``record.py``,
replay and deployment without hardware.

A :class:`SimRobot` reports flat dictionaries like a real arm (``{"shoulder_pan.pos": 0.1, ..., "workspace":
uint8 (H, W, 3)}``) and additionally knows the dataset layout it records (:meth:`SimRobot.dataset_features`):
``observation.state``, ``observation.environment_state`` (privileged simulator state), one
``observation.images.<camera>`` per camera, ``action`` and the transition's ``next.reward`` / ``next.success`` /
``next.done``. For SO-101 these are exactly the features of :mod:`robolearn.demos.so101_pick_place`, so recorded and
generated datasets are interchangeable.

Robots:

- :class:`SO101SimRobot`: ``SO101PickPlaceSim`` (MuJoCo); action = native ``[delta_x, delta_y, delta_z, gripper]``.
- :class:`GymSimRobot`: any gymnasium env with ``agent_pos`` / ``pixels`` observations (gym-pusht, gym-aloha).

``send_action`` steps the simulator by one control period (``1 / fps`` s of simulated time).
"""

from __future__ import annotations

import abc
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from robolearn.robots.features import hw_to_dataset_features
from robolearn.robots.robot import Robot, RobotError, require_finite_action

OBS_ENV_STATE = "observation.environment_state"
TRANSITION_FEATURES = {
    "next.reward": {"dtype": "float32", "shape": [1], "names": None},
    "next.success": {"dtype": "bool", "shape": [1], "names": None},
    "next.done": {"dtype": "bool", "shape": [1], "names": None},
}


class SimRobot(Robot, abc.ABC):
    """Base of simulated robots.

    Subclasses implement ``_reset(seed) -> native obs``, ``_step(action (A,)) -> (native obs, reward, terminated,
    truncated, info)``, ``_flatten(native obs) -> {key: float | image}`` and set ``state_names``,
    ``env_state_names``, ``action_names``, ``camera_shapes`` (``{camera: (H, W, 3)}``) and ``fps``.

    After each ``send_action``, :attr:`transition` holds ``next.reward`` (float32 (1,)), ``next.success`` and
    ``next.done`` (bool (1,)) of that step, and :attr:`episode_done` tells whether the env terminated/truncated.

    ``steps_after_success`` (set by subclasses from their argument of that name, 0 by default) keeps an episode
    going for that many steps after the env terminates with a success, as lerobot's ``number_of_steps_after_success``
    does for HIL-SERL's reward classifier data: the recorded episode then holds observations that *show* the
    success (the frame of the succeeding step shows the state before it), each with the step's own
    ``next.success``. The episode still ends at truncation, and at once when the env terminates without success.
    """

    name = "sim"
    state_names: list[str]
    env_state_names: list[str]
    action_names: list[str]
    camera_shapes: dict[str, tuple[int, int, int]]
    fps: int
    task: str | None = None

    def __init__(self, id: str | None = None, steps_after_success: int = 0) -> None:
        super().__init__(id)
        if int(steps_after_success) < 0:
            raise ValueError(f"steps_after_success must be >= 0, got {steps_after_success}")
        self.steps_after_success = int(steps_after_success)
        self._steps_since_success: int | None = None
        self._connected = False
        self._obs: dict[str, Any] | None = None
        self.transition: dict[str, np.ndarray] = {}
        self.episode_done = False
        self.last_info: dict[str, Any] = {}

    # ------------------------------------------------------------------ features
    @property
    def observation_features(self) -> dict[str, Any]:
        feats: dict[str, Any] = {k: float for k in [*self.state_names, *self.env_state_names]}
        feats.update(self.camera_shapes)
        return feats

    @property
    def action_features(self) -> dict[str, Any]:
        return {k: float for k in self.action_names}

    def dataset_features(self, use_video: bool = True) -> dict[str, dict]:
        """lerobot features recorded from this robot: state, environment state, cameras, action, ``next.*``."""
        scal = {k: float for k in self.state_names}
        feats = hw_to_dataset_features({**scal, **self.camera_shapes}, "observation", use_video)
        if self.env_state_names:
            feats[OBS_ENV_STATE] = {"dtype": "float32", "shape": [len(self.env_state_names)],
                                    "names": list(self.env_state_names)}
            # lerobot order: state, environment_state, then cameras.
            feats = {k: feats[k] for k in sorted(feats, key=lambda k: (not k.startswith("observation.state"),
                                                                       k != OBS_ENV_STATE))}
        feats.update(hw_to_dataset_features(self.action_features, "action"))
        feats.update({k: dict(v) for k, v in TRANSITION_FEATURES.items()})
        return feats

    # ------------------------------------------------------------------ lifecycle
    @property
    def is_connected(self) -> bool:
        return self._connected

    def connect(self, calibrate: bool = True) -> None:
        """Start the simulator (no calibration needed)."""
        if self._connected:
            raise RobotError(f"{self.name} is already connected")
        self._open()
        self._connected = True

    def _open(self) -> None:
        """Create the simulator (subclasses that build it lazily override this)."""

    def _require(self) -> None:
        if not self._connected:
            raise RobotError(f"{self.name} is not connected; call connect() first")

    def reset(self, seed: int | None = None) -> dict[str, Any]:
        """Reset the simulator with ``seed`` (object poses etc. drawn from it) and return the first observation."""
        self._require()
        self._obs = self._flatten(self._reset(seed))
        self.transition, self.episode_done, self.last_info = {}, False, {}
        self._steps_since_success = None
        return dict(self._obs)

    def get_observation(self) -> dict[str, Any]:
        """The latest observation (``reset`` is called first if needed)."""
        self._require()
        if self._obs is None:
            return self.reset()
        return dict(self._obs)

    def send_action(self, action: Mapping[str, Any]) -> dict[str, Any]:
        """Step the simulator with ``action`` (``{name: float}`` for every name in ``action_names``).

        Raises:
            RobotError: not connected, action keys missing (lists the missing and the expected keys), or a
                NaN/infinite value (named; the simulator is not stepped).
        """
        self._require()
        missing = [k for k in self.action_names if k not in action]
        if missing:
            raise RobotError(f"{self.name}: action lacks {missing}; expected keys {self.action_names}, "
                             f"got {sorted(action)}")
        if self._obs is None:
            self.reset()
        finite = require_finite_action(self.name, action, self.action_names)
        vec = np.asarray([finite[k] for k in self.action_names], dtype=np.float32)
        obs, reward, terminated, truncated, info = self._step(vec)
        self._obs = self._flatten(obs)
        success = bool(info.get("success", info.get("is_success", False)))
        self.episode_done = bool(terminated or truncated)
        if self._steps_since_success is not None:  # the env terminated with a success earlier in this episode
            self._steps_since_success += 1
            self.episode_done = bool(truncated or self._steps_since_success >= self.steps_after_success)
        elif terminated and success and self.steps_after_success and not truncated:
            self._steps_since_success, self.episode_done = 0, False
        self.last_info = dict(info)
        self.transition = {"next.reward": np.asarray([reward], np.float32),
                           "next.success": np.asarray([success], bool),
                           "next.done": np.asarray([self.episode_done], bool)}
        return {k: float(v) for k, v in zip(self.action_names, vec)}

    def disconnect(self) -> None:
        if self._connected:
            self._close()
        self._connected = False
        self._obs = None

    def expert_action(self) -> np.ndarray:
        """The simulator's scripted expert's next action ``(A,)`` (advances its plan; call once per step).

        Raises:
            RobotError: this simulator has no scripted expert.
        """
        raise RobotError(f"{self.name} has no scripted expert; use another teleop (e.g. teleop=keyboard)")

    # ------------------------------------------------------------------ subclass API
    @abc.abstractmethod
    def _reset(self, seed: int | None) -> Any: ...

    @abc.abstractmethod
    def _step(self, action: np.ndarray) -> tuple[Any, float, bool, bool, dict]: ...

    @abc.abstractmethod
    def _flatten(self, obs: Any) -> dict[str, Any]: ...

    def _close(self) -> None:
        """Release the simulator."""


class SO101SimRobot(SimRobot):
    """SO-101 pick-and-place in MuJoCo (:class:`robolearn.envs.so101.SO101PickPlaceSim`).

    Observation: 6 joints (``<joint>.pos``: arm in radians, gripper opening in [0, 1]), block and goal centres
    and the grasp point (``block.x`` ... ``grasp.z``, metres), camera ``<camera>`` uint8 (H, W, 3). Action: native
    ``[delta_x, delta_y, delta_z, gripper]`` (deltas in [-1, 1] × 0.025 m × 10/fps per step, gripper absolute in
    [0, 1], 0 closed). The defaults match ``robolearn.demos.so101_pick_place`` (``workspace`` camera, 96×96, 10 fps).

    Args:
        fps: control rate, Hz (one ``send_action`` = ``1/fps`` s of simulated time).
        camera: camera of :data:`robolearn.envs.so101.CAMERAS`, or None for no image.
        image_size: ``H`` (square) or ``(H, W)``.
        max_episode_steps: env time limit (steps); ``episode_done`` becomes True when reached.
        cameras: extra cameras ``{name: Camera | config}`` (e.g. ``{type: fake, width: 640, height: 480}``; see
            :func:`robolearn.robots.cameras.make_cameras`) read on every observation.
        action_noise, missed_grasps: disturb what the simulator executes while ``send_action`` reports (and
            ``record.py`` records) the commanded action: DART noise and missed first grasps as in
            :class:`robolearn.envs.so101.DemonstrationNoise`, seeded by ``reset(seed)``. Both scale with the scripted
            expert's phase, so they are meant for ``teleop=scripted`` (the embedded default dataset uses 0.3 and 0.3).
            0: the simulator executes the command.
        show_robot: False renders ``camera`` without the arm (:class:`robolearn.envs.so101.SO101PickPlaceSim`'s
            ``show_robot``: ~2 ms instead of ~40 ms a frame in software rendering).
        steps_after_success: steps recorded after the simulator's success (:class:`SimRobot`), e.g. 5 for a
            reward classifier's demonstrations; 0: the episode ends at the success.

    Raises:
        ValueError: ``fps`` <= 0 or a negative ``steps_after_success``.
    """

    name = "so101_sim"

    def __init__(self, fps: int = 10, camera: str | None = "workspace", image_size: int | Sequence[int] = 96,
                 max_episode_steps: int = 300, cameras: Mapping[str, Any] | None = None, action_noise: float = 0.0,
                 missed_grasps: float = 0.0, id: str | None = None, show_robot: bool = True,
                 steps_after_success: int = 0) -> None:
        super().__init__(id, steps_after_success)
        from robolearn.envs.so101 import ACTION_NAMES, ENV_STATE_NAMES, STATE_NAMES, TASK, DemonstrationNoise

        if int(fps) <= 0:
            raise ValueError(f"fps must be a positive int, got {fps}")
        self.fps = int(fps)
        self.camera = camera
        size = (int(image_size), int(image_size)) if isinstance(image_size, (int, np.integer)) else tuple(
            int(s) for s in image_size)
        self.image_size = size
        self.max_episode_steps = int(max_episode_steps)
        self.state_names, self.env_state_names = list(STATE_NAMES), list(ENV_STATE_NAMES)
        self.action_names = list(ACTION_NAMES)
        self.task = TASK
        self.noise = DemonstrationNoise(action_noise, missed_grasps)
        self.show_robot = bool(show_robot)
        self._camera_specs = dict(cameras or {})
        self.extra_cameras: dict[str, Any] = {}
        self.camera_shapes = {camera: (*size, 3)} if camera else {}
        if self._camera_specs:
            from robolearn.robots.cameras import make_cameras

            self.extra_cameras = make_cameras(self._camera_specs)
            for k, cam in self.extra_cameras.items():
                self.camera_shapes[k] = tuple(cam.shape)
        self.sim = None

    def _open(self) -> None:
        from robolearn.envs.so101 import SO101PickPlaceSim

        self.sim = SO101PickPlaceSim(camera=self.camera, image_size=self.image_size, fps=self.fps,
                                     max_episode_steps=self.max_episode_steps, show_robot=self.show_robot)
        for cam in self.extra_cameras.values():
            cam.connect()

    def _reset(self, seed: int | None) -> Any:
        obs, _ = self.sim.reset(seed=seed)
        self.noise.reset(seed)
        return obs

    def _step(self, action: np.ndarray) -> tuple[Any, float, bool, bool, dict]:
        return self.sim.step(self.noise.executed(action, self.sim.expert))

    def _flatten(self, obs: Mapping[str, np.ndarray]) -> dict[str, Any]:
        out: dict[str, Any] = dict(zip(self.state_names, obs["observation.state"].tolist()))
        out.update(zip(self.env_state_names, obs["observation.environment_state"].tolist()))
        if self.camera:
            out[self.camera] = obs[f"observation.images.{self.camera}"]
        for k, cam in self.extra_cameras.items():
            out[k] = cam.async_read()
        return out

    @property
    def ee_delta_scale_m(self) -> float:
        """Metres the grasp point moves per step for a ``delta_*`` action of 1 at this robot's ``fps``
        (:func:`robolearn.envs.so101.action_scale_for`: 0.025 m at 10 Hz); the simulator's IK (the grasp point, the
        gripper pointing down) turns the target into joint angles."""
        from robolearn.envs.so101 import action_scale_for

        return action_scale_for(self.fps)

    def expert_action(self) -> np.ndarray:
        """The pick-place expert's action (:class:`robolearn.envs.so101_expert.PickPlaceExpert`) for the current
        state (float32 (4,))."""
        self._require()
        return self.sim.expert_action()

    def _close(self) -> None:
        for cam in self.extra_cameras.values():
            cam.disconnect()
        if self.sim is not None:
            self.sim.close()
            self.sim = None


class GymSimRobot(SimRobot):
    """A gymnasium env with ``obs_type="pixels_agent_pos"``-style observations as a robot.

    ``agent_pos`` (D,) becomes ``state_names``; ``pixels`` (one image, or ``{camera: image}``) the cameras;
    ``environment_state`` (when present and ``env_state_names`` given) the privileged state. Used for gym-pusht
    (``gym_pusht/PushT-v0``: 2-d agent position and 2-d target in pixels of the 512×512 workspace) and gym-aloha
    (``gym_aloha/AlohaTransferCube-v0``: 14 joint positions, radians, gripper normalized; 14-d joint action).

    Args:
        env_id: gymnasium id (its package is imported from the id's namespace, e.g. ``gym_pusht``; or
            ``"module:Id"``, e.g. ``"robolearn.envs.planar_arm:robolearn/PlanarReach-v0"``, which imports ``module``).
        fps: control rate of the env, Hz (recorded as the dataset fps; the env's own rate is not changed).
        state_names, action_names: names of the ``agent_pos`` and action dimensions, in order.
        camera_shapes: ``{camera: [H, W, 3]}``; for a single-image ``pixels`` observation use one camera. An env
            image of another size is resized to it (area interpolation), e.g. gym-aloha's 480x640 to 120x160.
        env_state_names: names of the ``environment_state`` dimensions (empty: not recorded).
        env_kwargs: passed to ``gymnasium.make``.
        expert: ``expert(env) -> ScriptedExpert`` (a Hydra ``_partial_``), or None.
        task: the task string of this env.
    """

    name = "gym_sim"

    def __init__(self, env_id: str, fps: int, state_names: Sequence[str], action_names: Sequence[str],
                 camera_shapes: Mapping[str, Sequence[int]], env_state_names: Sequence[str] = (),
                 env_kwargs: Mapping[str, Any] | None = None, expert: Callable[[Any], Any] | None = None,
                 task: str | None = None, id: str | None = None) -> None:
        super().__init__(id)
        self.env_id, self.fps = env_id, int(fps)
        self.state_names, self.action_names = list(state_names), list(action_names)
        self.env_state_names = list(env_state_names)
        self.camera_shapes = {str(k): tuple(int(s) for s in v) for k, v in camera_shapes.items()}
        self.env_kwargs = dict(env_kwargs or {})
        self._expert_factory, self.expert = expert, None
        self.task = task
        self.name = env_id.split("/")[-1]
        self.env = None

    def _open(self) -> None:
        import importlib

        import gymnasium as gym

        if "/" in self.env_id and ":" not in self.env_id:  # "module:Id" ids are imported by gymnasium.make
            importlib.import_module(self.env_id.split("/")[0])
        self.env = gym.make(self.env_id, disable_env_checker=True, **self.env_kwargs)
        if self._expert_factory is not None:
            self.expert = self._expert_factory(self.env)

    def _reset(self, seed: int | None) -> Any:
        obs, _ = self.env.reset(seed=seed)
        if self.expert is not None:
            self.expert.reset()
        self._native = obs
        return obs

    def _step(self, action: np.ndarray) -> tuple[Any, float, bool, bool, dict]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._native = obs
        return obs, float(reward), bool(terminated), bool(truncated), info

    def _flatten(self, obs: Mapping[str, Any]) -> dict[str, Any]:
        pos = np.asarray(obs["agent_pos"], dtype=np.float32).reshape(-1)
        if pos.shape[0] != len(self.state_names):
            raise RobotError(f"{self.env_id}: agent_pos has {pos.shape[0]} values, state_names lists "
                             f"{len(self.state_names)}: {self.state_names}")
        out: dict[str, Any] = dict(zip(self.state_names, pos.tolist()))
        if self.env_state_names:
            es = np.asarray(obs["environment_state"], dtype=np.float32).reshape(-1)
            out.update(zip(self.env_state_names, es.tolist()))
        pixels = obs.get("pixels")
        cams = list(self.camera_shapes)
        if isinstance(pixels, Mapping):
            for k in cams:
                out[k] = self._sized(k, np.asarray(pixels[k]))
        elif cams:
            out[cams[0]] = self._sized(cams[0], np.asarray(pixels))
        return out

    def _sized(self, camera: str, image: np.ndarray) -> np.ndarray:
        """``image`` (H, W, 3) uint8 resized to ``camera_shapes[camera]`` when the env renders another size."""
        h, w = self.camera_shapes[camera][:2]
        if image.shape[:2] == (h, w):
            return image
        import cv2

        return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)

    def expert_action(self) -> np.ndarray:
        self._require()
        if self.expert is None:
            return super().expert_action()
        return np.asarray(self.expert.act(self._native), dtype=np.float32)

    def _close(self) -> None:
        if self.env is not None:
            self.env.close()
            self.env = None
