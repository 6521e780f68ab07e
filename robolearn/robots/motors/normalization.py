"""Raw encoder ticks <-> user units, as lerobot's ``MotorNormMode`` defines them.

With ``min``/``max`` the calibrated range (ticks) and ``res`` the resolution (4096 on an STS3215):

- ``range_m100_100``: ``((clamp(v) - min) / (max - min)) * 200 - 100``, negated when ``drive_mode`` = 1;
- ``range_0_100``:   ``((clamp(v) - min) / (max - min)) * 100``, ``100 - x`` when ``drive_mode`` = 1 (grippers);
- ``degrees``:       ``(v - (min + max) / 2) * 360 / (res - 1)``, not clamped, mid-range is 0°.

``clamp`` bounds ``v`` to ``[min, max]``. The inverse clamps to [−100, 100] / [0, 100] (after undoing
``drive_mode``) and is not clamped for degrees (the servo's position limits bound it). Deviation from
lerobot: the inverse rounds to the nearest tick instead of truncating, so ``unnormalize(normalize(v)) == v``
for every in-range tick (truncation can lose a tick to float error).
"""

from __future__ import annotations

import enum

from robolearn.robots.motors.calibration import MotorCalibration


class MotorNormMode(str, enum.Enum):
    """Units of a motor's normalized position (lerobot's names)."""

    RANGE_M100_100 = "range_m100_100"
    RANGE_0_100 = "range_0_100"
    DEGREES = "degrees"


def _check_range(cal: MotorCalibration, motor: str) -> None:
    if cal.range_max <= cal.range_min:
        raise ValueError(
            f"invalid calibration for motor {motor!r}: range_min={cal.range_min} must be below range_max={cal.range_max}"
        )


def normalize(raw: int | float, cal: MotorCalibration, mode: MotorNormMode | str, resolution: int = 4096, motor: str = "?") -> float:
    """Raw ticks -> ``mode`` units (see the module docstring for the formulas).

    Raises:
        ValueError: when the calibration range is empty or ``mode`` is unknown.
    """
    mode = MotorNormMode(mode)
    _check_range(cal, motor)
    lo, hi = cal.range_min, cal.range_max
    if mode is MotorNormMode.DEGREES:
        return (float(raw) - (lo + hi) / 2.0) * 360.0 / (resolution - 1)
    bounded = min(hi, max(lo, float(raw)))
    frac = (bounded - lo) / (hi - lo)
    if mode is MotorNormMode.RANGE_M100_100:
        value = frac * 200.0 - 100.0
        return -value if cal.drive_mode else value
    value = frac * 100.0
    return 100.0 - value if cal.drive_mode else value


def unnormalize(value: float, cal: MotorCalibration, mode: MotorNormMode | str, resolution: int = 4096, motor: str = "?") -> int:
    """``mode`` units -> raw ticks (inverse of :func:`normalize`, rounded to the nearest tick).

    Raises:
        ValueError: when the calibration range is empty, ``mode`` is unknown or ``value`` is not finite.
    """
    mode = MotorNormMode(mode)
    _check_range(cal, motor)
    value = float(value)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"motor {motor!r}: cannot send non-finite position {value}")
    lo, hi = cal.range_min, cal.range_max
    if mode is MotorNormMode.DEGREES:
        return int(round(value * (resolution - 1) / 360.0 + (lo + hi) / 2.0))
    if mode is MotorNormMode.RANGE_M100_100:
        value = -value if cal.drive_mode else value
        value = min(100.0, max(-100.0, value))
        return int(round((value + 100.0) / 200.0 * (hi - lo) + lo))
    value = 100.0 - value if cal.drive_mode else value
    value = min(100.0, max(0.0, value))
    return int(round(value / 100.0 * (hi - lo) + lo))
