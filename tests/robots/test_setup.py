"""Setup commands with injected user interaction: find_port, setup_motors, calibrate."""

import time

import pytest

from robolearn.robots import setup
from robolearn.robots.so_follower import SOFollower
from robolearn.teleop.so_leader import SOLeader
from tests.robots.fake_feetech import PACKET_TIMEOUT_MS, FakeFeetechBus, FakeServo


def test_find_port():
    listings = iter([["/dev/ttyACM0", "/dev/ttyACM1"], ["/dev/ttyACM0"]])
    out = []
    port = setup.find_port(input_fn=lambda p: "", print_fn=out.append, list_ports_fn=lambda: next(listings), settle_s=0)
    assert port == "/dev/ttyACM1" and "Reconnect" in out[-1]
    same = iter([["/dev/ttyACM0"], ["/dev/ttyACM0"]])
    with pytest.raises(OSError, match="no port disappeared"):
        setup.find_port(input_fn=lambda p: "", print_fn=out.append, list_ports_fn=lambda: next(same), settle_s=0)
    two = iter([["a", "b", "c"], ["a"]])
    with pytest.raises(OSError, match=r"several ports disappeared: \['b', 'c'\]"):
        setup.find_port(input_fn=lambda p: "", print_fn=out.append, list_ports_fn=lambda: next(two), settle_s=0)


def test_setup_motors_one_at_a_time():
    with FakeFeetechBus(motor_ids=[]) as fake:
        done = {}

        def plug_next_motor(prompt):  # the user connects a factory-fresh motor (id 1)
            for s in fake.servos.values():
                done[s.id] = s
            fake.servos.clear()
            fake.servos[1] = FakeServo(1)
            return ""

        device = SOFollower(fake.port, id="x", packet_timeout_ms=PACKET_TIMEOUT_MS)
        found = setup.setup_motors(device, input_fn=plug_next_motor, print_fn=lambda *a: None)
        for s in fake.servos.values():
            done[s.id] = s
    assert sorted(done) == [1, 2, 3, 4, 5, 6]
    assert all(s.get("ID") == i for i, s in done.items())
    assert list(found) == ["gripper", "wrist_roll", "wrist_flex", "elbow_flex", "shoulder_lift", "shoulder_pan"]
    assert found["gripper"] == (1_000_000, 1)


def test_calibrate_command_with_enter_thread(tmp_path):
    """The default sweep stop is an ENTER read in a thread; here the 'user' moves every joint, then presses ENTER."""
    with FakeFeetechBus() as fake:
        def user(prompt):
            if "whole range" in prompt:
                for step in (1500, 2600):
                    for i in (1, 2, 3, 4, 6):
                        fake.servos[i].actual = step
                    seen = fake.requests[1]
                    while fake.requests[1] < seen + 2:  # wait until the bus polled the new positions
                        time.sleep(0.001)
            return ""

        leader = SOLeader(fake.port, id="lead", input_fn=user, print_fn=lambda *a: None, packet_timeout_ms=PACKET_TIMEOUT_MS)
        cal = setup.calibrate(leader)
        assert cal["elbow_flex"].range_min == 1500, cal and cal["elbow_flex"].range_max == 2600  # offsets are 0 (shaft at 2047)
        assert cal["wrist_roll"].range_max == 4095
        assert leader.arm.calibration_file.is_file()
        assert all(fake.servo(i).get("Torque_Enable") == 0 for i in range(1, 7))
