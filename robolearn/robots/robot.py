"""The ``Robot`` interface shared by real arms, simulated robots, ``record.py`` and deployment in ``eval.py``.

It follows lerobot's robot API so that code and datasets move between the two projects:

- ``observation_features``: ``{name: float}`` for scalar readings (joint positions as ``"<motor>.pos"``) and
  ``{camera: (height, width, 3)}`` for cameras (uint8 RGB);
- ``action_features``: ``{name: float}`` (``"<motor>.pos"`` targets, or end-effector deltas for simulated robots);
- ``connect()`` / ``disconnect()`` / ``get_observation()`` / ``send_action()``.

Units are the robot's own: SO arms report body joints in degrees (or −100..100 with ``use_degrees=False``) and
the gripper in 0..100, as lerobot does. ``robolearn.robots.features`` turns these dictionaries into
LeRobotDataset features (``observation.state``, ``observation.images.<cam>``, ``action``) and back.
"""

from __future__ import annotations

import abc
import math
from typing import Any, Iterable, Mapping

from robolearn.robots.device import Device


class RobotError(RuntimeError):
    """A robot could not do what was asked (not connected, bad action key, non-finite command, hardware fault)."""


def require_finite_action(robot_name: str, action: Mapping[str, Any], keys: Iterable[str]) -> dict[str, float]:
    """``{key: float(action[key])}`` for ``keys``, refusing the whole command if any value is NaN or infinite.

    Called by every ``send_action`` before clamping or writing anything, so a non-finite command never reaches a
    motor: the robot keeps its last goal (holds still) and the caller gets the error. Clamping cannot do this
    job: ``min(hi, max(lo, nan))`` is ``lo``, a full-limit step.

    Raises:
        RobotError: naming the non-finite keys and their values (and any value that is not a number).
    """
    values: dict[str, float] = {}
    bad: list[str] = []
    for key in keys:
        try:
            value = float(action[key])
        except (TypeError, ValueError):
            bad.append(f"{key}={str(action[key])[:40]!r} (not a number)")
            continue
        if not math.isfinite(value):
            bad.append(f"{key}={value}")
        values[key] = value
    if bad:
        raise RobotError(f"{robot_name}: refused a non-finite command, nothing was sent (the robot holds its last "
                         f"goal): {', '.join(bad)}")
    return values


class Robot(Device):
    """Abstract robot. Subclasses set ``name`` (written as ``robot_type`` into ``meta/info.json``); ``connect``,
    ``disconnect``, ``is_connected`` and the context manager come from :class:`Device`.

    Args:
        id: a name for this physical unit; calibration files are keyed by it.
    """

    name: str = "robot"

    @property
    @abc.abstractmethod
    def observation_features(self) -> dict[str, Any]:
        """``{key: float}`` for scalars and ``{camera: (H, W, 3)}`` for cameras, in a fixed order."""

    @property
    @abc.abstractmethod
    def action_features(self) -> dict[str, Any]:
        """``{key: float}`` in a fixed order: the order of the dataset's ``action`` vector."""

    @abc.abstractmethod
    def get_observation(self) -> dict[str, Any]:
        """Read every key of ``observation_features``: floats, and ``uint8`` ``(H, W, 3)`` arrays for cameras."""

    @abc.abstractmethod
    def send_action(self, action: dict[str, Any]) -> dict[str, Any]:
        """Command the robot. Returns the action actually sent (after clamping such as ``max_relative_target``).

        Implementations call :func:`require_finite_action` before clamping or sending anything.

        Raises:
            RobotError: when a key of ``action_features`` is missing, or a value is NaN/infinite (nothing is sent).
        """

    def reset(self, seed: int | None = None) -> dict[str, Any]:
        """Bring the robot to the start of an episode and return the first observation.

        Real robots are reset by a person during ``reset_time_s``; they just return ``get_observation()``.
        Simulated robots reset their environment (with ``seed``).
        """
        return self.get_observation()
