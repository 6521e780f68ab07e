"""End-effector waypoint plans for gym-aloha scripted experts (ACT, Zhao et al. 2023, Sec. 4 / App.).

A plan is, per arm, a time-ordered list of :class:`Waypoint` s (grasp point, gripper orientation, gripper
command at an env step). Between two waypoints the grasp point and the normalized gripper command are
interpolated linearly and the orientation by spherical linear interpolation, as in the ACT paper's scripted
policies; after the last waypoint the arm holds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import mujoco
import numpy as np


@dataclass(frozen=True)
class Waypoint:
    """One end-effector key pose.

    Attributes:
        step: env step (50 fps, 0.02 s per step) at which the pose is reached.
        position: (3,) grasp point, world frame, metres.
        quat: (4,) ``gripper_link`` orientation, unit quaternion (w, x, y, z), world frame.
        gripper: normalized gripper command, gym-aloha units: 0 = closed, 1 = open.
    """

    step: int
    position: np.ndarray
    quat: np.ndarray
    gripper: float


def gripper_quat(forward: Sequence[float], closing: Sequence[float]) -> np.ndarray:
    """Quaternion (w, x, y, z) of a ``gripper_link`` whose x axis points along ``forward`` (towards the
    fingertips) and whose y axis (the fingers' sliding axis) is ``closing`` made orthogonal to ``forward``.

    Raises:
        ValueError: a zero vector, or ``closing`` parallel to ``forward``.
    """
    x = np.asarray(forward, dtype=float)
    if np.linalg.norm(x) < 1e-9:
        raise ValueError(f"gripper_quat: forward must be non-zero, got {forward}")
    x = x / np.linalg.norm(x)
    y = np.asarray(closing, dtype=float)
    y = y - x * (x @ y)
    if np.linalg.norm(y) < 1e-9:
        raise ValueError(f"gripper_quat: closing {closing} is parallel to forward {forward}")
    y = y / np.linalg.norm(y)
    rot = np.stack([x, y, np.cross(x, y)], axis=1)
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, rot.reshape(9))
    return quat


def quat_to_mat(quat: np.ndarray) -> np.ndarray:
    """Rotation matrix (3, 3) of a unit quaternion (w, x, y, z)."""
    mat = np.zeros(9)
    mujoco.mju_quat2Mat(mat, np.asarray(quat, dtype=float))
    return mat.reshape(3, 3)


def slerp(q0: np.ndarray, q1: np.ndarray, frac: float) -> np.ndarray:
    """Spherical linear interpolation between unit quaternions (w, x, y, z), ``frac`` in [0, 1], shortest arc."""
    q0 = np.asarray(q0, dtype=float)
    q1 = np.asarray(q1, dtype=float)
    dot = float(q0 @ q1)
    if dot < 0.0:
        q1, dot = -q1, -dot
    if dot > 0.9995:
        out = q0 + frac * (q1 - q0)
        return out / np.linalg.norm(out)
    theta = np.arccos(dot)
    return (np.sin((1 - frac) * theta) * q0 + np.sin(frac * theta) * q1) / np.sin(theta)


def interpolate(waypoints: Sequence[Waypoint], step: int) -> tuple[np.ndarray, np.ndarray, float]:
    """The (position (3,), quat (4,), gripper) commanded at ``step`` by a waypoint list.

    Before the first waypoint it holds the first one, after the last the last one.

    Raises:
        ValueError: empty list, or steps not strictly increasing.
    """
    if not waypoints:
        raise ValueError("interpolate: the waypoint list is empty")
    steps = [w.step for w in waypoints]
    if any(b <= a for a, b in zip(steps, steps[1:])):
        raise ValueError(f"interpolate: waypoint steps must strictly increase, got {steps}")
    if step <= steps[0]:
        w = waypoints[0]
        return np.array(w.position, dtype=float), np.array(w.quat, dtype=float), float(w.gripper)
    for w0, w1 in zip(waypoints, waypoints[1:]):
        if step <= w1.step:
            frac = (step - w0.step) / (w1.step - w0.step)
            pos = (1 - frac) * np.asarray(w0.position) + frac * np.asarray(w1.position)
            grip = (1 - frac) * w0.gripper + frac * w1.gripper
            return pos, slerp(w0.quat, w1.quat, frac), float(grip)
    w = waypoints[-1]
    return np.array(w.position, dtype=float), np.array(w.quat, dtype=float), float(w.gripper)
