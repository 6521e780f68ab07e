"""Teleoperators behind one interface (:class:`~robolearn.teleop.teleoperator.Teleoperator`)."""

from robolearn.teleop.teleoperator import Teleoperator

__all__ = ["Teleoperator"]
