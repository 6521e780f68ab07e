"""A robot that needs no hardware and no simulator: random joint readings and random camera frames.

For dry runs of the code around a robot (async inference clients, deploy loops, benchmarks) where only the
features matter. Observations are seeded, so two robots with the same seed read the same values.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from robolearn.robots.robot import Robot, RobotError, require_finite_action


class RandomRobot(Robot):
    """Joints read as standard-normal floats, cameras as uniform ``uint8`` frames; actions are checked and returned.

    Args:
        state_names: joint (observation) names, each read as one float.
        action_names: action names; :meth:`send_action` requires all of them.
        cameras: ``{camera: (H, W)}`` frame sizes in pixels; frames are ``(H, W, 3)`` uint8.
        seed: seed of the readings.
        id: robot id (as for every :class:`Robot`).
    """

    name = "random"

    def __init__(self, state_names: Sequence[str], action_names: Sequence[str],
                 cameras: dict[str, tuple[int, int]] | None = None, seed: int = 0, id: str | None = "random0") -> None:
        super().__init__(id=id)
        self.state_names, self.action_names = tuple(state_names), tuple(action_names)
        self.cameras = {k: (int(h), int(w)) for k, (h, w) in (cameras or {}).items()}
        self.rng = np.random.default_rng(seed)
        self._connected = False

    @property
    def observation_features(self) -> dict[str, Any]:
        return {**{n: float for n in self.state_names}, **{k: (h, w, 3) for k, (h, w) in self.cameras.items()}}

    @property
    def action_features(self) -> dict[str, Any]:
        return {n: float for n in self.action_names}

    @property
    def is_connected(self) -> bool:
        return self._connected

    def connect(self, calibrate: bool = True) -> None:
        self._connected = True

    def disconnect(self) -> None:
        self._connected = False

    def get_observation(self) -> dict[str, Any]:
        """``{joint: float, camera: uint8 (H, W, 3)}``, new random values at every call."""
        obs: dict[str, Any] = {n: float(v) for n, v in zip(self.state_names, self.rng.normal(size=len(self.state_names)))}
        for k, (h, w) in self.cameras.items():
            obs[k] = self.rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        return obs

    def send_action(self, action: dict[str, Any]) -> dict[str, Any]:
        """Return ``action`` as sent. Raises :class:`RobotError` naming any missing action key or non-finite value."""
        missing = [k for k in self.action_names if k not in action]
        if missing:
            raise RobotError(f"{self.name} robot: missing action keys {missing}; expected {list(self.action_names)}")
        require_finite_action(self.name, action, self.action_names)
        return dict(action)
