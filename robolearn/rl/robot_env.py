"""A :class:`~robolearn.robots.robot.Robot` as a gymnasium env ("robot as an environment", lerobot's
``gym_manipulator``): the real SO-100/101 follower, or the simulated SO-101 behind the same interface.

:class:`RobotEnv` wraps a robot (connected on construction if it is not yet), optionally with a teleoperator for
interventions and resets:

- **Action space** (``action_mode``):

  - ``"joint"``: the robot's own ``<motor>.pos`` targets, in its units (the follower: degrees and the gripper in
    0..100), bounded by the MJCF joint ranges (or ``joint_bounds``);
  - ``"ee"``: ``[dx, dy, dz, gripper]``: end-effector displacement in metres per step (at most ``max_ee_step_m``
    per axis) of the kinematics' end-effector point, and the gripper in the robot's units. The target
    ``fk(present joints) + d`` is clipped to ``workspace_bounds`` and then, for a joint-space robot, turned into
    joint targets by :meth:`~robolearn.robots.kinematics.SO101Kinematics.ik` (seeded with the present joints); a
    robot whose native action is already an end-effector delta (the simulated SO-101, ``ee_delta_scale_m``) gets the
    clipped displacement in its native units and runs its own IK.

- **Observation**: ``{"agent_pos": (D,) float32 joint positions (robot units), "pixels": {camera: uint8 (H, W, 3)}}``
  like lerobot's gym envs; ``"environment_state"`` (the simulator's privileged state) with
  ``environment_state=True``.
- **Reward** (``reward``): ``"sim"`` (:class:`SimReward`, the simulator's reward and success), ``"keyboard"``
  (:class:`KeySuccessReward`, a person presses a success key), a :class:`ClassifierReward` (a reward classifier on
  the camera frames), or any callable ``(env, observation) -> (reward, success)``. A success ends the episode
  (``terminate_on_success``).
- **Reset phase** (``reset_mode``) after ``robot.reset(seed)`` (the simulator redraws its scene from the seed; a
  real arm just reads its observation): ``"home"`` (interpolated joint targets from the present pose to ``home``
  over ``reset_steps`` steps), ``"teleop"`` (the teleoperator drives for ``reset_time_s``), ``"scripted"``
  (``reset_script(env)`` when given, else the simulator's own scripted reset), or ``"none"``.
- **Interventions**: with a teleoperator and a takeover source (``events`` whose ``takeover`` flag a person toggles
  with Tab, :class:`robolearn.record.events.KeyboardEvents`, and/or a scripted ``trigger`` such as
  :class:`robolearn.record.takeover.StepWindows` or :class:`~robolearn.record.takeover.Deviation`), the
  teleoperator's action replaces the policy's (:class:`robolearn.record.takeover.TakeoverDriver`),
  ``info["is_intervention"]`` is True (lerobot's gym_manipulator key) and ``info["teleop_action"]`` holds the action
  that was executed, expressed in this env's action space (for the learner's buffers).

A non-finite action never reaches a motor: :meth:`RobotEnv.step` raises :class:`~robolearn.robots.robot.RobotError`
naming the bad entries before anything is sent (and the robot's ``send_action`` checks again).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Mapping, Sequence

import gymnasium as gym
import numpy as np

from robolearn.robots.robot import Robot, RobotError

log = logging.getLogger(__name__)

ACTION_MODES = ("joint", "ee")
RESET_MODES = ("home", "teleop", "scripted", "none")
EE_NATIVE_KEYS = ["delta_x", "delta_y", "delta_z", "gripper"]
GRIPPER_KEY = "gripper.pos"
IS_INTERVENTION = "is_intervention"
TELEOP_ACTION = "teleop_action"
#: ``info`` key: True at the step where the teleoperator took over (the policy's action was not executed).
TAKEOVER_STARTED = "takeover_started"
#: ``info`` key on simulated robots: the simulator's own success, whatever the reward source.
SIM_SUCCESS = "sim_success"


# ---------------------------------------------------------------------------------------------- reward sources
class SimReward:
    """The simulator's reward and success of the last step (``robot.transition``: ``next.reward``,
    ``next.success``), for :class:`~robolearn.robots.sim.SimRobot` s.

    Raises (on call):
        RobotError: the robot records no transition (not a simulated robot).
    """

    def reset(self) -> None:
        """Start of an episode (no state)."""

    def __call__(self, env: "RobotEnv", observation: Mapping[str, Any]) -> tuple[float, bool]:
        tr = getattr(env.robot, "transition", None)
        if not tr:
            raise RobotError(f"reward='sim' needs a simulated robot that reports its transition; "
                             f"{type(env.robot).__name__} has none (use reward='keyboard' or a ClassifierReward)")
        return float(np.asarray(tr["next.reward"]).reshape(-1)[0]), bool(np.asarray(tr["next.success"]).reshape(-1)[0])


class KeySuccessReward:
    """A person marks success with a key typed in the terminal (lerobot's gym_manipulator ``s`` key): the step after
    the press gets ``reward`` 1 and success.

    Args:
        key: the key name (:func:`robolearn.utils.terminal_keys.parse_keys`), default ``"s"``.
        listen: subscribe to the terminal reader (False: call :meth:`press`, e.g. in tests).
    """

    def __init__(self, key: str = "s", listen: bool = True) -> None:
        self.key, self.listen = str(key), bool(listen)
        self._pressed = False
        self._started = False

    def press(self, key: str) -> None:
        """Handle one key name; the success key marks the episode successful."""
        if key == self.key:
            self._pressed = True

    def start(self) -> None:
        """Start reading the terminal (when ``listen``)."""
        if self.listen and not self._started:
            from robolearn.utils.terminal_keys import shared_reader

            reader = shared_reader()
            reader.subscribe(self.press)
            reader.start()
            self._started = True

    def stop(self) -> None:
        """Stop reading the terminal."""
        if self._started:
            from robolearn.utils.terminal_keys import shared_reader

            shared_reader().unsubscribe(self.press)
            self._started = False

    def reset(self) -> None:
        """Start of an episode: forget earlier presses."""
        self.start()
        self._pressed = False

    def __call__(self, env: "RobotEnv", observation: Mapping[str, Any]) -> tuple[float, bool]:
        pressed, self._pressed = self._pressed, False
        return (1.0, True) if pressed else (0.0, False)


class ClassifierReward:
    """Reward from a success classifier on the camera frames (HIL-SERL's reward classifier): success when
    ``p >= threshold``.

    Args:
        classifier: an object with ``predict_success({key: (1, 3, H, W) float32 in [0, 1]}) -> (1,)`` (the
            ``policy=reward_classifier`` module) or a callable with the same input returning a probability.
        image_keys: ``{env camera: classifier input key}``, e.g. ``{"front": "observation.images.front"}``.
        state_key: classifier input key that receives ``agent_pos`` as ``(1, D)`` (None: not given).
        threshold: success probability threshold.

    Raises:
        TypeError: ``classifier`` is neither callable nor has ``predict_success``.
        ValueError: empty ``image_keys`` and no ``state_key``.
    """

    def __init__(self, classifier: Any, image_keys: Mapping[str, str], state_key: str | None = None,
                 threshold: float = 0.5) -> None:
        predict = getattr(classifier, "predict_success", None)
        if predict is None and not callable(classifier):
            raise TypeError(f"classifier must be callable or have predict_success(), got {type(classifier).__name__}")
        if not image_keys and state_key is None:
            raise ValueError("ClassifierReward needs image_keys and/or state_key to build the classifier's input")
        self.predict = predict or classifier
        self.image_keys, self.state_key, self.threshold = dict(image_keys), state_key, float(threshold)
        self.last_probability = float("nan")

    def reset(self) -> None:
        """Start of an episode (no state)."""

    def __call__(self, env: "RobotEnv", observation: Mapping[str, Any]) -> tuple[float, bool]:
        import torch

        inputs: dict[str, Any] = {}
        for cam, key in self.image_keys.items():
            if cam not in observation.get("pixels", {}):
                raise KeyError(f"ClassifierReward: camera {cam!r} is not observed; cameras: "
                               f"{sorted(observation.get('pixels', {}))}")
            img = torch.as_tensor(np.asarray(observation["pixels"][cam]))
            inputs[key] = img.permute(2, 0, 1)[None].float().div(255.0)
        if self.state_key is not None:
            inputs[self.state_key] = torch.as_tensor(observation["agent_pos"], dtype=torch.float32)[None]
        with torch.no_grad():
            p = float(torch.as_tensor(self.predict(inputs)).reshape(-1)[0])
        self.last_probability = p
        success = p >= self.threshold
        return (1.0 if success else 0.0), success


# ---------------------------------------------------------------------------------------------------- the env
class RobotEnv(gym.Env):
    """A robot (+ optional teleoperator) as a gymnasium env; see the module doc.

    Args:
        robot: a :class:`~robolearn.robots.robot.Robot` (connected here if it is not).
        action_mode: ``"joint"`` or ``"ee"``.
        kinematics: an :class:`~robolearn.robots.kinematics.SO101Kinematics` whose ``units`` are the robot's joint
            units (needed for ``"ee"``, for ``workspace_bounds`` and for the default joint bounds).
        workspace_bounds: ``[[xmin, ymin, zmin], [xmax, ymax, zmax]]`` metres (base frame) for the end-effector
            point, or None. ``"ee"``: targets are clipped into it; ``"joint"``: a target whose FK leaves it is
            replaced by the IK solution of the clipped point.
        max_ee_step_m: ``"ee"`` action bound per axis, metres per step.
        joint_bounds: ``{action key: [low, high]}`` of the ``"joint"`` action space (default: the MJCF joint ranges
            for the arm joints and ``gripper_bounds`` for ``gripper.pos``).
        gripper_bounds: ``[low, high]`` of the gripper command (default: [0, 100] for the follower in degrees,
            [0, 1] for the simulated SO-101).
        teleop: a :class:`~robolearn.teleop.teleoperator.Teleoperator` with the robot's action keys (interventions
            and ``reset_mode="teleop"``), or None.
        events: an object with a ``takeover`` flag (Tab in :class:`robolearn.record.events.KeyboardEvents`); its
            ``exit_early`` flag (→) ends a teleoperated reset early. :meth:`close` stops it (as the reward's key
            reader).
        trigger: a scripted takeover trigger (:class:`robolearn.record.takeover.StepWindows`, ``Deviation``), or None.
        reward: ``"sim"``, ``"keyboard"``, a reward source object or callable ``(env, observation) -> (reward,
            success)``; default ``"sim"`` for simulated robots, else ``"keyboard"``.
        terminate_on_success: end the episode (``terminated``) at a success.
        max_episode_steps: time limit (``truncated`` after this many steps).
        reset_mode: ``"home"``, ``"teleop"``, ``"scripted"`` or ``"none"``.
        home: ``{action key: value}`` joint targets of the home pose in robot units (default: 0 for every arm
            joint, the middle of its range, and the gripper left where it is).
        reset_steps: steps of the return-to-home motion.
        reset_time_s: duration of a teleoperated reset, seconds (``reset_time_s * fps`` steps on a simulator).
        reset_script: ``reset_script(env)`` run by ``reset_mode="scripted"`` (required for a real robot).
        fps: control rate, Hz (default: the robot's ``fps``, else 30).
        real_time: sleep so that steps last ``1/fps`` s (default: True except for simulated robots).
        cameras: observe the robot's cameras as ``pixels``.
        environment_state: observe the simulator's ``env_state_names`` as ``environment_state``.

    Raises:
        ValueError: an unknown mode, a robot whose action keys do not fit ``action_mode`` (keys named), ``"ee"``
            without kinematics, a teleoperator with other action keys, bad bounds or a ``home`` key that is not an
            action key.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 30}

    def __init__(self, robot: Robot, action_mode: str = "joint", kinematics: Any = None,
                 workspace_bounds: Sequence[Sequence[float]] | None = None, max_ee_step_m: float = 0.01,
                 joint_bounds: Mapping[str, Sequence[float]] | None = None,
                 gripper_bounds: Sequence[float] | None = None, teleop: Any = None, events: Any = None,
                 trigger: Any = None, reward: Any = None, terminate_on_success: bool = True,
                 max_episode_steps: int = 300, reset_mode: str = "home", home: Mapping[str, float] | None = None,
                 reset_steps: int = 20, reset_time_s: float = 5.0,
                 reset_script: Callable[["RobotEnv"], Any] | None = None, fps: int | None = None,
                 real_time: bool | None = None, cameras: bool = True, environment_state: bool = False) -> None:
        super().__init__()
        if action_mode not in ACTION_MODES:
            raise ValueError(f"action_mode must be one of {ACTION_MODES}, got {action_mode!r}")
        if reset_mode not in RESET_MODES:
            raise ValueError(f"reset_mode must be one of {RESET_MODES}, got {reset_mode!r}")
        if int(max_episode_steps) < 1 or int(reset_steps) < 1 or not float(reset_time_s) >= 0:
            raise ValueError(f"max_episode_steps ({max_episode_steps}) and reset_steps ({reset_steps}) must be >= 1 "
                             f"and reset_time_s ({reset_time_s}) >= 0")
        self.robot, self.action_mode, self.kin = robot, action_mode, kinematics
        self._owns_connection = not robot.is_connected
        if self._owns_connection:
            robot.connect()
        self.is_sim = hasattr(robot, "transition") and hasattr(robot, "episode_done")
        self.fps = int(fps or getattr(robot, "fps", 30))
        self.real_time = (not self.is_sim) if real_time is None else bool(real_time)
        self.metadata = {**self.metadata, "render_fps": self.fps}
        self.max_episode_steps, self.reset_mode = int(max_episode_steps), reset_mode
        self.reset_steps, self.reset_time_s, self.reset_script = int(reset_steps), float(reset_time_s), reset_script
        self.terminate_on_success = bool(terminate_on_success)
        self.teleop, self.events, self.trigger = teleop, events, trigger

        self.action_keys = list(robot.action_features)
        self.ee_native = self.action_keys == EE_NATIVE_KEYS and hasattr(robot, "ee_delta_scale_m")
        feats = robot.observation_features
        self.camera_keys = [k for k, v in feats.items() if isinstance(v, tuple)] if cameras else []
        self.state_keys = [k for k, v in feats.items() if not isinstance(v, tuple) and k.endswith(".pos")]
        if not self.state_keys:
            raise ValueError(f"{robot.name}: no '<joint>.pos' observation to use as agent_pos; observation keys "
                             f"{list(feats)}")
        self.env_state_keys = list(getattr(robot, "env_state_names", [])) if environment_state else []
        if environment_state and not self.env_state_keys:
            raise ValueError(f"environment_state=True but {robot.name} has no env_state_names")

        self._check_robot_keys()
        self.arm_keys = [f"{j}.pos" for j in self.kin.joint_names] if self.kin is not None else []
        self.gripper_bounds = self._default_gripper_bounds(gripper_bounds)
        self.workspace = self._check_workspace(workspace_bounds)
        if action_mode == "ee":
            if not max_ee_step_m > 0:
                raise ValueError(f"max_ee_step_m must be > 0, got {max_ee_step_m}")
            self.max_ee_step_m = float(max_ee_step_m)
            s = self.max_ee_step_m
            self.action_space = gym.spaces.Box(np.asarray([-s, -s, -s, self.gripper_bounds[0]], np.float32),
                                               np.asarray([s, s, s, self.gripper_bounds[1]], np.float32),
                                               dtype=np.float32)
        else:
            lo, hi = self._joint_bounds(joint_bounds)
            self.action_space = gym.spaces.Box(lo, hi, dtype=np.float32)
        self.home = self._check_home(home)

        spaces: dict[str, gym.Space] = {
            "agent_pos": gym.spaces.Box(-np.inf, np.inf, (len(self.state_keys),), np.float32)}
        if self.env_state_keys:
            spaces["environment_state"] = gym.spaces.Box(-np.inf, np.inf, (len(self.env_state_keys),), np.float32)
        if self.camera_keys:
            spaces["pixels"] = gym.spaces.Dict({k: gym.spaces.Box(0, 255, tuple(feats[k]), np.uint8)
                                                for k in self.camera_keys})
        self.observation_space = gym.spaces.Dict(spaces)

        if reward is None:
            reward = "sim" if self.is_sim else "keyboard"
        if reward == "sim":
            reward = SimReward()
        elif reward == "keyboard":
            reward = KeySuccessReward()
        elif isinstance(reward, str):
            raise ValueError(f"reward must be 'sim', 'keyboard', a reward source or a callable, got {reward!r}")
        if not callable(reward):
            raise TypeError(f"reward source {type(reward).__name__} is not callable as (env, observation)")
        self.reward_source = reward

        self._driver = None
        self._owns_teleop = False
        if teleop is not None:
            if list(teleop.action_features) != self.action_keys:
                raise ValueError(f"teleoperator {getattr(teleop, 'name', type(teleop).__name__)} acts on "
                                 f"{list(teleop.action_features)}, the robot on {self.action_keys}")
            if not teleop.is_connected:
                teleop.connect()
                self._owns_teleop = True
            from robolearn.record.takeover import TakeoverDriver

            self._driver = TakeoverDriver(self._policy_robot_action, lambda: None, teleop, events, trigger)
        elif trigger is not None:
            raise ValueError("a takeover trigger needs a teleoperator (teleop=...) to take over with")
        if reset_mode == "teleop" and teleop is None:
            raise ValueError("reset_mode='teleop' needs a teleoperator")
        if reset_mode == "scripted" and reset_script is None and not self.is_sim:
            raise ValueError(f"reset_mode='scripted' on {robot.name} needs reset_script(env); only simulated robots "
                             "have their own scripted reset")
        if reset_mode == "home" and self.ee_native:
            raise ValueError(f"reset_mode='home' sends joint targets; {robot.name} takes end-effector deltas "
                             f"{self.action_keys} (use reset_mode='scripted': the simulator resets the arm)")

        self._obs: dict[str, Any] = {}
        self._pending: dict[str, float] = {}
        self._step = 0
        self._t_last = 0.0
        self._last_ik_error = 0.0
        self.render_mode = "rgb_array" if self.camera_keys else None

    # ------------------------------------------------------------------ construction checks
    def _check_robot_keys(self) -> None:
        keys = self.action_keys
        joint_like = all(k.endswith(".pos") for k in keys)
        if self.action_mode == "joint" and not joint_like:
            raise ValueError(f"action_mode='joint' needs '<motor>.pos' actions; {self.robot.name} acts on {keys} "
                             "(use action_mode='ee')")
        if self.action_mode == "ee":
            if self.kin is None:
                raise ValueError("action_mode='ee' needs kinematics (robolearn.robots.kinematics.SO101Kinematics)")
            if not (joint_like or self.ee_native):
                raise ValueError(f"action_mode='ee' needs '<motor>.pos' actions or native end-effector deltas "
                                 f"{EE_NATIVE_KEYS} with ee_delta_scale_m; {self.robot.name} acts on {keys}")
        if self.kin is not None:
            need = [f"{j}.pos" for j in self.kin.joint_names]
            missing = [k for k in need if k not in self.robot.observation_features]
            if missing:
                raise ValueError(f"kinematics need the observations {missing}; {self.robot.name} observes "
                                 f"{list(self.robot.observation_features)}")
            if joint_like and any(k not in keys for k in need):
                raise ValueError(f"kinematics need the actions {need}; {self.robot.name} acts on {keys}")
            units = getattr(self.robot, "use_degrees", None)
            if units is False:
                raise ValueError(f"{self.robot.name} reports body joints in -100..100 (use_degrees=False); the "
                                 "kinematics need degrees (use_degrees=True)")
            if self.is_sim and self.kin.units != "radians" or units is True and self.kin.units != "degrees":
                raise ValueError(f"kinematics units {self.kin.units!r} differ from {self.robot.name}'s joint units "
                                 f"({'radians' if self.is_sim else 'degrees'})")

    def _default_gripper_bounds(self, bounds: Sequence[float] | None) -> tuple[float, float]:
        if bounds is None:
            bounds = (0.0, 1.0) if self.is_sim else (0.0, 100.0)
        lo, hi = (float(b) for b in bounds)
        if not (np.isfinite([lo, hi]).all() and lo < hi):
            raise ValueError(f"gripper_bounds must be finite [low, high] with low < high, got {list(bounds)}")
        return lo, hi

    def _check_workspace(self, bounds: Sequence[Sequence[float]] | None) -> np.ndarray | None:
        if bounds is None:
            return None
        b = np.asarray(bounds, dtype=np.float64)
        if b.shape != (2, 3) or not np.all(np.isfinite(b)) or not np.all(b[0] < b[1]):
            raise ValueError(f"workspace_bounds must be [[xmin, ymin, zmin], [xmax, ymax, zmax]] (metres, finite, "
                             f"min < max), got {np.asarray(bounds).tolist()}")
        if self.kin is None:
            raise ValueError("workspace_bounds need kinematics to know where the end-effector is")
        return b

    def _joint_bounds(self, bounds: Mapping[str, Sequence[float]] | None) -> tuple[np.ndarray, np.ndarray]:
        default: dict[str, tuple[float, float]] = {}
        if self.kin is not None:
            for key, (lo, hi) in zip(self.arm_keys, self.kin.joint_limits):
                default[key] = (float(lo), float(hi))
        default[GRIPPER_KEY] = self.gripper_bounds
        given = {str(k): v for k, v in (bounds or {}).items()}
        unknown = [k for k in given if k not in self.action_keys]
        if unknown:
            raise ValueError(f"joint_bounds keys {unknown} are not action keys {self.action_keys}")
        lo, hi = [], []
        for k in self.action_keys:
            if k not in given and k not in default:
                raise ValueError(f"no bound for action {k!r}: give joint_bounds={{{k!r}: [low, high]}} or kinematics")
            a, b = (float(x) for x in given.get(k, default.get(k)))
            if not (np.isfinite([a, b]).all() and a < b):
                raise ValueError(f"joint_bounds[{k!r}] must be finite [low, high] with low < high, got {[a, b]}")
            lo.append(a)
            hi.append(b)
        return np.asarray(lo, np.float32), np.asarray(hi, np.float32)

    def _check_home(self, home: Mapping[str, float] | None) -> dict[str, float]:
        if home is None:
            return {k: 0.0 for k in self.action_keys if k != GRIPPER_KEY and k.endswith(".pos")}
        unknown = [k for k in home if k not in self.action_keys]
        if unknown:
            raise ValueError(f"home keys {unknown} are not action keys {self.action_keys}")
        bad = {k: v for k, v in home.items() if not np.isfinite(float(v))}
        if bad:
            raise ValueError(f"home has non-finite values {bad}")
        return {str(k): float(v) for k, v in home.items()}

    # ------------------------------------------------------------------ observation
    def _read(self) -> dict[str, Any]:
        self._obs = self.robot.get_observation()
        return self._observation(self._obs)

    def _observation(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"agent_pos": np.asarray([raw[k] for k in self.state_keys], np.float32)}
        if self.env_state_keys:
            out["environment_state"] = np.asarray([raw[k] for k in self.env_state_keys], np.float32)
        if self.camera_keys:
            out["pixels"] = {k: np.asarray(raw[k], np.uint8) for k in self.camera_keys}
        return out

    def arm_joints(self) -> np.ndarray:
        """Present arm joint angles ``(5,)`` (kinematics' joints, robot units) from the last observation."""
        return np.asarray([self._obs[k] for k in self.arm_keys], np.float64)

    def ee_position(self) -> np.ndarray:
        """Present end-effector point ``(3,)`` metres (FK of the last observed joints).

        Raises:
            ValueError: the env has no kinematics.
        """
        if self.kin is None:
            raise ValueError("ee_position needs kinematics")
        return self.kin.fk(self.arm_joints())

    # ------------------------------------------------------------------ action conversion
    def _check_action(self, action: Any) -> np.ndarray:
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != self.action_space.shape:
            raise ValueError(f"action must have shape {self.action_space.shape} ({self.action_mode} mode), got "
                             f"{np.shape(action)}")
        bad = np.flatnonzero(~np.isfinite(a))
        if bad.size:
            names = self._action_names()
            raise RobotError(f"{self.robot.name}: refused a non-finite action, nothing was sent: "
                             f"{', '.join(f'{names[i]}={a[i]}' for i in bad)}")
        return np.clip(a, self.action_space.low, self.action_space.high)

    def _action_names(self) -> list[str]:
        return ["dx", "dy", "dz", "gripper"] if self.action_mode == "ee" else list(self.action_keys)

    def _to_robot(self, a: np.ndarray) -> dict[str, float]:
        """An env-space action (clipped, finite) as the robot's action dict, inside the workspace."""
        if self.action_mode == "joint":
            return self._bounded(dict(zip(self.action_keys, (float(v) for v in a))))
        ee = self.ee_position()
        target = ee + a[:3]
        if self.workspace is not None:
            target = np.clip(target, self.workspace[0], self.workspace[1])
        if self.ee_native:
            native = np.clip((target - ee) / float(self.robot.ee_delta_scale_m), -1.0, 1.0)
            return {**dict(zip(EE_NATIVE_KEYS[:3], native.tolist())), "gripper": float(a[3])}
        q, self._last_ik_error = self.kin.ik(target, self.arm_joints())
        out = {k: float(self._obs[k]) for k in self.action_keys}
        out.update({k: float(v) for k, v in zip(self.arm_keys, q)})
        out[GRIPPER_KEY] = float(a[3])
        return out

    def _bounded(self, action: Mapping[str, float]) -> dict[str, float]:
        """A robot action (the policy's in joint mode, or the teleoperator's) whose end-effector target lies outside
        ``workspace_bounds`` moved onto the box: joint targets by IK of the clipped point (seeded with the targets),
        native end-effector deltas by clipping the target point. Unchanged without bounds."""
        out = {k: float(v) for k, v in action.items()}
        if self.workspace is None:
            return out
        if self.ee_native:
            scale = float(self.robot.ee_delta_scale_m)
            ee = self.ee_position()
            d = np.asarray([out[k] for k in EE_NATIVE_KEYS[:3]]) * scale
            target = np.clip(ee + d, self.workspace[0], self.workspace[1])
            out.update(zip(EE_NATIVE_KEYS[:3], np.clip((target - ee) / scale, -1.0, 1.0).tolist()))
            return out
        q = np.asarray([out[k] for k in self.arm_keys])
        x = self.kin.fk(q)
        clipped = np.clip(x, self.workspace[0], self.workspace[1])
        if not np.allclose(clipped, x, rtol=0.0, atol=1e-9):
            q, _ = self.kin.ik(clipped, q)
            out.update({k: float(v) for k, v in zip(self.arm_keys, q)})
        return out

    def _to_env(self, robot_action: Mapping[str, float]) -> np.ndarray:
        """A robot action (e.g. the teleoperator's) expressed in this env's action space (float32, clipped)."""
        if self.action_mode == "joint":
            a = np.asarray([robot_action[k] for k in self.action_keys], np.float64)
        elif self.ee_native:
            d = np.asarray([robot_action[k] for k in EE_NATIVE_KEYS[:3]], np.float64) * float(self.robot.ee_delta_scale_m)
            a = np.asarray([*d, robot_action["gripper"]])
        else:
            q = np.asarray([robot_action[k] for k in self.arm_keys], np.float64)
            a = np.asarray([*(self.kin.fk(q) - self.ee_position()), robot_action[GRIPPER_KEY]])
        return np.clip(a, self.action_space.low, self.action_space.high).astype(np.float32)

    def _policy_robot_action(self, observation: Mapping[str, Any]) -> dict[str, float]:
        return self._pending

    # ------------------------------------------------------------------ gym API
    def _pace(self) -> None:
        if self.real_time:
            wait = self._t_last + 1.0 / self.fps - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            self._t_last = time.perf_counter()

    def _send(self, action: Mapping[str, float]) -> dict[str, float]:
        self._pace()
        return self.robot.send_action(action)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Reset the robot (``robot.reset(seed)``), run the reset phase, return ``(observation, info)``.

        ``info["reset_steps"]``: actions sent during the reset phase.
        """
        super().reset(seed=seed)
        self._obs = self.robot.reset(seed=seed)
        self._t_last = time.perf_counter()
        if self.teleop is not None:
            self.teleop.reset()
        if self.events is not None and hasattr(self.events, "start_episode"):
            self.events.start_episode()
        n = self._reset_phase()
        obs = self._read()
        self._step = 0
        if self._driver is not None:
            self._driver.reset()
        if hasattr(self.reward_source, "reset"):
            self.reward_source.reset()
        if self.teleop is not None and self.reset_mode == "teleop":
            self.teleop.reset()
        return obs, {"reset_steps": n, IS_INTERVENTION: False}

    def _reset_phase(self) -> int:
        if self.reset_mode == "home":
            start = {k: float(self._obs[k]) for k in self.action_keys}
            goal = {**start, **self.home}
            for i in range(1, self.reset_steps + 1):
                f = i / self.reset_steps
                self._send({k: start[k] + f * (goal[k] - start[k]) for k in self.action_keys})
            self._obs = self.robot.get_observation()
            return self.reset_steps
        if self.reset_mode == "teleop":
            n = 0
            steps = int(round(self.reset_time_s * self.fps))
            log.info("reset: the teleoperator drives for %.1f s", self.reset_time_s)
            t_end = time.perf_counter() + self.reset_time_s
            while (n < steps if not self.real_time else time.perf_counter() < t_end):
                if self.events is not None and getattr(self.events, "exit_early", False):
                    self.events.exit_early = False
                    break
                self._send(self.teleop.get_action(self._obs))
                self._obs = self.robot.get_observation()
                n += 1
            return n
        if self.reset_mode == "scripted" and self.reset_script is not None:
            self.reset_script(self)
            self._obs = self.robot.get_observation()
        return 0

    def step(self, action: Any):
        """Send one action (or the teleoperator's during a takeover) and return ``(observation, reward, terminated,
        truncated, info)``.

        ``info``: ``is_intervention`` (bool), ``takeover_started`` (bool: the teleoperator took over at this step),
        ``teleop_action`` (float32 in this action space, during a takeover),
        ``is_success`` (bool, from the reward source), ``sim_success`` (bool, simulated robots only: the
        simulator's own success, whatever the reward source), ``action_sent`` (``{action key: value}`` after the
        robot's clamping), and for ``"ee"`` on a joint-space robot ``ik_error_m``.

        Raises:
            ValueError: wrong action shape.
            RobotError: a non-finite action (entries named; nothing is sent) or a robot fault.
        """
        a = self._check_action(action)
        self._pending = self._to_robot(a)
        intervention = started = False
        chosen = self._pending
        if self._driver is not None:
            before = self._driver.takeovers
            chosen = self._driver(self._obs)
            intervention = bool(self._driver.intervention)
            started = self._driver.takeovers > before
            if intervention:
                chosen = self._bounded(chosen)
        info: dict[str, Any] = {IS_INTERVENTION: intervention, TAKEOVER_STARTED: started}
        if intervention:
            info[TELEOP_ACTION] = self._to_env(chosen)
        if self.action_mode == "ee" and not self.ee_native:
            info["ik_error_m"] = float(self._last_ik_error)
        info["action_sent"] = self._send(chosen)
        obs = self._read()
        self._step += 1
        reward, success = self.reward_source(self, obs)
        info["is_success"] = bool(success)
        terminated = bool(success and self.terminate_on_success)
        truncated = self._step >= self.max_episode_steps
        if self.is_sim:
            # the simulator's own verdict: reported whatever the reward source (e.g. to check a reward classifier's),
            # and it ends the episode when the simulator ends it
            sim_success = bool(np.asarray(self.robot.transition.get("next.success", [False])).reshape(-1)[0])
            info[SIM_SUCCESS] = sim_success
            if self.robot.episode_done:
                terminated = terminated or sim_success
                truncated = truncated or not terminated
        return obs, float(reward), terminated, truncated, info

    def render(self) -> np.ndarray | None:
        """The first camera's last frame (uint8 (H, W, 3)), or None without cameras."""
        if not self.camera_keys or not self._obs:
            return None
        return np.asarray(self._obs[self.camera_keys[0]], np.uint8)

    def close(self) -> None:
        """Stop key readers (the reward's and ``events``) and disconnect the robot and the teleoperator if this env
        connected them."""
        if hasattr(self.reward_source, "stop"):
            self.reward_source.stop()
        if hasattr(self.events, "stop"):
            self.events.stop()
        if self._owns_teleop and self.teleop.is_connected:
            self.teleop.disconnect()
        if self._owns_connection and self.robot.is_connected:
            self.robot.disconnect()


def make_robot_env(robot: Any, max_episode_steps: int = 300, kinematics: Any = None, teleop: Any = None,
                   trigger: Any = None, reward: Any = None, events: Any = None, **kwargs: Any) -> RobotEnv:
    """Build a :class:`RobotEnv` from Hydra configs (``conf/env/robot_so101_sim.yaml``: an ``EnvSpec`` whose ``make``
    is this function with ``_partial_: true`` and ``_recursive_: false``, so that every env gets its own robot).

    Args:
        robot: a robot config (``{_target_: ...}``) or a :class:`~robolearn.robots.robot.Robot`.
        max_episode_steps: the env's time limit (``EnvSpec`` passes its own).
        kinematics, trigger, reward: configs (instantiated here) or objects, or None.
        events: a config (instantiated and started here, e.g. ``{_target_: robolearn.record.events.KeyboardEvents}``:
            Tab takes over and hands back) or an object (the caller starts it); either way the env's ``close``
            stops it.
        teleop: a teleoperator config or object; a ``ScriptedTeleop`` config gets the robot (``teleop=scripted``).
        kwargs: the other :class:`RobotEnv` arguments (plain values).
    Returns:
        The env, its robot connected.
    Raises:
        ValueError / TypeError: from :class:`RobotEnv` (bad modes, keys or bounds).
    """
    from hydra.utils import instantiate
    from omegaconf import DictConfig, OmegaConf

    def build(node: Any, **extra: Any) -> Any:
        if isinstance(node, (DictConfig, dict)) and "_target_" in node:
            return instantiate(node, **extra)
        return node

    robot = build(robot)
    if isinstance(teleop, (DictConfig, dict)) and str(teleop.get("_target_", "")).endswith("ScriptedTeleop"):
        teleop = build(teleop, robot=robot)
    else:
        teleop = build(teleop)
    if isinstance(events, (DictConfig, dict)) and "_target_" in events:
        events = build(events).start()
    kwargs = {k: OmegaConf.to_container(v, resolve=True) if isinstance(v, DictConfig) or OmegaConf.is_list(v) else v
              for k, v in kwargs.items()}
    return RobotEnv(robot, max_episode_steps=int(max_episode_steps), kinematics=build(kinematics), teleop=teleop,
                    trigger=build(trigger), reward=build(reward), events=events, **kwargs)


GYM_ID = "robolearn/RobotEnv-v0"
if GYM_ID not in gym.registry:
    # gymnasium.make("robolearn.rl.robot_env:robolearn/RobotEnv-v0", robot={...}, kinematics={...}, ...) builds a
    # RobotEnv through make_robot_env (the "module:Id" form imports this module first), for code that only knows
    # gymnasium ids (the online-RL DataModule, the HIL-SERL actor's dataset.env_id / dataset.env_kwargs).
    gym.register(id=GYM_ID, entry_point="robolearn.rl.robot_env:make_robot_env")
