"""Robots behind one interface (:class:`~robolearn.robots.robot.Robot`): real SO-100/SO-101 arms and simulators."""

from robolearn.robots.robot import Robot, RobotError

__all__ = ["Robot", "RobotError"]
