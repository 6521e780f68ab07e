"""The scripted expert of SO-101 pick-and-place: lerobot_env_so101's ``PickPlaceController``, changed where its
demonstrations taught a learned policy the wrong thing.

The phases, their position targets (``lerobot_env_so101.scripted.pick_place.phase_target``), speed limits, jaw
commands, hold lengths and time-outs are the package's (lerobot-env-so101 0.4.0): hover above the block, descend,
close the jaws, lift, traverse above the goal, lower, open, retreat. Three things differ, each found by watching
the main job's policy fail (``docs/main_job.md``) and measured with ``robolearn.envs.so101.rollout_expert``:

- **Free-space phases (hover, traverse, retreat) end within ``free_space_tolerance`` (1.5 cm) of their target**,
  not 4 mm. Hovering above the block and traversing above the goal are followed by careful phases that servo onto
  the block or the goal in x and y anyway; retreating is the last move. With DART noise (7.5 mm per step in free
  space) the package's expert dithered for tens of steps around the hover point until it happened to be within
  4 mm, and a policy trained on those frames hovered the same way until the 300-step limit. The careful phases keep
  the package's 4 mm.
- **The arm keeps descending while the jaws close** (``servo_while_closing``): during the ``CLOSE_STEPS`` the
  expert commands its descent motion (towards ``GRASP_HEIGHT`` above the block centre, at most ``CAREFUL_SPEED``)
  where the package holds still. Jaws closed 2 cm above the grasp height (two careful steps early) then still lift
  the block (10 of 10 seeds, against 2 of 10 holding still; ``tests/test_demos_so101.py::_close_early``), so a
  policy that closes a step or two early still grasps.
- **A missed or dropped block is grasped again.** While lifting, traversing or lowering, a block more than
  ``HOLD_DISTANCE`` (2 cm) from where the closed jaws hold it sends the expert back to hovering above it with the
  jaws open (the package's expert carries on with empty jaws). ``rollout_expert(missed_grasps=...)`` makes some
  first grasps miss so that demonstrations show it: a policy that missed used to wander with closed jaws until the
  time limit.
"""

from __future__ import annotations

import numpy as np
from lerobot_env_so101.policy import DEFAULT_ACTION_SCALE
from lerobot_env_so101.scripted.pick_place import (
    CAREFUL_SPEED,
    CLOSE_STEPS,
    GOAL_TOLERANCE,
    GRASP_HEIGHT,
    OPEN_STEPS,
    PHASE_TIMEOUT_STEPS,
    Phase,
    phase_target,
)
from lerobot_env_so101.scripted.reach_close import GRIPPER_CLOSED, GRIPPER_OPEN

# Distance (metres) at which a free-space phase (hover, traverse, retreat) counts as arrived.
FREE_SPACE_TOLERANCE = 0.015

PHASE_ORDER = (Phase.HOVER, Phase.DESCEND, Phase.CLOSE, Phase.LIFT, Phase.TRAVERSE, Phase.LOWER, Phase.OPEN,
               Phase.RETREAT, Phase.DONE)
HOLD_STEPS = {Phase.CLOSE: CLOSE_STEPS, Phase.OPEN: OPEN_STEPS}
FREE_SPACE_PHASES = (Phase.HOVER, Phase.TRAVERSE, Phase.RETREAT)
CAREFUL_PHASES = (Phase.DESCEND, Phase.LIFT, Phase.LOWER)
JAWS_CLOSED_PHASES = (Phase.CLOSE, Phase.LIFT, Phase.TRAVERSE, Phase.LOWER)
# Phases that move the block in the closed jaws; a block farther than HOLD_DISTANCE (metres) from where the jaws
# hold it is lost, and the expert goes back to hovering above it with the jaws open.
CARRY_PHASES = (Phase.LIFT, Phase.TRAVERSE, Phase.LOWER)
HOLD_DISTANCE = 0.02


class PickPlaceExpert:
    """Hover, descend, close (still descending), lift, traverse, lower, open, retreat; back to hover when the block
    is not in the jaws while carrying it (``regrasps`` counts those in the episode).

    Args:
        action_scale: metres per unit of position action (the env's ``action_scale``; 0.025 at 10 fps).
        free_space_tolerance: metres within which the hover, traverse and retreat phases end (module docstring).
        servo_while_closing: keep moving towards the grasp height while the jaws close (False: hold still, as the
            package's controller).

    Call :meth:`reset` at the start of every episode; :meth:`act` once per control step.
    """

    def __init__(self, action_scale: float = DEFAULT_ACTION_SCALE,
                 free_space_tolerance: float = FREE_SPACE_TOLERANCE, servo_while_closing: bool = True) -> None:
        if action_scale <= 0 or free_space_tolerance <= 0:
            raise ValueError(f"action_scale and free_space_tolerance must be positive, got {action_scale} and "
                             f"{free_space_tolerance}")
        self.action_scale = float(action_scale)
        self.free_space_tolerance = float(free_space_tolerance)
        self.servo_while_closing = bool(servo_while_closing)
        self.reset()

    def reset(self) -> None:
        """Start over at the hover phase; the table height is taken from the block at the next :meth:`act`."""
        self.phase = Phase.HOVER
        self.steps_in_phase = 0
        self.table_height: float | None = None
        self.regrasps = 0

    def settings(self) -> dict[str, object]:
        """What identifies this expert's behaviour (recorded with generated datasets): class, tolerances, flags."""
        return {"class": f"{type(self).__module__}.{type(self).__qualname__}",
                "free_space_tolerance_m": self.free_space_tolerance, "servo_while_closing": self.servo_while_closing,
                "regrasp_hold_distance_m": HOLD_DISTANCE}

    @property
    def done(self) -> bool:
        return self.phase is Phase.DONE

    def act(self, grasp_pos: np.ndarray, block_pos: np.ndarray, goal_pos: np.ndarray) -> np.ndarray:
        """Advance the phase if its goal is met and return the next action.

        Args:
            grasp_pos: the point between the jaws that the position actions move (``ik_point_pos``), metres (3,).
            block_pos: block centre, metres (3,); it must rest on the table at the first call of an episode.
            goal_pos: where the block centre should rest, metres (3,).

        Returns:
            float32 ``[dx, dy, dz, grasp]`` (4,): ``dx..dz`` in action units (``action_scale`` metres), clipped to
            the phase's speed limit; ``grasp`` the absolute jaw target (1 open, 0 closed).
        """
        grasp = np.asarray(grasp_pos, dtype=np.float64)
        block = np.asarray(block_pos, dtype=np.float64)
        goal = np.asarray(goal_pos, dtype=np.float64)
        if self.table_height is None:
            self.table_height = float(block[2])
        if self.phase in CARRY_PHASES and not self.holds_block(grasp, block):
            self.phase, self.steps_in_phase = Phase.HOVER, 0  # the block was missed or dropped: open, grasp again
            self.regrasps += 1
        while not self.done and self._finished(grasp, block, goal):
            self.phase = PHASE_ORDER[PHASE_ORDER.index(self.phase) + 1]
            self.steps_in_phase = 0
        self.steps_in_phase += 1
        jaw = GRIPPER_CLOSED if self.phase in JAWS_CLOSED_PHASES else GRIPPER_OPEN
        return np.asarray([*self._motion(grasp, block, goal), jaw], dtype=np.float32)

    def holds_block(self, grasp_pos: np.ndarray, block_pos: np.ndarray) -> bool:
        """Whether the block centre is within ``HOLD_DISTANCE`` of where the closed jaws hold it (``GRASP_HEIGHT``
        below the grasp point); positions in metres (3,)."""
        held_at = np.asarray(grasp_pos, dtype=np.float64) - np.asarray([0.0, 0.0, GRASP_HEIGHT])
        return bool(np.linalg.norm(np.asarray(block_pos, dtype=np.float64) - held_at) < HOLD_DISTANCE)

    def _finished(self, grasp: np.ndarray, block: np.ndarray, goal: np.ndarray) -> bool:
        if self.phase in HOLD_STEPS:
            return self.steps_in_phase >= HOLD_STEPS[self.phase]
        error = phase_target(self.phase, grasp, block, goal, self.table_height) - grasp
        tolerance = self.free_space_tolerance if self.phase in FREE_SPACE_PHASES else GOAL_TOLERANCE
        return bool(np.linalg.norm(error) < tolerance or self.steps_in_phase >= PHASE_TIMEOUT_STEPS)

    def _motion(self, grasp: np.ndarray, block: np.ndarray, goal: np.ndarray) -> np.ndarray:
        if self.phase is Phase.CLOSE and self.servo_while_closing:
            target, limit = phase_target(Phase.DESCEND, grasp, block, goal, self.table_height), CAREFUL_SPEED
        elif self.done or self.phase in HOLD_STEPS:
            return np.zeros(3)
        else:
            target = phase_target(self.phase, grasp, block, goal, self.table_height)
            limit = CAREFUL_SPEED if self.phase in CAREFUL_PHASES else 1.0
        return np.clip((target - grasp) / self.action_scale, -limit, limit)
