"""SO-100 / SO-101 follower arm (6 Feetech STS3215 servos + cameras), lerobot's ``so100_follower`` /
``so101_follower``.

Observations and actions are ``{"<motor>.pos": float}`` with body joints in degrees (``use_degrees=True``,
lerobot's default since its ``use_degrees`` switch) or −100..100, and the gripper in 0..100; cameras add
``{key: uint8 (H, W, 3)}``. Calibration files are shared with lerobot (``robots/so_follower/<id>.json``).
"""

from __future__ import annotations

import atexit
import logging
from pathlib import Path
from typing import Any, Callable, Mapping

from robolearn.robots.cameras.camera import Camera, make_cameras
from robolearn.robots.motors.so_arm import SO_MOTOR_NAMES, SOArmBus
from robolearn.robots.robot import Robot, RobotError, require_finite_action

log = logging.getLogger(__name__)

FOLLOWER_TYPES = ("so100_follower", "so101_follower")


# Largest step of a goal away from the present position per send_action (degrees, or % of the gripper's range).
DEFAULT_MAX_RELATIVE_TARGET = 10.0


class SOFollower(Robot):
    """SO-100/SO-101 follower arm.

    Args:
        port: serial port of the arm's controller board (``python record.py mode=find_port``).
        id: name of this arm; its calibration is ``<calibration_dir>/<id>.json``.
        robot_type: ``"so101_follower"`` or ``"so100_follower"`` (the dataset's ``robot_type``; same hardware code).
        cameras: ``{key: Camera | config}``; a config has ``_target_`` or ``type: opencv|fake`` (see
            :func:`robolearn.robots.cameras.make_camera`).
        max_relative_target: largest step of a command away from the present position, in the motor's units
            (degrees / −100..100 / 0..100): one number for all motors or ``{motor: number}``; ``None`` = no limit.
            Default :data:`DEFAULT_MAX_RELATIVE_TARGET` (10 per step), so that a wrong command cannot jump the arm.
        disable_torque_on_disconnect: switch torque off in :meth:`disconnect` (and at interpreter exit).
        use_degrees: body joints in degrees (else −100..100).
        calibration_dir: folder with ``<id>.json`` (default ``$HF_LEROBOT_CALIBRATION/robots/so_follower``).
        p_coefficient, i_coefficient, d_coefficient: position PID written on connect (lerobot's 16/0/32; the
            servo's default P of 32 makes the arm shake).
        input_fn, print_fn: user interaction for calibration (tests inject their own).
        bus_kwargs: ``baudrate``, ``retries``, ``packet_timeout_ms`` of the Feetech bus.
    Raises:
        ValueError: unknown ``robot_type`` or a ``max_relative_target`` key that is not a motor.
    """

    name = "so101_follower"

    def __init__(self, port: str, id: str | None = None, robot_type: str = "so101_follower",
                 cameras: Mapping[str, Any] | None = None,
                 max_relative_target: float | Mapping[str, float] | None = DEFAULT_MAX_RELATIVE_TARGET,
                 disable_torque_on_disconnect: bool = True, use_degrees: bool = True,
                 calibration_dir: str | Path | None = None, p_coefficient: int = 16, i_coefficient: int = 0,
                 d_coefficient: int = 32, input_fn: Callable[[str], Any] | None = None, print_fn: Callable[..., Any] | None = None,
                 **bus_kwargs: Any) -> None:
        super().__init__(id)
        if robot_type not in FOLLOWER_TYPES:
            raise ValueError(f"robot_type must be one of {FOLLOWER_TYPES}, got {robot_type!r}")
        self.name = robot_type
        self.arm = SOArmBus(port, id, "robots", "so_follower", calibration_dir, use_degrees, input_fn, print_fn, **bus_kwargs)
        self.bus = self.arm.bus
        self.cameras: dict[str, Camera] = make_cameras(cameras)
        self.max_relative_target = self._check_max_relative(max_relative_target)
        self.disable_torque_on_disconnect = bool(disable_torque_on_disconnect)
        self.use_degrees = bool(use_degrees)
        self.pid = (int(p_coefficient), int(i_coefficient), int(d_coefficient))
        self._connected = False

    @staticmethod
    def _check_max_relative(value: Any) -> dict[str, float] | None:
        if value is None:
            return None
        if isinstance(value, Mapping):
            out = {}
            for k, v in value.items():
                motor = str(k).removesuffix(".pos")
                if motor not in SO_MOTOR_NAMES:
                    raise ValueError(f"max_relative_target key {k!r} is not a motor of the SO arm {SO_MOTOR_NAMES}")
                out[motor] = float(v)
        else:
            out = {m: float(value) for m in SO_MOTOR_NAMES}
        bad = {k: v for k, v in out.items() if not v > 0}
        if bad:
            raise ValueError(f"max_relative_target must be positive, got {bad}")
        return out

    # ------------------------------------------------------------------ features
    @property
    def observation_features(self) -> dict[str, Any]:
        """``{"<motor>.pos": float}`` for the 6 motors, then ``{camera: (H, W, 3)}``."""
        feats: dict[str, Any] = {f"{m}.pos": float for m in self.bus.motors}
        feats.update({k: cam.shape for k, cam in self.cameras.items()})
        return feats

    @property
    def action_features(self) -> dict[str, Any]:
        """``{"<motor>.pos": float}`` goal positions, same units as the observation."""
        return {f"{m}.pos": float for m in self.bus.motors}

    @property
    def is_connected(self) -> bool:
        return self._connected

    @property
    def is_calibrated(self) -> bool:
        """Whether a calibration is loaded and the motors hold it (needs a connection)."""
        return bool(self.bus.calibration) and self.bus.is_calibrated()

    # ------------------------------------------------------------------ lifecycle
    def connect(self, calibrate: bool = True) -> None:
        """Open the bus, check/apply calibration (see :meth:`SOArmBus.connect`), configure the motors, connect the
        cameras. Torque is switched off again at interpreter exit if :meth:`disconnect` was never called.

        Raises:
            MotorBusError: naming the port (bad port, motors not answering).
        """
        if self._connected:
            raise RobotError(f"{self.name} {self.id!r} on {self.bus.port} is already connected")
        self.arm.connect(calibrate=calibrate)
        atexit.register(self._at_exit)
        self._connected = True
        try:
            self.configure()
            for cam in self.cameras.values():
                cam.connect()
        except BaseException:
            self.disconnect()
            raise

    def configure(self) -> None:
        """With torque off: position mode, fast responses, lerobot's PID 16/0/32 and a gripper current limit;
        torque back on at the end."""
        bus = self.bus
        p, i, d = self.pid
        with bus.torque_disabled():
            for motor in bus.motors:
                bus.write("Return_Delay_Time", motor, 0)
                bus.write("Maximum_Acceleration", motor, 254)
                bus.write("Acceleration", motor, 254)
                bus.write("Operating_Mode", motor, 0)
                bus.write("P_Coefficient", motor, p)
                bus.write("I_Coefficient", motor, i)
                bus.write("D_Coefficient", motor, d)
            # limit the gripper's force so it does not burn out while squeezing an object
            bus.write("Max_Torque_Limit", "gripper", 500)
            bus.write("Protection_Current", "gripper", 250)
            bus.write("Overload_Torque", "gripper", 25)

    def calibrate(self) -> None:
        """Interactive calibration (torque off), saved to the calibration file and written to the motors."""
        if not self.bus.is_connected:
            raise RobotError(f"{self.name} {self.id!r}: connect (or open the bus) before calibrating")
        self.arm.calibrate()

    def _at_exit(self) -> None:
        if self._connected:
            log.warning("%s %r was not disconnected; disabling torque at exit", self.name, self.id)
            self.disconnect()

    def disconnect(self) -> None:
        """Disable torque (if ``disable_torque_on_disconnect``), close the bus and the cameras. Safe to call twice."""
        atexit.unregister(self._at_exit)
        self._connected = False
        try:
            self.bus.disconnect(disable_torque=self.disable_torque_on_disconnect)
        finally:
            for cam in self.cameras.values():
                try:
                    cam.disconnect()
                except Exception as e:  # keep releasing the others
                    log.error("camera %r failed to disconnect: %s", cam.name, e)

    # ------------------------------------------------------------------ I/O
    def _require(self) -> None:
        if not self._connected:
            raise RobotError(f"{self.name} {self.id!r} on {self.bus.port} is not connected; call connect() first")

    def get_observation(self) -> dict[str, Any]:
        """Joint positions (one sync read) and the newest frame of every camera.

        Returns:
            ``{"<motor>.pos": float, ..., camera: uint8 (H, W, 3)}``.
        Raises:
            RobotError: not connected. MotorBusError / TimeoutError: naming port+motor / camera.
        """
        self._require()
        self.arm.require_calibration()
        pos = self.bus.sync_read("Present_Position")
        obs: dict[str, Any] = {f"{m}.pos": float(v) for m, v in pos.items()}
        for key, cam in self.cameras.items():
            obs[key] = cam.async_read()
        return obs

    def send_action(self, action: Mapping[str, Any]) -> dict[str, float]:
        """Command goal positions (one sync write), each first clamped to ``present ± max_relative_target``.

        Args:
            action: ``{"<motor>.pos": float}`` for all 6 motors.
        Returns:
            The goal positions actually sent (after clamping).
        Raises:
            RobotError: not connected, missing / unknown keys (both named), or a NaN/infinite value (named; nothing
                is written and the arm holds its last goal).
        """
        self._require()
        self.arm.require_calibration()
        expected = list(self.action_features)
        missing = [k for k in expected if k not in action]
        unknown = [k for k in action if k not in self.action_features]
        if missing or unknown:
            raise RobotError(f"{self.name} action: missing keys {missing}, unknown keys {unknown}; expected {expected}")
        finite = require_finite_action(self.name, action, expected)
        goal = {k.removesuffix(".pos"): finite[k] for k in expected}
        if self.max_relative_target is not None:
            present = self.bus.sync_read("Present_Position")
            for m, g in goal.items():
                limit = self.max_relative_target.get(m)
                if limit is None:
                    continue
                clamped = min(present[m] + limit, max(present[m] - limit, g))
                if clamped != g:
                    log.debug("%s: goal %.2f clamped to %.2f (present %.2f, max step %.2f)", m, g, clamped, present[m], limit)
                goal[m] = clamped
        self.bus.sync_write("Goal_Position", goal)
        return {f"{m}.pos": v for m, v in goal.items()}

    def __repr__(self) -> str:
        return f"SOFollower(type={self.name!r}, id={self.id!r}, port={self.bus.port!r}, cameras={list(self.cameras)})"
