"""``HoldWhenDone``: stop simulating an env whose episode has ended until it is reset with a seed.

Evaluation steps a batch of envs together until every episode has ended. Without this wrapper, an env
whose episode ended early is reset by gymnasium's vector autoreset and simulated (and rendered) for the
rest of the batch, only for its results to be ignored. With it, that env costs nothing until the next
batch starts.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym


class HoldWhenDone(gym.Wrapper):
    """After ``terminated`` or ``truncated``, repeat the final transition instead of simulating.

    - ``step`` after the end returns the final observation and info again, reward 0.0, and the final
      ``terminated``/``truncated`` flags, without stepping the wrapped env.
    - ``reset()`` with neither ``seed`` nor ``options`` after the end (what a ``gymnasium.vector`` env's
      autoreset calls) returns the final observation and info without resetting.
    - ``reset(seed=...)`` or ``reset(options=...)`` always starts a new episode, as does any reset before
      the episode has ended.

    Use it where every episode is started with an explicit seed (:func:`robolearn.eval.evaluate_policy`);
    a caller that relies on seedless resets starting new episodes must not use it.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self._final: tuple[Any, bool, bool, dict[str, Any]] | None = None

    @property
    def holding(self) -> bool:
        """True between the end of an episode and the next seeded reset."""
        return self._final is not None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if self._final is not None and seed is None and options is None:
            obs, _, _, info = self._final
            return obs, info
        self._final = None
        return self.env.reset(seed=seed, options=options)

    def step(self, action):
        if self._final is not None:
            obs, terminated, truncated, info = self._final
            return obs, 0.0, terminated, truncated, info
        obs, reward, terminated, truncated, info = self.env.step(action)
        if terminated or truncated:
            self._final = (obs, bool(terminated), bool(truncated), info)
        return obs, reward, terminated, truncated, info
