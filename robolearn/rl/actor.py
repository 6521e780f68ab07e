"""The environment side of online RL: step a gymnasium env with the current policy and emit replay transitions.

Observations are mapped to dataset keys with the env config's ``features_map`` (``{native dotted key: dataset
key}``, e.g. ``{"agent_pos": "observation.state", "environment_state": "observation.environment_state"}``) through
:mod:`robolearn.envs.observation`: cameras become float32 ``(C, H, W)`` in [0, 1], states float32.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from robolearn.envs.observation import preprocess_observation

ActionFn = Callable[[dict[str, Tensor]], Tensor]


def mapped_features(features_map: Mapping[str, str | None]) -> dict[str, str]:
    """``{native dotted observation key: dataset key}`` as plain strings, without the keys mapped to None: a config
    drops a key its parent maps with ``<key>: null`` (``conf/experiment/hil_serl_so101_real.yaml`` drops the
    simulator's ``environment_state``)."""
    return {str(k): str(v) for k, v in features_map.items() if v is not None}


@dataclass
class EpisodeStats:
    """One finished episode: ``episode_return`` (sum of rewards), ``success`` (``info[success_key]`` at any step),
    ``length`` (env steps), ``env_step`` (the actor's total env steps when it ended), ``sim_success``
    (``info["sim_success"]`` at any step: the simulator's own success when the env reports it, e.g.
    :class:`robolearn.rl.robot_env.RobotEnv` on a simulated robot; None when it never does)."""

    episode_return: float
    success: bool
    length: int
    env_step: int
    sim_success: bool | None = None


@dataclass
class EnvActor:
    """Steps ``env`` one transition at a time and returns it in :mod:`robolearn.rl.replay`'s layout.

    Args:
        env: a gymnasium env (not vectorized) with a ``Box`` action space.
        features_map: ``{native dotted observation key: dataset key}``.
        seed: seed of the first ``reset`` and of the action space's random sampler.
        success_key: ``info`` key holding a bool success flag (``is_success``, as gym-pusht / lerobot envs).
        intervention_penalty: > 0 turns on RLIF's intervention reward (Luo et al. 2023, "RLIF: Interactive
            imitation learning as reinforcement learning"): at a step where a teleoperator takes over
            (``info["takeover_started"]``, :class:`robolearn.rl.robot_env.RobotEnv`), the policy's own action, which
            was not executed, becomes an extra transition with reward ``-intervention_penalty`` that ends its
            episode (``next.done``; no bootstrapping from a state the action did not cause), in :attr:`rejected`.
            0 (default): none.

    Attributes:
        env_steps: total env steps taken; ``episodes``: finished :class:`EpisodeStats`, oldest first.
        rejected: the extra transition of the last :meth:`step` (see ``intervention_penalty``), or None.
    """

    env: gym.Env
    features_map: Mapping[str, str]
    seed: int = 0
    success_key: str = "is_success"
    intervention_penalty: float = 0.0
    env_steps: int = 0
    episodes: list[EpisodeStats] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not isinstance(self.env.action_space, gym.spaces.Box):
            raise TypeError(f"EnvActor needs a Box action space, got {self.env.action_space}")
        self.features_map = mapped_features(self.features_map)
        self.env.action_space.seed(int(self.seed))
        if not (np.isfinite(self.intervention_penalty) and self.intervention_penalty >= 0):
            raise ValueError(f"intervention_penalty must be a finite number >= 0, got {self.intervention_penalty}")
        self.rejected: dict[str, Tensor] | None = None
        self._obs: dict[str, Tensor] | None = None
        self._return = 0.0
        self._length = 0
        self._success = False
        self._sim_success: bool | None = None
        self._next_seed: int | None = int(self.seed)

    def observation(self, native_obs: Any) -> dict[str, Tensor]:
        """One native observation -> ``{dataset key: tensor without batch axis}``."""
        batched = _add_batch_axis(native_obs)
        return {k: v[0] for k, v in preprocess_observation(batched, self.features_map).items()}

    @property
    def current_observation(self) -> dict[str, Tensor]:
        """The observation the next action will be taken from (resets the env on first use)."""
        if self._obs is None:
            native, _ = self.env.reset(seed=self._next_seed)
            self._next_seed = None
            self._obs = self.observation(native)
            self._return, self._length, self._success = 0.0, 0, False
            self._sim_success = None
        return self._obs

    def reset(self) -> dict[str, Tensor]:
        """Abandon the current episode (not recorded in ``episodes``) and start a new one; returns its observation."""
        self._obs = None
        return self.current_observation

    def random_action(self) -> np.ndarray:
        """A uniform sample of the action space (warm-up exploration)."""
        return np.asarray(self.env.action_space.sample(), dtype=np.float32)

    def step(self, action_fn: ActionFn | None = None) -> tuple[dict[str, Tensor], EpisodeStats | None]:
        """Take one env step and return ``(transition, finished episode or None)``.

        Args:
            action_fn: maps a batched observation ``{key: (1, ...)}`` to an action ``(1, A)`` in env units (e.g.
                ``policy.sample_action``); None samples the action space uniformly.

        The transition holds ``observation.*``, ``action`` (float32, clipped to the action space), ``next.reward``,
        ``next.done`` (terminated), ``next.truncated``, ``next.observation.*`` and
        ``complementary_info.is_intervention``: 1 when the env reports that a teleoperator drove the step
        (``info["is_intervention"]``, :class:`robolearn.rl.robot_env.RobotEnv`); the transition's ``action`` is then
        the executed one, ``info["teleop_action"]`` (in the env's action space), not the policy's. At an episode end
        the env is reset and the next call starts the new episode. :attr:`rejected` is set when
        ``intervention_penalty`` applies to this step, else None.

        Raises:
            ValueError: the action has the wrong number of elements.
        """
        obs = self.current_observation
        if action_fn is None:
            action = self.random_action()
        else:
            batched = {k: v[None] for k, v in obs.items()}
            action = action_fn(batched).detach().to("cpu", torch.float32).numpy().reshape(-1)
        space = self.env.action_space
        if action.size != int(np.prod(space.shape)):
            raise ValueError(f"action has {action.size} elements, the env's action space is {space.shape}")
        action = np.clip(action.reshape(space.shape), space.low, space.high).astype(np.float32)
        native, reward, terminated, truncated, info = self.env.step(action)
        proposed = action
        intervention = bool(info.get("is_intervention", False))
        if intervention and info.get("teleop_action") is not None:
            executed = np.asarray(info["teleop_action"], dtype=np.float32).reshape(space.shape)
            if np.isfinite(executed).all():
                action = np.clip(executed, space.low, space.high).astype(np.float32)
        next_obs = self.observation(native)
        self.env_steps += 1
        self._return += float(reward)
        self._length += 1
        self._success = self._success or bool(info.get(self.success_key, False))
        if "sim_success" in info:
            self._sim_success = bool(self._sim_success) or bool(info["sim_success"])
        transition = {
            **obs,
            "action": torch.from_numpy(action),
            "next.reward": torch.tensor(float(reward)),
            "next.done": torch.tensor(bool(terminated)),
            "next.truncated": torch.tensor(bool(truncated) and not bool(terminated)),
            **{"next." + k: v for k, v in next_obs.items()},
            "complementary_info.is_intervention": torch.tensor(1.0 if intervention else 0.0),
        }
        self.rejected = None
        if self.intervention_penalty > 0 and intervention and info.get("takeover_started", False):
            self.rejected = {**transition, "action": torch.from_numpy(proposed),
                             "next.reward": torch.tensor(-float(self.intervention_penalty)),
                             "next.done": torch.tensor(True), "next.truncated": torch.tensor(False),
                             "complementary_info.is_intervention": torch.tensor(0.0)}
        finished = None
        if terminated or truncated:
            finished = EpisodeStats(self._return, self._success, self._length, self.env_steps, self._sim_success)
            self.episodes.append(finished)
            self._obs = None
        else:
            self._obs = next_obs
        return transition, finished


def _add_batch_axis(obs: Any) -> Any:
    if isinstance(obs, Mapping):
        return {k: _add_batch_axis(v) for k, v in obs.items()}
    return np.asarray(obs)[None]
