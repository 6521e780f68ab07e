"""RandomRobot: features, seeded readings, frame shapes, and the missing-action-key error."""

import numpy as np
import pytest

from robolearn.robots.random_robot import RandomRobot
from robolearn.robots.robot import RobotError


def test_features_readings_and_actions():
    robot = RandomRobot(["a", "b"], ["x"], {"front": (4, 6)}, seed=3)
    assert robot.observation_features == {"a": float, "b": float, "front": (4, 6, 3)}
    assert robot.action_features == {"x": float}
    robot.connect()
    assert robot.is_connected
    obs = robot.get_observation()
    assert obs["front"].shape == (4, 6, 3) and obs["front"].dtype == np.uint8
    again = RandomRobot(["a", "b"], ["x"], {"front": (4, 6)}, seed=3).get_observation()
    assert obs["a"] == again["a"] and np.array_equal(obs["front"], again["front"])
    assert robot.get_observation()["a"] != obs["a"]  # new values at every read
    assert robot.send_action({"x": 0.5}) == {"x": 0.5}
    with pytest.raises(RobotError, match=r"missing action keys \['x'\]"):
        robot.send_action({"y": 1.0})
    robot.disconnect()
    assert not robot.is_connected
