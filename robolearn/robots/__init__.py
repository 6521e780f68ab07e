"""Robots behind one interface (:class:`~robolearn.robots.robot.Robot`): real SO-100/SO-101 arms and simulators.

Hardware classes load lazily (``from robolearn.robots import SOFollower``) so importing this package never
imports ``scservo_sdk`` or OpenCV.
"""

from robolearn.robots.robot import Robot, RobotError

__all__ = ["Robot", "RobotError", "SOFollower"]


def __getattr__(name: str):
    if name == "SOFollower":
        from robolearn.robots.so_follower import SOFollower

        return SOFollower
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
