"""The ``Teleoperator`` interface: leader arms, keyboard, gamepad and scripted experts produce actions
in the ``action_features`` of the robot they drive (lerobot's teleoperator API)."""

from __future__ import annotations

import abc
from typing import Any


class Teleoperator(abc.ABC):
    """Abstract action source for ``record.py`` (and human interventions in RL).

    Args:
        id: a name for this physical unit; calibration files are keyed by it.
    """

    name: str = "teleoperator"

    def __init__(self, id: str | None = None) -> None:
        self.id = id

    @property
    @abc.abstractmethod
    def action_features(self) -> dict[str, Any]:
        """``{key: float}``: must equal the driven robot's ``action_features`` keys."""

    @property
    @abc.abstractmethod
    def is_connected(self) -> bool:
        """Whether ``connect`` succeeded and ``disconnect`` has not been called."""

    @abc.abstractmethod
    def connect(self, calibrate: bool = True) -> None:
        """Open the device."""

    @abc.abstractmethod
    def get_action(self, observation: dict[str, Any] | None = None) -> dict[str, Any]:
        """The next action. Scripted experts read ``observation`` (the robot's latest); devices ignore it."""

    @abc.abstractmethod
    def disconnect(self) -> None:
        """Release the device. Safe to call twice."""

    def reset(self) -> None:
        """Called at the start of every episode (scripted experts restart their plan)."""

    def __enter__(self) -> "Teleoperator":
        if not self.is_connected:
            self.connect()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.is_connected:
            self.disconnect()
