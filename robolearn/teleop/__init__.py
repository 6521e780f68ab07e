"""Teleoperators behind one interface (:class:`~robolearn.teleop.teleoperator.Teleoperator`).

``SOLeader`` loads lazily (no ``scservo_sdk`` import at package import).
"""

from robolearn.teleop.teleoperator import Teleoperator

__all__ = ["SOLeader", "Teleoperator"]


def __getattr__(name: str):
    if name == "SOLeader":
        from robolearn.teleop.so_leader import SOLeader

        return SOLeader
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
