"""A 2-link planar arm reaching task with analytic kinematics and a PD controller baseline.

The classical-control baseline of the robot-learning tutorial's opening section, and a fast CPU task for RL tests:
joint-space dynamics of two revolute joints in the plane, the fingertip must reach a random target.

Kinematics (link lengths ``l1``, ``l2`` in metres, joint angles ``q1``, ``q2`` in radians, ``q2`` relative to link 1):

- forward: ``x = l1 cos q1 + l2 cos(q1 + q2)``, ``y = l1 sin q1 + l2 sin(q1 + q2)``;
- inverse (closed form): ``cos q2 = (x² + y² − l1² − l2²) / (2 l1 l2)``, ``q2 = ±acos(·)`` (``elbow_up`` picks
  the sign), ``q1 = atan2(y, x) − atan2(l2 sin q2, l1 + l2 cos q2)``.

Dynamics, per joint, integrated with semi-implicit Euler at ``1 / fps`` seconds:

- ``control="velocity"``: the action in [−1, 1]² scales ``max_joint_velocity`` (rad/s) and sets ``dq`` directly;
- ``control="torque"``: a damped double integrator ``ddq = max_joint_accel · a − damping · dq`` (rad/s²).

Observation (a dict, the key names gym-pusht and lerobot-env-so101 use): ``agent_pos`` = ``[q1, q2, dq1, dq2]``
(rad, rad/s) and ``environment_state`` = ``[target_x, target_y, tip_x, tip_y]`` (m); with
``obs_type="pixels_agent_pos"`` also ``pixels``, the rendered top view (uint8 ``(render_size, render_size, 3)``), the
camera HIL-SERL's reward classifier looks at. Reward (``reward_type="dense"``): the negative fingertip–target
distance (m) per step, plus 1 at a success; ``reward_type="sparse"``: 1 at a success, else 0 (the reward a binary
success classifier gives). ``info["is_success"]`` when the distance is below ``success_radius``; the episode then
terminates unless ``terminate_on_success=False`` (the arm may then hold the target until the time limit, which
gives a success classifier many positive frames). Targets are sampled uniformly in the reachable annulus, at radius
``[|l1 − l2| + 0.1, l1 + l2 − 0.05]``, any angle.

Rendering (``render()`` and ``pixels``) is plain OpenCV rasterization, no OpenGL: a top view of the workspace
``[−(l1 + l2), l1 + l2]²`` on a light background, the goal as a green disc of radius ``success_radius`` (so "the red
fingertip dot is inside the green disc" is exactly the success condition), the links in blue and the fingertip as a
red dot.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np

from robolearn.envs.expert import ScriptedExpert

ENV_ID = "robolearn/PlanarReach-v0"
OBS_TYPES = ("state", "pixels_agent_pos")
REWARD_TYPES = ("dense", "sparse")


def forward_kinematics(q: np.ndarray, l1: float = 0.5, l2: float = 0.5) -> np.ndarray:
    """Fingertip ``(x, y)`` in metres for joint angles ``q`` (..., 2) in radians; returns (..., 2)."""
    q = np.asarray(q, dtype=np.float64)
    q1, q12 = q[..., 0], q[..., 0] + q[..., 1]
    return np.stack([l1 * np.cos(q1) + l2 * np.cos(q12), l1 * np.sin(q1) + l2 * np.sin(q12)], axis=-1)


def inverse_kinematics(xy: np.ndarray, l1: float = 0.5, l2: float = 0.5, elbow_up: bool = False) -> np.ndarray:
    """Joint angles (rad) putting the fingertip at ``xy`` (m); the elbow-down (``q2 >= 0``) branch by default.

    Raises:
        ValueError: when ``xy`` is outside the reachable annulus ``[|l1 - l2|, l1 + l2]`` (names the point).
    """
    x, y = float(xy[0]), float(xy[1])
    r2 = x * x + y * y
    c2 = (r2 - l1 * l1 - l2 * l2) / (2 * l1 * l2)
    if c2 < -1 - 1e-9 or c2 > 1 + 1e-9:
        raise ValueError(
            f"target ({x:.3f}, {y:.3f}) m at radius {math.sqrt(r2):.3f} m is unreachable for links {l1} and {l2} m "
            f"(reachable radius {abs(l1 - l2):.3f}..{l1 + l2:.3f} m)"
        )
    q2 = math.acos(min(1.0, max(-1.0, c2)))
    if elbow_up:
        q2 = -q2
    q1 = math.atan2(y, x) - math.atan2(l2 * math.sin(q2), l1 + l2 * math.cos(q2))
    return np.array([_wrap(q1), q2])


def _wrap(a: float) -> float:
    return (a + math.pi) % (2 * math.pi) - math.pi


class PlanarReachEnv(gym.Env):
    """2-link planar reaching (see the module docstring for kinematics, dynamics, observation and reward).

    Args:
        l1, l2: link lengths (m).
        fps: control rate (Hz); one ``step`` is ``1 / fps`` seconds.
        control: ``"velocity"`` or ``"torque"``.
        max_joint_velocity: rad/s at action 1 (velocity control) and the speed limit (both modes).
        max_joint_accel: rad/s² at action 1 (torque control).
        damping: 1/s, viscous damping in torque control.
        success_radius: m.
        max_episode_steps: truncation limit.
        render_size: side of the rendered square image in pixels (``render()`` and the ``pixels`` observation).
        obs_type: ``"state"`` (``agent_pos`` + ``environment_state``) or ``"pixels_agent_pos"`` (also ``pixels``).
        reward_type: ``"dense"`` (−distance, +1 at success) or ``"sparse"`` (1 at success, else 0).
        terminate_on_success: end the episode at the first success (False: only the time limit ends it).

    Raises:
        ValueError: an unknown ``control``, ``obs_type`` or ``reward_type`` (lists the valid ones), or
            ``render_size < 8``.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(
        self,
        l1: float = 0.5,
        l2: float = 0.5,
        fps: int = 20,
        control: str = "velocity",
        max_joint_velocity: float = 2.0,
        max_joint_accel: float = 10.0,
        damping: float = 2.0,
        success_radius: float = 0.05,
        max_episode_steps: int = 100,
        render_size: int = 96,
        render_mode: str | None = "rgb_array",
        obs_type: str = "state",
        reward_type: str = "dense",
        terminate_on_success: bool = True,
    ) -> None:
        if control not in ("velocity", "torque"):
            raise ValueError(f"control must be 'velocity' or 'torque', got {control!r}")
        if obs_type not in OBS_TYPES:
            raise ValueError(f"obs_type must be one of {list(OBS_TYPES)}, got {obs_type!r}")
        if reward_type not in REWARD_TYPES:
            raise ValueError(f"reward_type must be one of {list(REWARD_TYPES)}, got {reward_type!r}")
        if int(render_size) < 8:
            raise ValueError(f"render_size must be >= 8 pixels, got {render_size}")
        self.l1, self.l2 = float(l1), float(l2)
        self.dt = 1.0 / float(fps)
        self.fps = int(fps)
        self.control = control
        self.max_joint_velocity = float(max_joint_velocity)
        self.max_joint_accel = float(max_joint_accel)
        self.damping = float(damping)
        self.success_radius = float(success_radius)
        self.max_episode_steps = int(max_episode_steps)
        self.render_size = int(render_size)
        self.render_mode = render_mode
        self.obs_type, self.reward_type = obs_type, reward_type
        self.terminate_on_success = bool(terminate_on_success)
        self.metadata = {**self.metadata, "render_fps": self.fps}
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        spaces = {
            "agent_pos": gym.spaces.Box(-np.inf, np.inf, shape=(4,), dtype=np.float32),
            "environment_state": gym.spaces.Box(-np.inf, np.inf, shape=(4,), dtype=np.float32),
        }
        if obs_type == "pixels_agent_pos":
            s = self.render_size
            spaces["pixels"] = gym.spaces.Box(0, 255, shape=(s, s, 3), dtype=np.uint8)
        self.observation_space = gym.spaces.Dict(spaces)
        self.q = np.zeros(2)
        self.dq = np.zeros(2)
        self.target = np.array([self.l1 + self.l2 - 0.1, 0.0])
        self._t = 0

    # ------------------------------------------------------------------ gym API
    def tip(self) -> np.ndarray:
        return forward_kinematics(self.q, self.l1, self.l2)

    def _obs(self) -> dict[str, np.ndarray]:
        obs = {
            "agent_pos": np.concatenate([self.q, self.dq]).astype(np.float32),
            "environment_state": np.concatenate([self.target, self.tip()]).astype(np.float32),
        }
        if self.obs_type == "pixels_agent_pos":
            obs["pixels"] = self.render()
        return obs

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        rng = self.np_random
        self.q = rng.uniform(-math.pi, math.pi, size=2)
        self.dq = np.zeros(2)
        r = rng.uniform(abs(self.l1 - self.l2) + 0.1, self.l1 + self.l2 - 0.05)
        a = rng.uniform(-math.pi, math.pi)
        self.target = np.array([r * math.cos(a), r * math.sin(a)])
        self._t = 0
        return self._obs(), {"is_success": self._distance() < self.success_radius}

    def _distance(self) -> float:
        return float(np.linalg.norm(self.tip() - self.target))

    def step(self, action):
        a = np.clip(np.asarray(action, dtype=np.float64).reshape(2), -1.0, 1.0)
        if self.control == "velocity":
            self.dq = a * self.max_joint_velocity
        else:
            ddq = self.max_joint_accel * a - self.damping * self.dq
            self.dq = np.clip(self.dq + ddq * self.dt, -self.max_joint_velocity, self.max_joint_velocity)
        self.q = np.array([_wrap(v) for v in self.q + self.dq * self.dt])
        self._t += 1
        dist = self._distance()
        success = dist < self.success_radius
        if self.reward_type == "dense":
            reward = -dist + (1.0 if success else 0.0)
        else:
            reward = 1.0 if success else 0.0
        terminated = success and self.terminate_on_success
        truncated = self._t >= self.max_episode_steps and not terminated
        return self._obs(), float(reward), bool(terminated), bool(truncated), {"is_success": success, "distance": dist}

    def render(self) -> np.ndarray:
        """Top view of the arm, uint8 ``(render_size, render_size, 3)`` RGB (see the module docstring)."""
        import cv2

        s = self.render_size
        frac = 4  # sub-pixel bits of the cv2 drawing calls: coordinates are given in 1/16 px
        scale = (s / 2 - 1) / (self.l1 + self.l2)  # px per metre

        def px(p) -> tuple[int, int]:
            return (int(round((s / 2 + p[0] * scale) * (1 << frac))), int(round((s / 2 - p[1] * scale) * (1 << frac))))

        def radius(r_px: float) -> int:
            return int(round(r_px * (1 << frac)))

        img = np.full((s, s, 3), 245, dtype=np.uint8)
        aa = cv2.LINE_AA
        cv2.circle(img, px(self.target), radius(max(1.0, self.success_radius * scale)), (40, 180, 60), -1, aa, frac)
        elbow = (self.l1 * math.cos(self.q[0]), self.l1 * math.sin(self.q[0]))
        width = max(1, s // 32)
        cv2.line(img, px((0.0, 0.0)), px(elbow), (60, 90, 200), width, aa, frac)
        cv2.line(img, px(elbow), px(self.tip()), (60, 90, 200), width, aa, frac)
        cv2.circle(img, px(self.tip()), radius(max(1.0, s / 48)), (220, 40, 40), -1, aa, frac)
        return img


class PlanarReachPD(ScriptedExpert):
    """PD feedback controller on the inverse-kinematics solution: the classical baseline.

    Joint targets ``q*`` come from :func:`inverse_kinematics` of the target (elbow-down). The command
    ``c = kp · wrap(q* − q) − kd · dq`` is a joint velocity (rad/s) in velocity control and a joint acceleration
    (rad/s²) in torque control, divided by ``max_joint_velocity`` / ``max_joint_accel`` into action units and
    clipped to [−1, 1]. Default gains: ``kp=4, kd=0`` (velocity), ``kp=40, kd=10`` (torque; critically damped
    with the env's damping of 2/s).
    """

    def __init__(self, env: Any, kp: float | None = None, kd: float | None = None) -> None:
        super().__init__(env)
        velocity = env.unwrapped.control == "velocity"
        self.kp = float(kp if kp is not None else (4.0 if velocity else 40.0))
        self.kd = float(kd if kd is not None else (0.0 if velocity else 10.0))
        self._q_star = np.zeros(2)

    def reset(self) -> None:
        u = self.env.unwrapped
        self._q_star = inverse_kinematics(u.target, u.l1, u.l2)

    def act(self, observation: Any) -> np.ndarray:
        u = self.env.unwrapped
        err = np.array([_wrap(v) for v in self._q_star - u.q])
        cmd = self.kp * err - self.kd * u.dq
        limit = u.max_joint_velocity if u.control == "velocity" else u.max_joint_accel
        return np.clip(cmd / limit, -1.0, 1.0).astype(np.float32)


if ENV_ID not in gym.registry:
    gym.register(ENV_ID, entry_point=PlanarReachEnv, max_episode_steps=None)
