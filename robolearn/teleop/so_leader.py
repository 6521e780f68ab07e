"""SO-100 / SO-101 leader arm: a passive arm whose joint positions are the follower's actions
(lerobot's ``so100_leader`` / ``so101_leader``; calibration files in ``teleoperators/so_leader/<id>.json``)."""

from __future__ import annotations

import atexit
from pathlib import Path
from typing import Any, Callable

from robolearn.robots.motors.so_arm import SOArmBus
from robolearn.teleop.teleoperator import Teleoperator

LEADER_TYPES = ("so100_leader", "so101_leader")


class SOLeader(Teleoperator):
    """Leader arm read with torque off.

    Args:
        port: serial port of the leader's controller board.
        id: name of this arm; its calibration is ``<calibration_dir>/<id>.json``.
        teleop_type: ``"so101_leader"`` or ``"so100_leader"``.
        use_degrees: body joints in degrees (must match the follower's setting), else −100..100; gripper 0..100.
        calibration_dir: folder with ``<id>.json`` (default ``$HF_LEROBOT_CALIBRATION/teleoperators/so_leader``).
        input_fn, print_fn: user interaction for calibration.
        bus_kwargs: ``baudrate``, ``retries``, ``packet_timeout_ms`` of the Feetech bus.
    """

    name = "so101_leader"

    def __init__(self, port: str, id: str | None = None, teleop_type: str = "so101_leader", use_degrees: bool = True,
                 calibration_dir: str | Path | None = None, input_fn: Callable[[str], Any] | None = None,
                 print_fn: Callable[..., Any] | None = None, **bus_kwargs: Any) -> None:
        super().__init__(id)
        if teleop_type not in LEADER_TYPES:
            raise ValueError(f"teleop_type must be one of {LEADER_TYPES}, got {teleop_type!r}")
        self.name = teleop_type
        self.use_degrees = bool(use_degrees)
        self.arm = SOArmBus(port, id, "teleoperators", "so_leader", calibration_dir, use_degrees, input_fn, print_fn, **bus_kwargs)
        self.bus = self.arm.bus
        self._connected = False

    @property
    def action_features(self) -> dict[str, Any]:
        """``{"<motor>.pos": float}``: the follower's action keys."""
        return {f"{m}.pos": float for m in self.bus.motors}

    @property
    def is_connected(self) -> bool:
        return self._connected

    def connect(self, calibrate: bool = True) -> None:
        """Open the bus, check/apply calibration, switch torque off and set position mode.

        Raises:
            MotorBusError: naming the port (bad port, motors not answering).
        """
        if self._connected:
            raise RuntimeError(f"{self.name} {self.id!r} on {self.bus.port} is already connected")
        self.arm.connect(calibrate=calibrate)
        self._connected = True
        atexit.register(self.disconnect)
        try:
            self.configure()
        except BaseException:
            self.disconnect()
            raise

    def configure(self) -> None:
        """Torque off (the arm is moved by hand), fast responses, position mode."""
        bus = self.bus
        bus.disable_torque()
        for motor in bus.motors:
            bus.write("Return_Delay_Time", motor, 0)
            bus.write("Operating_Mode", motor, 0)

    def calibrate(self) -> None:
        """Interactive calibration, saved to the calibration file and written to the motors."""
        self.arm.calibrate()

    def get_action(self, observation: dict[str, Any] | None = None) -> dict[str, float]:
        """The leader's joint positions ``{"<motor>.pos": float}`` (one sync read); ``observation`` is ignored.

        Raises:
            RuntimeError: not connected. CalibrationError: no calibration. MotorBusError: naming port and motor.
        """
        if not self._connected:
            raise RuntimeError(f"{self.name} {self.id!r} on {self.bus.port} is not connected; call connect() first")
        self.arm.require_calibration()
        return {f"{m}.pos": float(v) for m, v in self.bus.sync_read("Present_Position").items()}

    def disconnect(self) -> None:
        """Close the bus (torque is already off). Safe to call twice."""
        atexit.unregister(self.disconnect)
        self._connected = False
        self.bus.disconnect(disable_torque=True)

    def __repr__(self) -> str:
        return f"SOLeader(type={self.name!r}, id={self.id!r}, port={self.bus.port!r})"
