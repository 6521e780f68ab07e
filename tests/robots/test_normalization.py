"""Sign-magnitude registers and position normalization against hand-computed values."""

import math

import pytest

from robolearn.robots.motors import MotorCalibration, MotorNormMode, normalize, unnormalize
from robolearn.robots.motors.encoding import decode_sign_magnitude, encode_sign_magnitude

CAL = MotorCalibration(id=1, drive_mode=0, homing_offset=0, range_min=1000, range_max=3000)
INV = MotorCalibration(id=6, drive_mode=1, homing_offset=0, range_min=2000, range_max=3000)


def test_sign_magnitude_bit11():
    assert encode_sign_magnitude(-5, 11) == 0x800 | 5 == 2053
    assert decode_sign_magnitude(2053, 11) == -5
    assert encode_sign_magnitude(2047, 11) == 2047 and decode_sign_magnitude(2047, 11) == 2047
    assert encode_sign_magnitude(-2047, 11) == 4095
    with pytest.raises(ValueError, match="2048 exceeds 2047"):
        encode_sign_magnitude(2048, 11)
    for v in range(-2047, 2048, 97):
        assert decode_sign_magnitude(encode_sign_magnitude(v, 11), 11) == v


def test_mid_range_is_zero():
    assert normalize(2000, CAL, "range_m100_100") == 0.0
    assert normalize(2000, CAL, MotorNormMode.DEGREES) == 0.0
    assert normalize(2000, CAL, "range_0_100") == 50.0


def test_hand_computed_values():
    assert normalize(3000, CAL, "range_m100_100") == 100.0
    assert normalize(1000, CAL, "range_m100_100") == -100.0
    assert normalize(1500, CAL, "range_0_100") == 25.0
    assert normalize(2455, CAL, "degrees") == pytest.approx(455 * 360 / 4095) == pytest.approx(40.0)
    assert unnormalize(40.0, CAL, "degrees") == 2455
    assert unnormalize(50.0, CAL, "degrees") == 2569  # 50 * 4095 / 360 = 568.75 -> 2568.75 rounds to 2569


def test_clamping_where_lerobot_clamps():
    assert normalize(500, CAL, "range_m100_100") == -100.0          # clamped to range_min
    assert normalize(3500, CAL, "range_0_100") == 100.0
    assert normalize(500, CAL, "degrees") == pytest.approx(-1500 * 360 / 4095)  # degrees are not clamped
    assert unnormalize(150.0, CAL, "range_m100_100") == 3000
    assert unnormalize(-7.0, CAL, "range_0_100") == 1000
    assert unnormalize(-200.0, CAL, "degrees") == round(-200 * 4095 / 360 + 2000)  # not clamped


def test_drive_mode_inverts_gripper():
    assert normalize(2000, INV, "range_0_100") == 100.0
    assert normalize(2250, INV, "range_0_100") == 75.0
    assert unnormalize(75.0, INV, "range_0_100") == 2250
    m = MotorCalibration(1, 1, 0, 1000, 3000)
    assert normalize(1500, m, "range_m100_100") == 50.0
    assert unnormalize(50.0, m, "range_m100_100") == 1500


@pytest.mark.parametrize("mode", list(MotorNormMode))
@pytest.mark.parametrize("cal", [CAL, INV])
def test_round_trip_every_tick(mode, cal):
    for raw in range(cal.range_min, cal.range_max + 1):
        assert unnormalize(normalize(raw, cal, mode), cal, mode) == raw


def test_bad_calibration_and_values():
    bad = MotorCalibration(3, 0, 0, 2000, 2000)
    with pytest.raises(ValueError, match="elbow_flex.*range_min=2000"):
        normalize(2000, bad, "degrees", motor="elbow_flex")
    with pytest.raises(ValueError, match="non-finite"):
        unnormalize(math.nan, CAL, "degrees", motor="gripper")
    with pytest.raises(ValueError):
        normalize(1, CAL, "radians")
