"""The scripted-expert interface shared by ``eval.py policy=scripted``, ``record.py teleop=scripted`` and dataset
generators.

A scripted expert reads the privileged state of a simulator it is attached to (object poses, joint angles) and
returns the action a demonstrator would take, in the env's own action space. It runs in the process that owns
the env: in vectorized evaluation the env wrapper calls it and passes the action through ``info``.
"""

from __future__ import annotations

import abc
from typing import Any

import numpy as np


class ScriptedExpert(abc.ABC):
    """A demonstrator bound to one gymnasium env instance.

    Args:
        env: the env (any wrapper around it); experts read ``env.unwrapped`` state.
    """

    def __init__(self, env: Any) -> None:
        self.env = env

    @abc.abstractmethod
    def reset(self) -> None:
        """Start a new plan; called right after every ``env.reset``."""

    @abc.abstractmethod
    def act(self, observation: Any) -> np.ndarray:
        """The next action for the env's current state, an array in ``env.action_space``.

        Args:
            observation: the env's latest native observation (experts may ignore it and read the simulator).
        """
