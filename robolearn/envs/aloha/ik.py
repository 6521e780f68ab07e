"""Damped-least-squares inverse kinematics for one ViperX 300 S arm of gym-aloha's bimanual scene.

The solver works on a private ``mujoco.MjData`` of the env's own ``MjModel`` (so it never disturbs the
simulation) and uses MuJoCo's ``mj_jac`` for the Jacobian of a point fixed on the arm's
``vx300s_<side>/gripper_link`` body: the *grasp point*, :data:`GRASP_OFFSET` in that body's frame.

Gripper-link frame facts (gym-aloha 0.1.5 ``vx300s_left.xml``/``vx300s_right.xml``, measured from the finger
meshes): +x points from the wrist along the fingers, the two fingers slide along +-y, +z is the third axis.
The finger pads span x = 0.064 ... 0.154 m, so :data:`GRASP_OFFSET` = (0.13, 0, 0) m is 2.4 cm inside
the fingertips.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

GRASP_OFFSET = np.array([0.13, 0.0, 0.0])
"""Grasp point in the ``gripper_link`` frame, metres."""

ARM_JOINTS = ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate")
"""The six revolute joints of one arm, in gym-aloha's action order."""

SIDES = ("left", "right")


@dataclass
class IKResult:
    """Outcome of :meth:`ArmIK.solve`.

    Attributes:
        qpos: (6,) joint angles, radians, in :data:`ARM_JOINTS` order, inside the joint ranges.
        position_error: distance from the reached grasp point to the target, metres.
        rotation_error: angle between reached and target gripper orientation, radians.
        success: both errors are under the solver's tolerances.
    """

    qpos: np.ndarray
    position_error: float
    rotation_error: float
    success: bool


class ArmIK:
    """IK for the grasp point and orientation of one arm's ``gripper_link``.

    Args:
        model: the env's ``mujoco.MjModel`` (``env.unwrapped._env.physics.model.ptr``).
        side: ``"left"`` or ``"right"``.
        grasp_offset: (3,) grasp point in the ``gripper_link`` frame, metres.

    Raises:
        ValueError: unknown ``side``, or the model lacks the ViperX joint/body names.
    """

    def __init__(self, model: mujoco.MjModel, side: str, grasp_offset: np.ndarray = GRASP_OFFSET) -> None:
        if side not in SIDES:
            raise ValueError(f"ArmIK side must be one of {SIDES}, got {side!r}")
        self.model = model
        self.data = mujoco.MjData(model)
        self.side = side
        self.grasp_offset = np.asarray(grasp_offset, dtype=float).reshape(3)
        body = f"vx300s_{side}/gripper_link"
        self.body_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, body)
        if self.body_id < 0:
            raise ValueError(f"MuJoCo model has no body {body!r}; expected gym-aloha's bimanual ViperX scene")
        joint_ids = []
        for name in ARM_JOINTS:
            full = f"vx300s_{side}/{name}"
            jid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, full)
            if jid < 0:
                raise ValueError(f"MuJoCo model has no joint {full!r}; expected gym-aloha's bimanual ViperX scene")
            joint_ids.append(jid)
        self.qpos_adr = np.array([model.jnt_qposadr[j] for j in joint_ids])
        self.dof_adr = np.array([model.jnt_dofadr[j] for j in joint_ids])
        self.lower = np.array([model.jnt_range[j][0] for j in joint_ids])
        self.upper = np.array([model.jnt_range[j][1] for j in joint_ids])

    def forward(self, qpos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Grasp point (3,) in metres and ``gripper_link`` rotation matrix (3, 3) for arm angles ``qpos`` (6,)."""
        self.data.qpos[self.qpos_adr] = qpos
        mujoco.mj_kinematics(self.model, self.data)
        rot = self.data.xmat[self.body_id].reshape(3, 3).copy()
        return self.data.xpos[self.body_id] + rot @ self.grasp_offset, rot

    def solve(
        self,
        position: np.ndarray,
        rotation: np.ndarray,
        q_init: np.ndarray,
        *,
        max_iters: int = 100,
        damping: float = 1e-3,
        position_tol: float = 1e-4,
        rotation_tol: float = 1e-3,
    ) -> IKResult:
        """Joint angles that put the grasp point at ``position`` with gripper orientation ``rotation``.

        Damped least squares (Levenberg-Marquardt step ``J^T (J J^T + damping^2 I)^-1 e``) on the 6-d
        error (position in metres, orientation as a rotation vector in radians, world frame), clipping the
        joints to their ranges after every step.

        Args:
            position: (3,) target grasp point, world frame, metres.
            rotation: (3, 3) target ``gripper_link`` rotation matrix (columns: its x, y, z axes in world).
            q_init: (6,) starting joint angles, radians (warm start, e.g. the previous solution).
            max_iters: iteration cap.
            damping: the damping factor (metres/radians).
            position_tol: success tolerance on the position error, metres.
            rotation_tol: success tolerance on the orientation error, radians.

        Returns:
            :class:`IKResult`; an unreachable target returns the closest configuration with ``success=False``.
        """
        position = np.asarray(position, dtype=float).reshape(3)
        rotation = np.asarray(rotation, dtype=float).reshape(3, 3)
        q = np.clip(np.asarray(q_init, dtype=float).reshape(6), self.lower, self.upper)
        jacp = np.zeros((3, self.model.nv))
        jacr = np.zeros((3, self.model.nv))
        for _ in range(max_iters + 1):
            point, rot = self.forward(q)
            err_p = position - point
            err_r = _rotation_vector(rotation @ rot.T)
            pos_err, rot_err = float(np.linalg.norm(err_p)), float(np.linalg.norm(err_r))
            if pos_err < position_tol and rot_err < rotation_tol:
                return IKResult(q, pos_err, rot_err, True)
            mujoco.mj_comPos(self.model, self.data)
            mujoco.mj_jac(self.model, self.data, jacp, jacr, point, self.body_id)
            jac = np.vstack([jacp[:, self.dof_adr], jacr[:, self.dof_adr]])
            err = np.concatenate([err_p, err_r])
            dq = jac.T @ np.linalg.solve(jac @ jac.T + damping**2 * np.eye(6), err)
            q = np.clip(q + dq, self.lower, self.upper)
        return IKResult(q, pos_err, rot_err, False)


def _rotation_vector(rot: np.ndarray) -> np.ndarray:
    """Axis * angle (3,) of a rotation matrix (3, 3), radians."""
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, rot.reshape(9))
    vel = np.zeros(3)
    mujoco.mju_quat2Vel(vel, quat, 1.0)
    return vel
