"""Servo buses and their calibration. ``FeetechMotorsBus`` imports ``scservo_sdk`` only when used.

- :mod:`.tables`: STS3215 control table; :mod:`.encoding`: sign-magnitude registers;
- :mod:`.normalization`: ticks <-> degrees / −100..100 / 0..100; :mod:`.calibration`: ``MotorCalibration``
  and its JSON file; :mod:`.feetech`: the bus; :mod:`.so_arm`: the SO-100/SO-101 motor set and calibration flow.
"""

from robolearn.robots.motors.calibration import MotorCalibration, calibration_path, load_calibration, save_calibration
from robolearn.robots.motors.motor import CalibrationError, Motor, MotorBusError
from robolearn.robots.motors.normalization import MotorNormMode, normalize, unnormalize

__all__ = [
    "CalibrationError", "FeetechMotorsBus", "Motor", "MotorBusError", "MotorCalibration", "MotorNormMode",
    "calibration_path", "load_calibration", "normalize", "save_calibration", "unnormalize",
]


def __getattr__(name: str):
    if name == "FeetechMotorsBus":
        from robolearn.robots.motors.feetech import FeetechMotorsBus

        return FeetechMotorsBus
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
