"""The ``Teleoperator`` interface: leader arms, keyboard, gamepad and scripted experts produce actions
in the ``action_features`` of the robot they drive (lerobot's teleoperator API)."""

from __future__ import annotations

import abc
from typing import Any

from robolearn.robots.device import Device


class Teleoperator(Device):
    """Abstract action source for ``record.py`` (and human interventions in RL). ``connect``, ``disconnect``,
    ``is_connected`` and the context manager come from :class:`~robolearn.robots.device.Device`, as for robots.

    Args:
        id: a name for this physical unit; calibration files are keyed by it.
    """

    name: str = "teleoperator"

    @property
    @abc.abstractmethod
    def action_features(self) -> dict[str, Any]:
        """``{key: float}``: must equal the driven robot's ``action_features`` keys."""

    @abc.abstractmethod
    def get_action(self, observation: dict[str, Any] | None = None) -> dict[str, Any]:
        """The next action. Scripted experts read ``observation`` (the robot's latest); devices ignore it."""

    def reset(self) -> None:
        """Called at the start of every episode (scripted experts restart their plan)."""
