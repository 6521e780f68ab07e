"""Build ``gymnasium.vector`` envs for evaluation from an env config (``conf/env/<name>.yaml``).

An :class:`EnvSpec` holds everything evaluation needs to know about an env: how to make one instance
(a Hydra ``_partial_`` such as ``gymnasium.make`` with an id and kwargs), how its observations map to dataset
keys, its control rate, its time limit, how success is read from ``info``, and optionally the scripted
expert that ``policy=scripted`` runs inside it.
"""

from __future__ import annotations

import copy
import functools
from typing import Any, Callable, Mapping, Sequence

import gymnasium as gym

from robolearn.envs.expert_wrapper import ExpertActionWrapper
from robolearn.envs.hold import HoldWhenDone
from robolearn.envs.observation import env_policy_features, flatten_observation
from robolearn.features import OBS_IMAGE, PolicyFeature

CAMERA_KEY_PREFIX = "observation.images."


def make_gym(id: str, package: str | None = None, **kwargs: Any) -> gym.Env:
    """``gymnasium.make(id, **kwargs)`` after importing the package that registers ``id``.

    Args:
        id: a registered env id, e.g. ``gym_pusht/PushT-v0``.
        package: module to import first; default: the id's namespace (``gym_pusht``, ``gym_aloha``).
        kwargs: passed to ``gymnasium.make`` (``max_episode_steps``, env constructor kwargs).

    Raises:
        ImportError: the package is not installed (the message names the pip package to install).
    """
    import importlib

    package = package or (id.split("/", 1)[0] if "/" in id else None)
    if package:
        try:
            importlib.import_module(package)
        except ImportError as e:
            raise ImportError(f"env {id!r} needs the package {package!r}: pip install {package.replace('_', '-')}") from e
    return gym.make(id, **kwargs)


class EnvSpec:
    """One evaluation env, as configured in ``conf/env/<name>.yaml``.

    Args:
        make: ``make(max_episode_steps=int) -> gym.Env`` (e.g. ``gymnasium.make`` partially applied to an id
            and its kwargs, or an env class).
        features_map: ``{native observation key: dataset key}``; nested observation dicts are mapped with nested
            mappings (``{"pixels": {"top": "observation.images.top"}}``) or dotted keys (``"pixels.top"``), see
            :mod:`robolearn.envs.observation`.
        fps: control rate, Hz (also the frame rate of the recorded videos).
        max_episode_steps: time limit in env steps; passed to ``make`` and enforced by the rollout loop.
        task: the language task of the env (lerobot's ``task``), given to policies and used to group results.
        success_key: ``info`` key read for success after each step.
        success_threshold: when set, success is ``info[success_key] >= success_threshold`` (PushT: coverage
            >= 0.95, lerobot's and Diffusion Policy's convention); when None, ``info[success_key]`` is a bool.
        max_info_keys: ``info`` keys whose per-episode maximum is reported as ``max_<key>`` (PushT: coverage).
        expert: ``expert(env) -> ScriptedExpert`` for ``policy=scripted``, or None when the env has none.
        name: label used in messages and results.
        no_camera_kwargs: keyword arguments for ``make`` that turn the per-step camera images off (e.g.
            ``{observe_camera: false}``), used by :meth:`without_cameras` when the policy reads no camera, so no
            frame is rendered per step; ``env.render()`` must still work for videos. None: the env always
            renders its cameras.

    Raises:
        ValueError: empty ``features_map``, non-positive ``fps`` or ``max_episode_steps``.
    """

    def __init__(self, make: Callable[..., gym.Env], features_map: Mapping[str, str], fps: int,
                 max_episode_steps: int, task: str | None = None, success_key: str = "is_success",
                 success_threshold: float | None = None, max_info_keys: Sequence[str] = (),
                 expert: Callable[[gym.Env], Any] | None = None, name: str = "env",
                 no_camera_kwargs: Mapping[str, Any] | None = None) -> None:
        if not features_map:
            raise ValueError(f"env {name!r}: features_map is empty; map at least one observation key")
        if int(fps) <= 0 or int(max_episode_steps) <= 0:
            raise ValueError(f"env {name!r}: fps ({fps}) and max_episode_steps ({max_episode_steps}) must be > 0")
        self.make = make
        self.features_map = {str(k): str(v) for k, v in flatten_observation(features_map).items()}
        self.fps = int(fps)
        self.max_episode_steps = int(max_episode_steps)
        self.task = task
        self.success_key = success_key
        self.success_threshold = None if success_threshold is None else float(success_threshold)
        self.max_info_keys = [str(k) for k in max_info_keys]
        self.expert = expert
        self.name = name
        self.no_camera_kwargs = None if no_camera_kwargs is None else dict(no_camera_kwargs)

    @property
    def camera_keys(self) -> list[str]:
        """Dataset keys of the mapped cameras (``observation.images.*``, and lerobot's single ``observation.image``)."""
        return [key for key in self.features_map.values() if key == OBS_IMAGE or key.startswith(CAMERA_KEY_PREFIX)]

    def without_cameras(self) -> "EnvSpec":
        """This env with its per-step camera images turned off (``no_camera_kwargs``) and the camera keys removed
        from ``features_map``; ``self`` when it has no cameras or no ``no_camera_kwargs``."""
        cameras = set(self.camera_keys)
        if not cameras or self.no_camera_kwargs is None:
            return self
        make, extra = self.make, self.no_camera_kwargs
        spec = copy.copy(self)
        spec.make = functools.partial(_make_with, make, extra)
        spec.features_map = {k: v for k, v in self.features_map.items() if v not in cameras}
        return spec

    def with_make_kwargs(self, kwargs: Mapping[str, Any], name: str | None = None) -> "EnvSpec":
        """This env with extra keyword arguments for ``make`` (they take precedence over the config's), e.g. an
        evaluation suite's condition ``{"perturbation": {...}}``; ``name`` renames it. ``self`` is not changed.

        Raises:
            TypeError: ``kwargs`` is not a mapping.
        """
        if not isinstance(kwargs, Mapping):
            raise TypeError(f"with_make_kwargs needs a mapping, got {kwargs!r}")
        spec = copy.copy(self)
        if kwargs:
            spec.make = functools.partial(_make_with, self.make, dict(kwargs))
        if name is not None:
            spec.name = name
        return spec

    def with_task(self, task: str) -> "EnvSpec":
        """This env with another language instruction (given to policies as ``batch["task"]`` and recorded with the
        episodes), e.g. an evaluation suite's paraphrase; ``self`` is not changed.

        Raises:
            ValueError: ``task`` is not a non-empty string.
        """
        if not (isinstance(task, str) and task.strip()):
            raise ValueError(f"env {self.name!r}: task must be a non-empty instruction string, got {task!r}")
        spec = copy.copy(self)
        spec.task = task
        return spec

    def make_env(self, with_expert: bool = False) -> gym.Env:
        """One env instance (with :class:`ExpertActionWrapper` when ``with_expert``).

        Raises:
            ValueError: ``with_expert`` but the env config has no ``expert``.
        """
        env = self.make(max_episode_steps=self.max_episode_steps)
        if with_expert:
            if self.expert is None:
                raise ValueError(f"env {self.name!r} has no scripted expert (env.expert is null); "
                                 "policy=scripted needs one")
            env = ExpertActionWrapper(env, self.expert)
        return env

    def features(self, observation_space: gym.Space) -> dict[str, PolicyFeature]:
        """The mapped features ``{dataset key: PolicyFeature}`` of an env with this observation space."""
        return env_policy_features(observation_space, self.features_map)


def _make_with(make: Callable[..., gym.Env], extra: Mapping[str, Any], **kwargs: Any) -> gym.Env:
    return make(**{**kwargs, **extra})


class _EnvThunk:
    """Picklable env constructor for ``AsyncVectorEnv`` workers."""

    def __init__(self, spec: EnvSpec, with_expert: bool, hold_when_done: bool) -> None:
        self.spec, self.with_expert, self.hold_when_done = spec, with_expert, hold_when_done

    def __call__(self) -> gym.Env:
        env = self.spec.make_env(self.with_expert)
        return HoldWhenDone(env) if self.hold_when_done else env


def make_vec_env(spec: EnvSpec, num_envs: int, use_async: bool = False, with_expert: bool = False,
                 context: str | None = None, hold_when_done: bool = False) -> gym.vector.VectorEnv:
    """``num_envs`` copies of the env in a ``SyncVectorEnv``, or an ``AsyncVectorEnv`` (one worker process per
    env) when ``use_async`` and ``num_envs > 1``.

    Args:
        spec: the env config.
        num_envs: batch size ``B`` (>= 1).
        use_async: use subprocess workers.
        with_expert: wrap each env with the spec's scripted expert (for ``policy=scripted``).
        context: multiprocessing start method for async workers (None: the platform default).
        hold_when_done: wrap each env in :class:`~robolearn.envs.hold.HoldWhenDone`, so an env whose episode
            ended is not simulated (nor rendered) again until the next seeded reset, while the rest of its
            batch runs on (evaluation: one episode per env).

    Raises:
        ValueError: ``num_envs < 1``.
    """
    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}")
    fns = [_EnvThunk(spec, with_expert, hold_when_done) for _ in range(num_envs)]
    if use_async and num_envs > 1:
        return gym.vector.AsyncVectorEnv(fns, context=context)
    return gym.vector.SyncVectorEnv(fns)
