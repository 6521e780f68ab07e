"""``teleop=keyboard``: end-effector deltas for the simulated SO-101 from keys typed in the terminal.

Keys (read with the terminal reader of :mod:`robolearn.utils.terminal_keys`, so it works over SSH; arrows stay
reserved for the recording events):

- ``w`` / ``s``: +x / −x (away from / towards the robot base), ``a`` / ``d``: +y / −y, ``r`` / ``f``: +z / −z;
- space: toggle the gripper (open ↔ closed).

Each key press moves by ``step`` (in the action's native units, [-1, 1] = ±0.025 m per 10 Hz step for the SO-101
sim) for one control step; holding a key moves continuously through the terminal's key repeat. Presses between
two ``get_action`` calls add up, clipped to [-1, 1].
"""

from __future__ import annotations

from typing import Any

import numpy as np

from robolearn.teleop.teleoperator import Teleoperator

KEYMAP = {"w": (0, 1.0), "s": (0, -1.0), "a": (1, 1.0), "d": (1, -1.0), "r": (2, 1.0), "f": (2, -1.0)}


class KeyboardEndEffectorTeleop(Teleoperator):
    """Actions ``{delta_x, delta_y, delta_z, gripper}`` from keys.

    Args:
        step: delta per key press, in [0, 1] of the action range.
        gripper_open: initial gripper command (1.0 open, 0.0 closed).
        listen: read the terminal on ``connect`` (False: feed keys with :meth:`press`, e.g. in tests).
        action_names: the 4 action keys, in the order ``x, y, z, gripper`` (must match the robot's).
    """

    name = "keyboard"

    def __init__(self, step: float = 1.0, gripper_open: float = 1.0, listen: bool = True,
                 action_names: tuple[str, ...] = ("delta_x", "delta_y", "delta_z", "gripper"),
                 id: str | None = None) -> None:
        super().__init__(id)
        if not 0.0 < step <= 1.0:
            raise ValueError(f"step must be in (0, 1], got {step}")
        if len(action_names) != 4:
            raise ValueError(f"action_names must name x, y, z and gripper, got {list(action_names)}")
        self.step, self.listen = float(step), bool(listen)
        self.action_names = list(action_names)
        self.gripper = float(gripper_open)
        self._delta = np.zeros(3, np.float32)
        self._connected = False

    @property
    def action_features(self) -> dict[str, Any]:
        return {k: float for k in self.action_names}

    @property
    def is_connected(self) -> bool:
        return self._connected

    def press(self, key: str) -> None:
        """Apply one key (``w a s d r f`` or space); other keys are ignored."""
        if key in KEYMAP:
            axis, sign = KEYMAP[key]
            self._delta[axis] = np.clip(self._delta[axis] + sign * self.step, -1.0, 1.0)
        elif key == " ":
            self.gripper = 0.0 if self.gripper > 0.5 else 1.0

    def connect(self, calibrate: bool = True) -> None:
        if self.listen:
            from robolearn.utils.terminal_keys import shared_reader

            reader = shared_reader()
            reader.subscribe(self.press)
            reader.start()
        self._connected = True

    def get_action(self, observation: dict[str, Any] | None = None) -> dict[str, float]:
        """The deltas of the keys pressed since the last call (then zeroed) and the gripper state."""
        d, self._delta = self._delta, np.zeros(3, np.float32)
        return dict(zip(self.action_names, [float(d[0]), float(d[1]), float(d[2]), self.gripper]))

    def disconnect(self) -> None:
        if self.listen and self._connected:
            from robolearn.utils.terminal_keys import shared_reader

            shared_reader().unsubscribe(self.press)
        self._connected = False
