"""Robots and teleoperators share one life cycle (``robolearn.robots.device.Device``): the context manager connects
when needed and disconnects on exit, also when the body raises, and leaves an already-connected device connected
on entry."""

from __future__ import annotations

import pytest

from robolearn.robots.device import Device
from robolearn.robots.random_robot import RandomRobot
from robolearn.teleop.teleoperator import Teleoperator


def test_robot_and_teleoperator_are_devices():
    assert issubclass(RandomRobot, Device) and issubclass(Teleoperator, Device)


def test_context_manager_connects_and_disconnects_even_on_error():
    robot = RandomRobot(["shoulder.pos", "gripper.pos"], ["shoulder.pos", "gripper.pos"])
    with robot as entered:
        assert entered is robot and robot.is_connected
        robot.get_observation()
    assert not robot.is_connected
    with pytest.raises(KeyError):
        with robot:
            raise KeyError("boom")
    assert not robot.is_connected
    robot.disconnect()  # safe twice


def test_already_connected_device_is_not_reconnected():
    calls = []

    class Counting(Device):
        def __init__(self):
            super().__init__(id="unit0")
            self._on = False

        @property
        def is_connected(self):
            return self._on

        def connect(self, calibrate=True):
            calls.append("connect")
            self._on = True

        def disconnect(self):
            calls.append("disconnect")
            self._on = False

    dev = Counting()
    dev.connect()
    with dev:
        pass
    assert calls == ["connect", "disconnect"] and dev.id == "unit0"
