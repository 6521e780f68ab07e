"""A motor on a bus and the errors a bus raises (importable without the Feetech SDK)."""

from __future__ import annotations

from dataclasses import dataclass

from robolearn.robots.motors.normalization import MotorNormMode
from robolearn.robots.motors.tables import MODEL_NUMBERS


@dataclass
class Motor:
    """One servo: bus ``id`` (1..252), ``model`` (``"sts3215"``) and the units of its normalized position."""

    id: int
    model: str = "sts3215"
    norm_mode: MotorNormMode = MotorNormMode.DEGREES

    def __post_init__(self) -> None:
        if not 0 <= int(self.id) <= 252:
            raise ValueError(f"motor id must be in 0..252, got {self.id}")
        if self.model not in MODEL_NUMBERS:
            raise ValueError(f"unknown motor model {self.model!r}; known: {sorted(MODEL_NUMBERS)}")
        self.norm_mode = MotorNormMode(self.norm_mode)


class MotorBusError(ConnectionError):
    """A bus transaction failed (no answer, corrupt answer, servo error bit) after all retries, or the port
    could not be opened. The message names the port and, where known, the motor, its id and the register."""

    def __init__(self, message: str, port: str, motor: str | None = None, motor_id: int | None = None,
                 register: str | None = None, attempts: int | None = None) -> None:
        super().__init__(message)
        self.port = port
        self.motor = motor
        self.motor_id = motor_id
        self.register = register
        self.attempts = attempts


class CalibrationError(RuntimeError):
    """A motor has no usable calibration (missing, or a homing offset that does not fit the register)."""
