"""Fill a replay buffer with the transitions of a LeRobotDataset (offline demonstrations for RLPD / HIL-SERL).

Frame ``t`` of an episode becomes the transition ``(observation_t, action_t, next.reward_t, observation_{t+1})``
(lerobot's ``next.reward`` of frame ``t`` is the reward received after ``action_t``). The last frame of an episode
has ``next.done = True`` and its own observation as next observation (masked out of the TD target by ``done``), as
lerobot's dataset-to-buffer conversion does. A dataset column ``next.done`` marks additional terminal frames.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from robolearn.features import ACTION
from robolearn.rl.replay import DONE, INFO_PREFIX, REWARD, TRUNCATED, ReplayBuffer, is_image_key


def dataset_transitions(dataset: Any, observation_keys: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
    """All transitions of a map-style :class:`~robolearn.datasets.LeRobotDataset` (no ``delta_timestamps``), in
    frame order, as batched tensors (see the module docstring).

    Args:
        dataset: the dataset; items hold ``observation.*``, ``action``, ``episode_index``, optionally
            ``next.reward`` (0 when absent), ``next.done`` and ``complementary_info.*``.
        observation_keys: the observation keys to keep (default: every ``observation.*`` key of the items).

    Returns:
        ``{key: (N, ...)}`` with ``N = len(dataset)``; cameras uint8 ``(N, C, H, W)``.

    Raises:
        ValueError: the dataset has windows (``delta_timestamps``) or is empty.
        KeyError: an item lacks ``action`` or a requested observation key (names the key and the item's keys).
    """
    if getattr(dataset, "delta_timestamps", None):
        raise ValueError("dataset_transitions needs single frames: build the LeRobotDataset without delta_timestamps")
    n = len(dataset)
    if n == 0:
        raise ValueError("dataset_transitions: the dataset has no frames")
    frames = [dataset[i] for i in range(n)]
    first = frames[0]
    keys = list(observation_keys) if observation_keys is not None else sorted(
        k for k in first if k.startswith("observation.") and not k.endswith("_is_pad"))
    for key in [*keys, ACTION, "episode_index"]:
        if key not in first:
            raise KeyError(f"dataset item has no key '{key}'; item keys: {sorted(first)}")
    info_keys = sorted(k for k in first if k.startswith(INFO_PREFIX))

    def stack(key: str) -> torch.Tensor:
        values = [torch.as_tensor(f[key]) for f in frames]
        if is_image_key(key) and values[0].is_floating_point():
            values = [(v * 255.0).round_().clamp_(0, 255).to(torch.uint8) for v in values]
        return torch.stack(values)

    episode = torch.as_tensor([int(f["episode_index"]) for f in frames])
    last = torch.ones(n, dtype=torch.bool)
    last[:-1] = episode[1:] != episode[:-1]
    succ = torch.arange(n) + 1
    succ[last] = torch.nonzero(last).squeeze(1)  # final frame: its own observation
    out: dict[str, torch.Tensor] = {}
    for key in keys:
        obs = stack(key)
        out[key] = obs
        out["next." + key] = obs[succ]
    out[ACTION] = stack(ACTION).float()
    out[REWARD] = stack(REWARD).reshape(n).float() if REWARD in first else torch.zeros(n)
    done = last.clone()
    if DONE in first:
        done |= stack(DONE).reshape(n).bool()
    out[DONE] = done
    out[TRUNCATED] = torch.zeros(n, dtype=torch.bool)
    for key in info_keys:
        out[key] = stack(key)
    return out


def buffer_from_dataset(dataset: Any, capacity: int | None = None, observation_keys: Sequence[str] | None = None,
                        **buffer_kwargs: Any) -> ReplayBuffer:
    """A :class:`ReplayBuffer` holding every transition of ``dataset`` (see :func:`dataset_transitions`).

    Args:
        dataset: a map-style LeRobotDataset without windows.
        capacity: buffer capacity (default: ``len(dataset)``; a smaller one keeps the last frames).
        observation_keys: observation keys to keep (default: all).
        buffer_kwargs: further :class:`ReplayBuffer` arguments (``device``, ``n_step``, ``discount``, ``drq_pad``...).
            ``optimize_memory`` is not accepted: final frames use their own observation as next observation.

    Raises:
        ValueError: ``optimize_memory`` requested; errors of :func:`dataset_transitions`.
    """
    if buffer_kwargs.get("optimize_memory"):
        raise ValueError("buffer_from_dataset stores next observations explicitly; optimize_memory is not supported")
    transitions = dataset_transitions(dataset, observation_keys)
    buf = ReplayBuffer(capacity or len(dataset), **buffer_kwargs)
    buf.extend(transitions)
    return buf
