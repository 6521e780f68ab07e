"""Closed-loop rollouts of a policy in a batch of gymnasium envs.

One call runs one batch: every env is reset with its own seed, then the policy is queried once per step
for the whole batch. An env that terminates or truncates is masked: its later rewards and infos are
ignored (gymnasium's vector autoreset restarts it on the next step; that new episode is not counted). The
loop stops when every env is done or after ``max_steps`` steps (then the unfinished episodes count as
truncated).
"""

from __future__ import annotations

import time

from typing import Any, Protocol, Sequence

import gymnasium as gym
import numpy as np
import torch

from robolearn.envs.expert_wrapper import EXPERT_ACTION_KEY
from robolearn.envs.factory import EnvSpec
from robolearn.envs.observation import preprocess_observation
from robolearn.eval.metrics import EpisodeResult
from robolearn.policies.scripted.policy import EXPERT_BATCH_KEY  # the in-env expert's action (B, A)



class Policy(Protocol):
    """What the rollout needs from a policy (``PolicyModule`` and ``ScriptedPolicy`` both qualify)."""

    def reset(self) -> None: ...

    def select_action(self, observation: dict[str, Any]) -> torch.Tensor: ...


def _policy_device(policy: Any) -> torch.device:
    if isinstance(policy, torch.nn.Module):
        for p in policy.parameters():
            return p.device
        for b in policy.buffers():
            return b.device
    return torch.device("cpu")


def _info_array(info: dict[str, Any], key: str, n: int) -> np.ndarray | None:
    """``info[key]`` of a vector env as an ``(n,)`` array; entries whose ``_key`` mask is False become NaN."""
    if key not in info:
        return None
    values = np.asarray(info[key], dtype=np.float64).reshape(n)
    mask = info.get(f"_{key}")
    if mask is not None:
        values = np.where(np.asarray(mask, dtype=bool), values, np.nan)
    return values


def rollout_batch(vec_env: gym.vector.VectorEnv, policy: Policy, spec: EnvSpec, seeds: Sequence[int],
                  episode_indices: Sequence[int], policy_keys: set[str] | None = None,
                  max_steps: int | None = None, render_envs: Sequence[int] = (),
                  timings: list[float] | None = None) -> tuple[list[EpisodeResult], dict[int, list[np.ndarray]]]:
    """Roll out one episode in each env of ``vec_env`` (``B = vec_env.num_envs``).

    Args:
        vec_env: a vector env built by :func:`robolearn.envs.factory.make_vec_env`.
        policy: ``reset()`` is called once before the episode; ``select_action(batch)`` gets
            ``{dataset key: tensor (B, ...)}`` (cameras float (B, C, H, W) in [0, 1]), plus ``task`` (list of
            B str) when the env has one and ``expert.action`` (B, A) when the env runs a scripted expert,
            and returns ``(B, action_dim)`` actions in the env's units.
        spec: the env config (features map, success rule, time limit).
        seeds: ``B`` reset seeds.
        episode_indices: ``B`` episode indices recorded in the results.
        policy_keys: dataset keys the policy consumes (others are dropped); None passes every mapped key.
        max_steps: step cap (default ``spec.max_episode_steps``).
        render_envs: env positions whose frames (``env.render()``, uint8 (H, W, 3)) are collected from the
            reset state to the end of their episode.
        timings: when given, the wall time (seconds) of each ``select_action`` call, the actions copied to the
            host included, is appended to it (one call per step for the whole batch).

    Returns:
        ``(results, frames)``: one :class:`EpisodeResult` per env, and ``{env position: [frame, ...]}``.

    Raises:
        ValueError: ``seeds``/``episode_indices`` do not have ``B`` entries, or the policy returns actions of
            the wrong shape.
    """
    n = vec_env.num_envs
    if len(seeds) != n or len(episode_indices) != n:
        raise ValueError(f"rollout_batch: need {n} seeds and episode indices, got {len(seeds)} and {len(episode_indices)}")
    max_steps = spec.max_episode_steps if max_steps is None else int(max_steps)
    device = _policy_device(policy)
    action_shape = vec_env.action_space.shape

    obs, info = vec_env.reset(seed=[int(s) for s in seeds])
    policy.reset()
    done = np.zeros(n, dtype=bool)
    sum_reward = np.zeros(n)
    max_reward = np.full(n, -np.inf)
    success = np.zeros(n, dtype=bool)
    length = np.zeros(n, dtype=int)
    max_info = {k: np.full(n, -np.inf) for k in spec.max_info_keys}
    frames: dict[int, list[np.ndarray]] = {i: [] for i in render_envs}

    def render(active: np.ndarray) -> None:
        wanted = [i for i in frames if active[i]]
        if not wanted:
            return
        envs = getattr(vec_env, "envs", None)  # SyncVectorEnv: render only the recorded envs
        images = {i: envs[i].render() for i in wanted} if envs is not None else dict(enumerate(vec_env.call("render")))
        for i in wanted:
            frames[i].append(np.asarray(images[i]))

    render(~done)
    with torch.inference_mode():
        for _ in range(max_steps):
            batch: dict[str, Any] = preprocess_observation(obs, spec.features_map, keys=policy_keys, device=device)
            if spec.task is not None:
                batch["task"] = [spec.task] * n
            if EXPERT_ACTION_KEY in info:
                batch[EXPERT_BATCH_KEY] = torch.as_tensor(np.asarray(info[EXPERT_ACTION_KEY], dtype=np.float32),
                                                          device=device)
            t0 = time.perf_counter()
            action = policy.select_action(batch)
            action = action.detach().cpu().numpy() if isinstance(action, torch.Tensor) else np.asarray(action)
            if timings is not None:
                timings.append(time.perf_counter() - t0)
            if action.shape != tuple(action_shape):
                raise ValueError(f"policy returned actions of shape {action.shape}; env {spec.name!r} expects "
                                 f"{tuple(action_shape)} (batch, action_dim)")
            obs, reward, terminated, truncated, info = vec_env.step(action.astype(vec_env.action_space.dtype))
            active = ~done
            reward = np.asarray(reward, dtype=np.float64)
            sum_reward[active] += reward[active]
            max_reward[active] = np.maximum(max_reward[active], reward[active])
            length[active] += 1
            flag = _info_array(info, spec.success_key, n)
            if flag is not None:
                ok = flag >= spec.success_threshold if spec.success_threshold is not None else flag > 0.5
                success |= active & ok  # NaN (key absent for that env) compares False
            for key in spec.max_info_keys:
                values = _info_array(info, key, n)
                if values is not None:
                    max_info[key][active] = np.fmax(max_info[key][active], values[active])
            render(active)
            done |= np.asarray(terminated, dtype=bool) | np.asarray(truncated, dtype=bool)
            if done.all():
                break

    results = [
        EpisodeResult(
            episode_index=int(episode_indices[i]), seed=int(seeds[i]), sum_reward=float(sum_reward[i]),
            max_reward=float(max_reward[i]) if length[i] else 0.0, success=bool(success[i]), length=int(length[i]),
            task=spec.task, max_info={k: float(v[i]) for k, v in max_info.items()},
        )
        for i in range(n)
    ]
    return results, frames
