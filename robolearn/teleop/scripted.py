"""``teleop=scripted``: a simulated robot's scripted expert as the demonstrator of ``record.py``.

The expert reads the privileged simulator state of the robot it drives (object poses, joint angles) and returns
the action a demonstrator would take, in the robot's action space: for the SO-101 sim the
``lerobot_env_so101`` pick-and-place controller (:meth:`robolearn.envs.so101.SO101PickPlaceSim.expert_action`), for
gym-aloha the experts of :mod:`robolearn.envs.aloha_scripted` (configured on the robot).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from robolearn.robots.robot import RobotError
from robolearn.teleop.teleoperator import Teleoperator


class ScriptedTeleop(Teleoperator):
    """Actions from ``robot.expert_action()``, as ``{name: float}`` in ``robot.action_features`` order.

    Args:
        robot: a :class:`~robolearn.robots.sim.SimRobot` (``record.py`` passes the configured robot).
        id: unused label.

    Raises:
        TypeError: ``robot`` has no ``expert_action`` (a real arm: use a leader arm or the keyboard).
    """

    name = "scripted"

    def __init__(self, robot: Any, id: str | None = None) -> None:
        super().__init__(id)
        if not callable(getattr(robot, "expert_action", None)):
            raise TypeError(f"teleop=scripted needs a simulated robot with a scripted expert; "
                            f"{type(robot).__name__} has no expert_action()")
        self.robot = robot
        self._connected = False

    @property
    def action_features(self) -> dict[str, Any]:
        return dict(self.robot.action_features)

    @property
    def is_connected(self) -> bool:
        return self._connected

    def connect(self, calibrate: bool = True) -> None:
        self._connected = True

    def get_action(self, observation: dict[str, Any] | None = None) -> dict[str, float]:
        """The expert's next action for the robot's current state (advances the expert's plan once).

        Raises:
            RobotError: the robot's simulator has no expert, or the expert returned a wrong-sized vector.
        """
        vec = np.asarray(self.robot.expert_action(), dtype=np.float32).reshape(-1)
        names = list(self.robot.action_features)
        if vec.shape[0] != len(names):
            raise RobotError(f"scripted expert returned {vec.shape[0]} values, the robot expects {len(names)}: {names}")
        return {n: float(v) for n, v in zip(names, vec)}

    def disconnect(self) -> None:
        self._connected = False
