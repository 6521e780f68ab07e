"""SOFollower / SOLeader over simulated servos: calibration, observation units, clamped actions, torque safety."""

import json
from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from robolearn.robots.cameras import FakeCamera
from robolearn.robots.motors import CalibrationError, MotorCalibration, save_calibration
from robolearn.robots.robot import RobotError
from robolearn.robots.so_follower import SOFollower
from robolearn.teleop.so_leader import SOLeader
from tests.robots.fake_feetech import PACKET_TIMEOUT_MS, FakeFeetechBus

NAMES = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]
CONF = Path(__file__).resolve().parents[2] / "conf"


def calibration(offset=100):
    """Body 1000..3000, wrist_roll full turn, gripper 2000..3000; every homing offset ``offset``."""
    ranges = {n: (1000, 3000) for n in NAMES} | {"wrist_roll": (0, 4095), "gripper": (2000, 3000)}
    return {n: MotorCalibration(i + 1, 0, offset, *ranges[n]) for i, n in enumerate(NAMES)}


def no_input(prompt=""):
    raise AssertionError(f"unexpected prompt: {prompt}")


def follower(fake, tmp_path, **kw):
    save_calibration(calibration(), tmp_path / "f" / "arm.json")
    return SOFollower(fake.port, id="arm", calibration_dir=tmp_path / "f", input_fn=kw.pop("input_fn", no_input),
                      print_fn=lambda *a: None, packet_timeout_ms=PACKET_TIMEOUT_MS, **kw)


def test_connect_observation_units_and_configuration(fake_bus, tmp_path):
    for i in range(1, 7):
        fake_bus.servo(i).actual = 2100  # present 2000 with offset 100
    fake_bus.servo(1).actual = 2555  # present 2455 -> +40 degrees
    robot = follower(fake_bus, tmp_path, cameras={"front": FakeCamera(width=8, height=6)}, input_fn=lambda p: "")
    assert robot.name == "so101_follower"
    assert robot.observation_features == {**{f"{n}.pos": float for n in NAMES}, "front": (6, 8, 3)}
    robot.connect()  # motors hold no calibration yet: the ENTER prompt writes the file's values
    try:
        s = fake_bus.servo(3)
        assert (s.homing_offset, s.get("Min_Position_Limit"), s.get("Max_Position_Limit")) == (100, 1000, 3000)
        assert (s.get("P_Coefficient"), s.get("I_Coefficient"), s.get("D_Coefficient")) == (16, 0, 32)
        assert s.get("Torque_Enable") == 1 and s.get("Operating_Mode") == 0
        assert fake_bus.servo(6).get("Max_Torque_Limit") == 500
        obs = robot.get_observation()
        assert list(obs) == [f"{n}.pos" for n in NAMES] + ["front"]
        assert obs["shoulder_pan.pos"] == pytest.approx(40.0)  # degrees
        assert obs["elbow_flex.pos"] == pytest.approx(0.0)
        assert obs["wrist_roll.pos"] == pytest.approx((2000 - 2047.5) * 360 / 4095)
        assert obs["gripper.pos"] == pytest.approx(0.0)  # 0..100 at range_min
        assert obs["front"].shape == (6, 8, 3) and obs["front"].dtype.name == "uint8"
    finally:
        robot.disconnect()


def test_send_action_clamped_by_max_relative_target(fake_bus, tmp_path):
    for i in range(1, 7):
        fake_bus.servo(i).actual = 2100
    fake_bus.servo(1).actual = 2555
    robot = follower(fake_bus, tmp_path, max_relative_target=10.0, input_fn=lambda p: "")
    with robot:
        action = {f"{n}.pos": 0.0 for n in NAMES} | {"shoulder_pan.pos": 60.0, "elbow_flex.pos": -5.0, "gripper.pos": 30.0}
        sent = robot.send_action(action)
        assert sent["shoulder_pan.pos"] == pytest.approx(50.0)  # present 40 + 10
        assert sent["elbow_flex.pos"] == -5.0 and sent["gripper.pos"] == pytest.approx(10.0)
        # goal ticks: 50 deg -> 50*4095/360 + 2000 = 2568.75 -> 2569; -5 deg -> 1943.125 -> 1943; gripper 10 -> 2100
        assert fake_bus.servo(1).get("Goal_Position") == 2569
        assert fake_bus.servo(3).get("Goal_Position") == 1943
        assert fake_bus.servo(6).get("Goal_Position") == 2100
        with pytest.raises(RobotError, match=r"missing keys \['gripper.pos'\]"):
            robot.send_action({k: v for k, v in action.items() if k != "gripper.pos"})
        with pytest.raises(RobotError, match=r"unknown keys \['front'\]"):
            robot.send_action(action | {"front": 0.0})
        # A NaN would clamp to a full-limit step (min(hi, max(lo, nan)) == lo): refused before anything is written,
        # so every servo keeps its goal (the arm holds still).
        goals = [fake_bus.servo(i).get("Goal_Position") for i in range(1, 7)]
        for bad in (float("nan"), float("inf"), "abc"):
            with pytest.raises(RobotError, match=r"refused a non-finite command.*elbow_flex\.pos"):
                robot.send_action(action | {"elbow_flex.pos": bad})
        assert [fake_bus.servo(i).get("Goal_Position") for i in range(1, 7)] == goals
    robot2 = follower(fake_bus, tmp_path, max_relative_target={"shoulder_pan": 5})
    assert robot2.max_relative_target == {"shoulder_pan": 5.0}
    with pytest.raises(ValueError, match="'elbow' is not a motor"):
        follower(fake_bus, tmp_path, max_relative_target={"elbow": 5})


def test_torque_off_on_disconnect_exception_and_exit(fake_bus, tmp_path):
    robot = follower(fake_bus, tmp_path, input_fn=lambda p: "")
    robot.connect()
    assert fake_bus.servo(2).get("Torque_Enable") == 1
    robot.disconnect()
    assert all(fake_bus.servo(i).get("Torque_Enable") == 0 for i in range(1, 7))
    robot.disconnect()  # twice is fine
    with pytest.raises(ZeroDivisionError):
        with robot:
            assert fake_bus.servo(4).get("Torque_Enable") == 1
            1 / 0
    assert all(fake_bus.servo(i).get("Torque_Enable") == 0 for i in range(1, 7)) and not robot.is_connected
    robot.connect()
    robot._at_exit()  # what atexit runs when the program ends without disconnect()
    assert fake_bus.servo(1).get("Torque_Enable") == 0 and not robot.is_connected
    robot3 = follower(fake_bus, tmp_path, disable_torque_on_disconnect=False)
    robot3.connect()
    robot3.disconnect()
    assert fake_bus.servo(1).get("Torque_Enable") == 1


def test_leader_drives_follower(tmp_path):
    with FakeFeetechBus() as fleader, FakeFeetechBus() as ffollower:
        save_calibration(calibration(offset=0), tmp_path / "l" / "lead.json")
        leader = SOLeader(fleader.port, id="lead", calibration_dir=tmp_path / "l", input_fn=lambda p: "",
                          packet_timeout_ms=PACKET_TIMEOUT_MS)
        # no step limit here: this checks the leader -> follower mapping, not the clamp
        robot = follower(ffollower, tmp_path, input_fn=lambda p: "", max_relative_target=None)
        for i in range(1, 7):
            fleader.servo(i).actual = 1500 + 200 * i
        with leader, robot:
            assert fleader.servo(1).get("Torque_Enable") == 0
            action = leader.get_action()
            assert action["elbow_flex.pos"] == pytest.approx((2100 - 2000) * 360 / 4095)
            robot.send_action(action)
        # same ranges on both arms -> the follower's goal tick equals the leader's present tick
        assert [ffollower.servo(i).get("Goal_Position") for i in range(1, 7)] == [1500 + 200 * i for i in range(1, 7)]


def test_calibration_procedure(fake_bus, tmp_path):
    mid = {1: 2500, 2: 1800, 3: 2047, 4: 2200, 5: 100, 6: 2300}
    for i, p in mid.items():
        fake_bus.servo(i).actual = p
    prompts = []
    sweep = iter([{1: 2600, 3: 1500}, {1: 2000, 2: 1000, 4: 3000}, {3: 3100, 6: 2900, 2: 2600}, {6: 2250, 5: 4000}])

    def sweep_step():  # moves the shafts one step per poll, then says "done"
        step = next(sweep, None)
        if step is None:
            return True
        for i, p in step.items():
            fake_bus.servo(i).actual = p
        return False

    robot = SOFollower(fake_bus.port, id="new", input_fn=lambda p: prompts.append(p) or "", print_fn=lambda *a: None,
                       packet_timeout_ms=PACKET_TIMEOUT_MS)
    robot.connect(calibrate=False)
    with pytest.raises(CalibrationError, match="robots/so_follower/new.json"):
        robot.get_observation()
    cal = robot.arm.calibrate(sweep_done=sweep_step, poll_s=0)
    robot.disconnect()
    offsets = {i: mid[i] - 2047 for i in mid}  # mid-range becomes tick 2047
    # range ticks are present = actual - offset
    expect = {
        "shoulder_pan": (2000, 2600), "shoulder_lift": (1000, 2600), "elbow_flex": (1500, 3100),
        "wrist_flex": (2200, 3000), "gripper": (2250, 2900),
    }
    for i, n in enumerate(NAMES):
        lo, hi = (0, 4095) if n == "wrist_roll" else tuple(v - offsets[i + 1] for v in expect[n])
        assert cal[n] == MotorCalibration(i + 1, 0, offsets[i + 1], lo, hi), n
    data = json.loads(Path(robot.arm.calibration_file).read_text())
    assert robot.arm.calibration_file == tmp_path / "calibration/robots/so_follower/new.json"
    assert data["shoulder_pan"] == {"id": 1, "drive_mode": 0, "homing_offset": 453, "range_min": 1547, "range_max": 2147}
    assert fake_bus.servo(5).homing_offset == 100 - 2047 and fake_bus.servo(5).get("Max_Position_Limit") == 4095
    assert "middle of its range" in prompts[0]


def test_hydra_configs(fake_bus, tmp_path):
    for name in ("so100_follower", "so101_follower"):
        cfg = OmegaConf.load(CONF / "robot" / f"{name}.yaml")
        cfg.port = fake_bus.port
        cfg.cameras = {"front": {"type": "fake", "width": 4, "height": 3},
                       "wrist": {"_target_": "robolearn.robots.cameras.FakeCamera", "width": 5, "height": 2}}
        robot = instantiate(cfg)
        # every command is clamped by default: 10 degrees (gripper: 10 % of its range) per step from the present
        assert robot.name == name and robot.use_degrees and robot.max_relative_target == {n: 10.0 for n in NAMES}
        assert robot.observation_features["front"] == (3, 4, 3) and robot.cameras["wrist"].name == "wrist"
        assert robot.arm.calibration_file.parent == tmp_path / "calibration/robots/so_follower"
    for name in ("so100_leader", "so101_leader"):
        cfg = OmegaConf.load(CONF / "teleop" / f"{name}.yaml")
        cfg.port = fake_bus.port
        leader = instantiate(cfg)
        assert leader.name == name and leader.arm.calibration_file.parent == tmp_path / "calibration/teleoperators/so_leader"
    with pytest.raises(ValueError, match="robot_type must be one of"):
        SOFollower("/dev/null", robot_type="so102_follower")
