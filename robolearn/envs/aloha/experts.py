"""Scripted bimanual experts for gym-aloha transfer-cube and insertion, planned in end-effector space.

Following the ACT paper (Zhao et al. 2023, "Learning Fine-Grained Bimanual Manipulation with Low-Cost
Hardware", Sec. 4 and its simulated-task appendix), each expert plans, at reset, end-effector waypoints
for both grippers relative to the object poses and interpolates them linearly in time. Unlike ACT (which
ran the plan in a mocap end-effector env and replayed the joint trajectory), the plan is converted here
to joint targets directly by damped-least-squares IK (:mod:`robolearn.envs.aloha.ik`) on the env's own
MuJoCo model, warm-started step to step, so the 14-d action is gym-aloha's native one:
``[left 6 joints (rad), left gripper (0 closed .. 1 open), right 6 joints (rad), right gripper]``.

The transfer-cube plan is open loop (planned once from the cube pose at reset). The insertion expert adds
one closed-loop correction: grasps slip by 1-2 cm while lifting, more than the 0.8 cm peg/socket
clearance, so at :data:`INSERT_ALIGN_STEP` it measures the held peg and socket and re-aims the right arm
(:func:`insertion_stage`). Timings are ACT's compressed by about 0.6 so that both tasks succeed (steps
~180 and ~237) inside the 300-step limit gym-aloha registers (``max_episode_steps=300``); the joint plan
then holds still up to :data:`PLAN_STEPS` = 400 (the ACT episode length).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from robolearn.envs.aloha.ik import ArmIK, SIDES
from robolearn.envs.aloha.plan import Waypoint, gripper_quat, interpolate, quat_to_mat
from robolearn.envs.expert import ScriptedExpert

PLAN_STEPS = 400
"""Length of the joint plan in env steps (50 fps); ``act`` holds the last action beyond it."""

OPEN, CLOSED = 1.0, 0.0
"""gym-aloha normalized gripper commands."""

CUBE_HALF = 0.02
"""Half side of the transfer-cube ``red_box``, metres."""

PEG_HALF = np.array([0.06, 0.01, 0.01])
"""Half sizes of the insertion ``red_peg`` box, metres."""

INSERT_ALIGN_STEP = 180
"""Insertion: env step at which both objects are held at the meeting point and the expert re-aims the peg."""

PRE_INSERT_GAP = 0.1
"""Insertion: peg centre x, relative to where its end touches the pin, while waiting to insert (m)."""

PEG_PITCH_DEG = 80.0
"""Insertion: right gripper pitch below horizontal when picking the 2 cm tall peg, degrees."""

PEG_GRASP_HEIGHT = 0.016
"""Insertion: grasp point height above the peg centre when picking it, metres (fingertips ~2 mm above the
table)."""

LIFTED_Z = 0.1
"""Insertion: the re-aim at :data:`INSERT_ALIGN_STEP` happens only if peg and socket are above this height
(m), i.e. both grasps held; otherwise the original plan runs on (and the episode fails)."""

ALIGN_GAP = 0.04
"""Insertion: peg centre x, relative to touching the pin, once aligned with the socket axis (m)."""

INSERT_DEPTH_EXTRA = 0.01
"""Insertion: how far past the touching position the peg is pushed, metres."""

SOCKET_REST_Z = 0.022
"""Height of the socket body origin when it rests on the table, metres (bottom plate 0.022 m below it)."""


def _pitched_down(toward_x: float, pitch_deg: float, closing_y: float) -> np.ndarray:
    """Gripper quaternion pointing along world ``toward_x`` (+1/-1) and ``pitch_deg`` below horizontal,
    fingers sliding along world ``closing_y`` (+1/-1)."""
    pitch = np.deg2rad(pitch_deg)
    return gripper_quat([toward_x * np.cos(pitch), 0.0, -np.sin(pitch)], [0.0, closing_y, 0.0])


def plan_transfer_cube(
    cube_xy: np.ndarray, left_start: tuple[np.ndarray, np.ndarray], right_start: tuple[np.ndarray, np.ndarray]
) -> dict[str, list[Waypoint]]:
    """Waypoints for "transfer cube": the right arm picks the cube and lifts it to a meeting point above
    the table centre; the left arm grasps it from the -x side with vertical fingers; the right arm lets go.

    Args:
        cube_xy: (2,) cube centre on the table, world frame, metres (the cube rests at z = 0.02 m).
        left_start: (position (3,), quat (4,)) of the left grasp point / gripper at reset.
        right_start: same for the right arm.

    Returns:
        ``{"left": [...], "right": [...]}`` waypoint lists (steps at 50 fps).
    """
    cube = np.array([cube_xy[0], cube_xy[1], CUBE_HALF])
    pick_quat = _pitched_down(-1.0, 60.0, -1.0)
    meet = np.array([0.0, 0.5, 0.25])  # cube centre while handed over
    left_quat = gripper_quat([1.0, 0.0, 0.0], [0.0, 0.0, 1.0])  # fingers pinch the cube's top and bottom
    left_grasp = meet + np.array([-0.005, 0.0, 0.0])  # left grasp point just inside the cube's -x half
    right = [
        Waypoint(0, right_start[0], right_start[1], CLOSED),
        Waypoint(60, cube + [0.0, 0.0, 0.08], pick_quat, OPEN),
        Waypoint(90, cube + [0.0, 0.0, 0.003], pick_quat, OPEN),
        Waypoint(110, cube + [0.0, 0.0, 0.003], pick_quat, CLOSED),
        Waypoint(150, meet, pick_quat, CLOSED),
        Waypoint(195, meet, pick_quat, CLOSED),
        Waypoint(210, meet, pick_quat, OPEN),
        Waypoint(240, meet + [0.1, 0.0, 0.05], pick_quat, OPEN),
    ]
    left = [
        Waypoint(0, left_start[0], left_start[1], CLOSED),
        Waypoint(120, meet + [-0.15, 0.0, 0.0], left_quat, OPEN),
        Waypoint(165, left_grasp, left_quat, OPEN),
        Waypoint(185, left_grasp, left_quat, CLOSED),
        Waypoint(240, left_grasp + [-0.05, 0.0, 0.0], left_quat, CLOSED),
    ]
    return {"left": left, "right": right}


def plan_insertion(
    peg_xy: np.ndarray,
    socket_xy: np.ndarray,
    left_start: tuple[np.ndarray, np.ndarray],
    right_start: tuple[np.ndarray, np.ndarray],
) -> dict[str, list[Waypoint]]:
    """Waypoints for "insertion": the right arm picks the peg near its +x end, the left arm the socket near
    its -x end; both lift them to a meeting height with their long axes on one line along x, then the peg
    slides into the socket until it touches the pin (that last stage is :func:`insertion_stage`, planned
    at :data:`INSERT_ALIGN_STEP` from measured poses; this function plans up to that step).

    Args:
        peg_xy: (2,) peg centre on the table (it rests at z = 0.01 m), world frame, metres.
        socket_xy: (2,) socket centre on the table (its origin rests at z = 0.022 m), metres.
        left_start, right_start: (position (3,), quat (4,)) of each grasp point / gripper at reset.

    Returns:
        ``{"left": [...], "right": [...]}`` waypoint lists (steps at 50 fps).
    """
    grip_along = 0.035  # grasp this far from each object's centre, away from the mating ends
    peg = np.array([peg_xy[0] + grip_along, peg_xy[1], PEG_HALF[2]])
    socket = np.array([socket_xy[0] - grip_along, socket_xy[1], SOCKET_REST_Z])
    right_quat = _pitched_down(-1.0, PEG_PITCH_DEG, -1.0)
    left_quat = _pitched_down(1.0, 60.0, 1.0)
    peg_grasp = peg + [0.0, 0.0, PEG_GRASP_HEIGHT]
    socket_grasp = socket + [0.0, 0.0, 0.006]
    meet_z = 0.2  # height of both objects' centres at the meeting
    # If the grasps did not slip, aligning the grasp points with these offsets would align the peg's and
    # the socket's axes; insertion_stage corrects for the slip actually measured.
    peg_off = peg_grasp - np.array([peg_xy[0], peg_xy[1], PEG_HALF[2]])
    socket_off = socket_grasp - np.array([socket_xy[0], socket_xy[1], SOCKET_REST_Z])

    def right_at(peg_centre_x: float) -> np.ndarray:
        return np.array([peg_centre_x, 0.5, meet_z]) + peg_off

    def left_at(socket_centre_x: float) -> np.ndarray:
        return np.array([socket_centre_x, 0.5, meet_z]) + socket_off

    socket_meet_x = -0.1
    right = [
        Waypoint(0, right_start[0], right_start[1], CLOSED),
        Waypoint(60, peg_grasp + [0.0, 0.0, 0.08], right_quat, OPEN),
        Waypoint(90, peg_grasp, right_quat, OPEN),
        Waypoint(110, peg_grasp, right_quat, CLOSED),
        Waypoint(160, right_at(socket_meet_x + 0.04 + PEG_HALF[0] + PRE_INSERT_GAP), right_quat, CLOSED),
        Waypoint(INSERT_ALIGN_STEP, right_at(socket_meet_x + 0.04 + PEG_HALF[0] + PRE_INSERT_GAP), right_quat, CLOSED),
    ]
    left = [
        Waypoint(0, left_start[0], left_start[1], CLOSED),
        Waypoint(60, socket_grasp + [0.0, 0.0, 0.08], left_quat, OPEN),
        Waypoint(90, socket_grasp, left_quat, OPEN),
        Waypoint(110, socket_grasp, left_quat, CLOSED),
        Waypoint(160, left_at(socket_meet_x), left_quat, CLOSED),
    ]
    return {"left": left, "right": right}


def insertion_stage(right_now: Waypoint, peg: np.ndarray, socket: np.ndarray) -> list[Waypoint]:
    """Right-arm waypoints after :data:`INSERT_ALIGN_STEP`, corrected with the measured object poses.

    Grasps slip by a centimetre or two while lifting (more than the 0.8 cm clearance between peg and
    socket), so at :data:`INSERT_ALIGN_STEP` the expert measures where the held peg and socket really are
    and shifts the right arm's commanded grasp point by the peg's offset from the socket axis: first to
    :data:`ALIGN_GAP` in front of touching the pin (peg end 2 cm outside the socket), then along -x until
    the peg's end is :data:`INSERT_DEPTH_EXTRA` past the pin's face (the pin's +x face is 0.04 m from
    the socket centre).

    Args:
        right_now: the right arm's planned waypoint at :data:`INSERT_ALIGN_STEP` (commanded, not measured).
        peg: (3,) measured peg centre, world frame, metres.
        socket: (3,) measured socket centre, metres.

    Returns:
        Waypoints at ``INSERT_ALIGN_STEP``, ``+15`` (aligned, in front of the socket), ``+65`` (inserted).
    """
    peg = np.asarray(peg, dtype=float)
    socket = np.asarray(socket, dtype=float)
    touch = socket + np.array([0.04 + PEG_HALF[0], 0.0, 0.0])  # peg centre when its end meets the pin
    pre = right_now.position + (touch + [ALIGN_GAP, 0.0, 0.0] - peg)
    end = right_now.position + (touch - [INSERT_DEPTH_EXTRA, 0.0, 0.0] - peg)
    start = INSERT_ALIGN_STEP
    return [
        Waypoint(start, right_now.position, right_now.quat, CLOSED),
        Waypoint(start + 15, pre, right_now.quat, CLOSED),
        Waypoint(start + 65, end, right_now.quat, CLOSED),
    ]


class _AlohaExpert(ScriptedExpert):
    """Shared machinery: read object poses at reset, plan waypoints, solve IK for every step, replay."""

    task_name = ""

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        aloha = env.unwrapped
        if getattr(aloha, "task", None) != self.task_name or not hasattr(aloha, "_env"):
            raise ValueError(
                f"{type(self).__name__} needs a gym_aloha AlohaEnv with task={self.task_name!r}, got "
                f"{type(aloha).__name__} task={getattr(aloha, 'task', None)!r}"
            )
        self.physics = aloha._env.physics
        model = self.physics.model.ptr
        self.ik = {side: ArmIK(model, side) for side in SIDES}
        self.qpos_slices = {"left": slice(0, 6), "right": slice(8, 14)}
        self.waypoints: dict[str, list[Waypoint]] = {}
        self.joint_plan: np.ndarray | None = None
        self.step = 0

    def _plan(self, starts: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, list[Waypoint]]:
        raise NotImplementedError

    def reset(self) -> None:
        """Plan from the current object poses and the arms' current poses; solve the (PLAN_STEPS, 14)
        joint plan. Call right after ``env.reset``."""
        qpos = self.physics.data.qpos
        starts = {}
        for side in SIDES:
            pos, rot = self.ik[side].forward(qpos[self.qpos_slices[side]])
            starts[side] = (pos, gripper_quat(rot[:, 0], rot[:, 1]))
        self.waypoints = self._plan(starts)
        self.joint_plan = np.zeros((PLAN_STEPS, 14))
        for side in SIDES:
            self._solve(side, 0, qpos[self.qpos_slices[side]].copy())
        self.step = 0

    def _solve(self, side: str, from_step: int, q: np.ndarray) -> None:
        """Fill the joint plan of ``side`` from ``from_step`` on by IK, warm-started at ``q`` (6,)."""
        offset = 0 if side == "left" else 7
        for t in range(from_step, PLAN_STEPS):
            pos, quat, grip = interpolate(self.waypoints[side], t + 1)
            q = self.ik[side].solve(pos, quat_to_mat(quat), q).qpos
            self.joint_plan[t, offset : offset + 6] = q
            self.joint_plan[t, offset + 6] = grip

    def act(self, observation: Any = None) -> np.ndarray:
        """The (14,) float32 joint action for the current step (radians / normalized gripper).

        Raises:
            RuntimeError: called before :meth:`reset`.
        """
        if self.joint_plan is None:
            raise RuntimeError(f"{type(self).__name__}.act called before reset()")
        action = self.joint_plan[min(self.step, PLAN_STEPS - 1)]
        self.step += 1
        return action.astype(np.float32)


class TransferCubeExpert(_AlohaExpert):
    """Scripted expert for ``gym_aloha/AlohaTransferCube-v0`` (see :func:`plan_transfer_cube`).

    Args:
        env: the gym-aloha transfer-cube env (any wrappers).

    Raises:
        ValueError: ``env`` is not a gym-aloha transfer-cube env.
    """

    task_name = "transfer_cube"

    def _plan(self, starts):
        cube = self.physics.named.data.qpos["red_box_joint"][:2]
        return plan_transfer_cube(cube, starts["left"], starts["right"])


class InsertionExpert(_AlohaExpert):
    """Scripted expert for ``gym_aloha/AlohaInsertion-v0`` (see :func:`plan_insertion`).

    Args:
        env: the gym-aloha insertion env (any wrappers).

    Raises:
        ValueError: ``env`` is not a gym-aloha insertion env.
    """

    task_name = "insertion"

    def _plan(self, starts):
        peg = self.physics.named.data.qpos["red_peg_joint"][:2]
        socket = self.physics.named.data.qpos["blue_socket_joint"][:2]
        return plan_insertion(peg, socket, starts["left"], starts["right"])

    def act(self, observation: Any = None) -> np.ndarray:
        """As :meth:`_AlohaExpert.act`; at :data:`INSERT_ALIGN_STEP` it first re-plans the right arm's
        insertion from the measured peg and socket positions (:func:`insertion_stage`), so it must be
        called once per env step, in order."""
        if self.joint_plan is not None and self.step == INSERT_ALIGN_STEP:
            qpos = self.physics.named.data.qpos
            peg, socket = qpos["red_peg_joint"][:3].copy(), qpos["blue_socket_joint"][:3].copy()
            if min(peg[2], socket[2]) > LIFTED_Z:  # both held up; otherwise a grasp failed: keep the plan
                right = self.waypoints["right"]
                now = [w for w in right if w.step <= INSERT_ALIGN_STEP][-1]
                self.waypoints["right"] = [w for w in right if w.step < INSERT_ALIGN_STEP] + insertion_stage(
                    now, peg, socket
                )
                self._solve("right", INSERT_ALIGN_STEP, self.joint_plan[INSERT_ALIGN_STEP - 1, 7:13].copy())
        return super().act(observation)
