"""Recording, replay and deployment on robots (real or simulated): the control loop, keyboard events, user
feedback and the policy deployment loop used by ``record.py`` and ``eval.py``."""

from robolearn.record.deploy import deploy
from robolearn.record.events import KeyboardEvents
from robolearn.record.loop import LoopStats, RateKeeper, control_loop, precise_sleep

__all__ = ["KeyboardEvents", "LoopStats", "RateKeeper", "control_loop", "deploy", "precise_sleep"]
