"""Calibration JSON: lerobot's field names and file locations, atomic writes, clear errors."""

import json

import pytest

from robolearn.robots.motors import MotorCalibration, calibration_path, load_calibration, save_calibration
from robolearn.robots.motors.calibration import calibration_root

# A file as lerobot writes it (draccus, indent 4) for an SO-101 follower.
LEROBOT_FILE = """{
    "shoulder_pan": {"id": 1, "drive_mode": 0, "homing_offset": -1470, "range_min": 758, "range_max": 3292},
    "shoulder_lift": {"id": 2, "drive_mode": 0, "homing_offset": 157, "range_min": 612, "range_max": 3401},
    "elbow_flex": {"id": 3, "drive_mode": 0, "homing_offset": 1105, "range_min": 867, "range_max": 3087},
    "wrist_flex": {"id": 4, "drive_mode": 0, "homing_offset": -1872, "range_min": 883, "range_max": 3160},
    "wrist_roll": {"id": 5, "drive_mode": 0, "homing_offset": -1598, "range_min": 0, "range_max": 4095},
    "gripper": {"id": 6, "drive_mode": 0, "homing_offset": 1372, "range_min": 2031, "range_max": 3476}
}"""


def test_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_LEROBOT_CALIBRATION", str(tmp_path / "cal"))
    assert calibration_path("robots", "so_follower", "arm1") == tmp_path / "cal/robots/so_follower/arm1.json"
    monkeypatch.delenv("HF_LEROBOT_CALIBRATION")
    monkeypatch.setenv("HF_LEROBOT_HOME", str(tmp_path / "home"))
    assert calibration_root() == tmp_path / "home/calibration"
    assert calibration_path("teleoperators", "so_leader", "l") == tmp_path / "home/calibration/teleoperators/so_leader/l.json"
    assert calibration_path("robots", "so_follower", "x", calibration_dir=tmp_path / "mine") == tmp_path / "mine/x.json"
    with pytest.raises(ValueError, match="robots' or 'teleoperators"):
        calibration_path("robot", "so_follower", "x")


def test_round_trip_and_field_names(tmp_path):
    cal = {"shoulder_pan": MotorCalibration(1, 0, -5, 1000, 3000), "gripper": MotorCalibration(6, 1, 2047, 2000, 3100)}
    path = save_calibration(cal, tmp_path / "a" / "arm.json")
    data = json.loads(path.read_text())
    assert list(data) == ["shoulder_pan", "gripper"]
    assert list(data["gripper"]) == ["id", "drive_mode", "homing_offset", "range_min", "range_max"]
    assert data["gripper"] == {"id": 6, "drive_mode": 1, "homing_offset": 2047, "range_min": 2000, "range_max": 3100}
    assert load_calibration(path) == cal
    assert [p.name for p in path.parent.iterdir()] == ["arm.json"]  # no temporary file left


def test_lerobot_file_loads(tmp_path):
    path = tmp_path / "my_arm.json"
    path.write_text(LEROBOT_FILE)
    ids = {"shoulder_pan": 1, "shoulder_lift": 2, "elbow_flex": 3, "wrist_flex": 4, "wrist_roll": 5, "gripper": 6}
    cal = load_calibration(path, ids)
    assert cal["wrist_flex"] == MotorCalibration(id=4, drive_mode=0, homing_offset=-1872, range_min=883, range_max=3160)


def test_errors_name_file_motor_field(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"gripper": {"id": 6, "drive_mode": 0, "homing_offset": 0, "range_min": 1}}))
    with pytest.raises(ValueError, match=r"bad.json.*'gripper'.*\['range_max'\]"):
        load_calibration(path)
    path.write_text(json.dumps({"gripper": {"id": 6, "drive_mode": 0, "homing_offset": 0.5, "range_min": 1, "range_max": 2}}))
    with pytest.raises(ValueError, match="'homing_offset' must be an integer"):
        load_calibration(path)
    path.write_text(json.dumps({"gripper": {"id": 7, "drive_mode": 0, "homing_offset": 0, "range_min": 1, "range_max": 2}}))
    with pytest.raises(ValueError, match="ids differ"):
        load_calibration(path, {"gripper": 6})
    with pytest.raises(ValueError, match=r"missing \['elbow_flex'\]"):
        load_calibration(path, {"gripper": 7, "elbow_flex": 3})
