"""``Device``: what robots and teleoperators share, lerobot's connect/disconnect life cycle.

A device is opened with ``connect()``, released with ``disconnect()`` (safe to call twice), and usable as a
context manager (``with SOFollower(...) as robot:``), which connects on entry when needed and disconnects on exit
even when the body raised, so that a crash or Ctrl-C leaves real arms with torque disabled.
"""

from __future__ import annotations

import abc
from typing import Any, Self


class Device(abc.ABC):
    """Base of :class:`~robolearn.robots.robot.Robot` and :class:`~robolearn.teleop.teleoperator.Teleoperator`.

    Args:
        id: a name for this physical unit; calibration files are keyed by it.
    """

    def __init__(self, id: str | None = None) -> None:
        self.id = id

    @property
    @abc.abstractmethod
    def is_connected(self) -> bool:
        """Whether ``connect`` succeeded and ``disconnect`` has not been called."""

    @abc.abstractmethod
    def connect(self, calibrate: bool = True) -> None:
        """Open the hardware, simulator or input device (running calibration first when ``calibrate`` and none is
        stored). Raises ``RobotError`` (or ``ConnectionError``) naming the port or device."""

    @abc.abstractmethod
    def disconnect(self) -> None:
        """Release the device (real arms disable torque first). Safe to call twice."""

    def __enter__(self) -> Self:
        if not self.is_connected:
            self.connect()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.is_connected:
            self.disconnect()
