"""The SO-100/SO-101 arm's motor set, its calibration procedure and the connect flow shared by the follower
(``SOFollower``) and the leader (``SOLeader``).

Motors (Feetech STS3215, ids 1..6): ``shoulder_pan, shoulder_lift, elbow_flex, wrist_flex, wrist_roll,
gripper``. Body joints are normalized to degrees (``use_degrees=True``, lerobot's default) or −100..100; the
gripper to 0..100. Calibration (lerobot's half-turn homing): with torque off, the user puts the arm in the middle
of its range, which becomes tick 2047 on every motor; then sweeps every joint through its range (min/max
recorded); ``wrist_roll`` turns fully and gets 0..4095.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Callable

from robolearn.robots.motors.calibration import MotorCalibration, calibration_path, load_calibration, save_calibration
from robolearn.robots.motors.motor import CalibrationError, Motor
from robolearn.robots.motors.normalization import MotorNormMode

log = logging.getLogger(__name__)

SO_MOTOR_NAMES = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")
FULL_TURN_MOTORS = ("wrist_roll",)


def so_arm_motors(use_degrees: bool = True) -> dict[str, Motor]:
    """``{name: Motor}`` of an SO arm: body joints in degrees (or −100..100), gripper 0..100."""
    body = MotorNormMode.DEGREES if use_degrees else MotorNormMode.RANGE_M100_100
    return {
        name: Motor(i + 1, "sts3215", MotorNormMode.RANGE_0_100 if name == "gripper" else body)
        for i, name in enumerate(SO_MOTOR_NAMES)
    }


def enter_pressed_poller(input_fn: Callable[[str], Any], prompt: str) -> Callable[[], bool]:
    """A ``stop()`` for :meth:`FeetechMotorsBus.record_ranges_of_motion`: a daemon thread calls
    ``input_fn(prompt)`` once; ``stop()`` is True after it returned."""
    done = threading.Event()

    def wait() -> None:
        try:
            input_fn(prompt)
        finally:
            done.set()

    threading.Thread(target=wait, name="calibration-enter", daemon=True).start()
    return done.is_set


class SOArmBus:
    """A Feetech bus with the SO arm's motors plus its calibration file.

    Args:
        port: serial port of the arm's controller board.
        id: name of this arm; the calibration file is ``<id>.json``.
        kind: ``"robots"`` (follower) or ``"teleoperators"`` (leader).
        class_folder: lerobot's calibration folder (``"so_follower"`` / ``"so_leader"``).
        calibration_dir: folder replacing ``$HF_LEROBOT_CALIBRATION/<kind>/<class_folder>``.
        use_degrees: body joints in degrees (else −100..100).
        input_fn, print_fn: the user interaction (``input``/``print`` by default; tests inject their own).
        bus_kwargs: passed to ``FeetechMotorsBus`` (``baudrate``, ``retries``, ``packet_timeout_ms``).
    """

    def __init__(self, port: str, id: str | None, kind: str, class_folder: str, calibration_dir: str | Path | None = None,
                 use_degrees: bool = True, input_fn: Callable[[str], Any] | None = None, print_fn: Callable[..., Any] | None = None,
                 **bus_kwargs: Any) -> None:
        from robolearn.robots.motors.feetech import FeetechMotorsBus

        self.calibration_file = calibration_path(kind, class_folder, id, calibration_dir)
        self.input_fn = input_fn if input_fn is not None else input
        self.print_fn = print_fn if print_fn is not None else print
        self.bus = FeetechMotorsBus(port, so_arm_motors(use_degrees), **bus_kwargs)
        if self.calibration_file.is_file():
            self.bus.calibration = load_calibration(self.calibration_file, {n: m.id for n, m in self.bus.motors.items()})

    def connect(self, calibrate: bool = True) -> None:
        """Open the bus (pinging every motor) and make sure the motors hold the calibration.

        - A calibration file exists and the motors hold it: nothing to do.
        - It exists but the motors differ: ask ENTER (write the file's values to the motors) or ``c`` (recalibrate).
        - No file: with ``calibrate`` run :meth:`calibrate`; without, go on uncalibrated (position reads then raise
          ``CalibrationError``), as lerobot does for ``calibrate=False``.
        """
        self.bus.connect()
        try:
            if self.bus.calibration:
                if not self.bus.is_calibrated():
                    answer = self.input_fn(
                        f"The motors on {self.bus.port} do not hold the calibration in {self.calibration_file}. "
                        "Press ENTER to write the file's calibration to them, or type 'c' then ENTER to recalibrate: ")
                    if str(answer).strip().lower() == "c":
                        self.calibrate()
                    else:
                        self.bus.disable_torque()
                        self.bus.write_calibration(self.bus.calibration)
            elif calibrate:
                self.calibrate()
            else:
                log.warning("no calibration file at %s; positions cannot be normalized until `calibrate` runs",
                            self.calibration_file)
        except BaseException:
            self.bus.disconnect(disable_torque=True)
            raise

    def calibrate(self, sweep_done: Callable[[], bool] | None = None, poll_s: float = 0.02) -> dict[str, MotorCalibration]:
        """Record a calibration interactively, write it to the motors and save it (atomically) to
        :attr:`calibration_file`. Torque stays disabled afterwards.

        Args:
            sweep_done: ``stop()`` polled while recording ranges; by default ENTER (through ``input_fn``) ends it.
            poll_s: pause between position reads during the sweep (seconds).
        Returns:
            ``{motor: MotorCalibration}`` (drive_mode 0 on every motor, like lerobot's SO arms).
        Raises:
            CalibrationError: a homing offset out of range, or a joint that was not moved during the sweep.
        """
        bus = self.bus
        bus.disable_torque()
        bus.set_operating_mode("position")
        self.input_fn(f"Calibrating the arm on {bus.port}. Move it to the middle of its range of motion "
                      "(every joint centred) and press ENTER...")
        offsets = bus.set_half_turn_homings()
        swept = [n for n in bus.motors if n not in FULL_TURN_MOTORS]
        prompt = (f"Move every joint except {', '.join(FULL_TURN_MOTORS)} through its whole range of motion, "
                  "one after the other. Press ENTER when done...")
        if sweep_done is None:
            sweep_done = enter_pressed_poller(self.input_fn, prompt)
        else:
            self.print_fn(prompt)
        mins, maxes = bus.record_ranges_of_motion(swept, stop=sweep_done, display=None, poll_s=poll_s)
        calibration = {}
        for n, m in bus.motors.items():
            lo, hi = (0, 4095) if n in FULL_TURN_MOTORS else (mins[n], maxes[n])
            calibration[n] = MotorCalibration(id=m.id, drive_mode=0, homing_offset=offsets[n], range_min=lo, range_max=hi)
        bus.write_calibration(calibration)
        save_calibration(calibration, self.calibration_file)
        self.print_fn(f"Calibration saved to {self.calibration_file}")
        return calibration

    def require_calibration(self) -> None:
        """Raise ``CalibrationError`` naming the expected file when no calibration is loaded."""
        if not self.bus.calibration:
            raise CalibrationError(f"no calibration for the arm on {self.bus.port}: expected {self.calibration_file}; "
                                   "run `python record.py mode=calibrate ...` first")
