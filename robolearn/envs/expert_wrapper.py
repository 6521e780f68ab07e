"""Run a :class:`~robolearn.envs.expert.ScriptedExpert` inside an env and pass its action out through ``info``.

The expert needs the simulator it is attached to, so it must live in the process that owns the env. This
wrapper builds it around the env and, after every ``reset`` and ``step``, puts the expert's action for the
new state in ``info["expert_action"]``. A ``gymnasium.vector`` env (Sync or Async) stacks it into a
``(B, action_dim)`` array, which :class:`robolearn.policies.scripted.ScriptedPolicy` returns as its action.
"""

from __future__ import annotations

from typing import Any, Callable

import gymnasium as gym
import numpy as np

from robolearn.envs.expert import ScriptedExpert

EXPERT_ACTION_KEY = "expert_action"


class ExpertActionWrapper(gym.Wrapper):
    """Attach a scripted expert to ``env``; its next action appears in ``info["expert_action"]``.

    Args:
        env: the env to drive.
        expert_factory: ``expert_factory(env) -> ScriptedExpert`` (a class or a Hydra ``_partial_``).

    Raises:
        TypeError: the factory does not return a :class:`ScriptedExpert`.
    """

    def __init__(self, env: gym.Env, expert_factory: Callable[[gym.Env], ScriptedExpert]) -> None:
        super().__init__(env)
        expert = expert_factory(env)
        if not isinstance(expert, ScriptedExpert):
            raise TypeError(f"expert factory {expert_factory!r} returned {type(expert).__name__}, "
                            "expected a robolearn.envs.expert.ScriptedExpert")
        self.expert = expert

    def _with_action(self, obs: Any, info: dict[str, Any]) -> dict[str, Any]:
        action = np.asarray(self.expert.act(obs), dtype=np.float32)
        return {**info, EXPERT_ACTION_KEY: action}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self.expert.reset()
        return obs, self._with_action(obs, info)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, self._with_action(obs, info)
