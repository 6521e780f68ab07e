"""A thread-safe queue of timestep-stamped actions into which overlapping chunks are merged.

Timesteps count executed actions: the observation sent when ``k`` actions have been executed carries
``timestep = k`` and the server stamps the chunk predicted from it ``k, k+1, ..., k+n-1``. When a chunk
arrives, actions for timesteps already executed are dropped (they came too late), timesteps still queued
are combined with a merge function (:mod:`robolearn.inference.merge`), and the rest are appended.
"""

from __future__ import annotations

import threading
from typing import Sequence

import torch
from torch import Tensor

from robolearn.inference.merge import MergeFn


class TimedActionQueue:
    """Queue of ``(timestep, action)`` pairs, popped in timestep order.

    Args:
        merge_fn: ``f(a_old, a_new) -> a`` for a timestep present in the queue and in a new chunk.
    """

    def __init__(self, merge_fn: MergeFn):
        self.merge_fn = merge_fn
        self._actions: dict[int, Tensor] = {}
        self._next_timestep = 0  # timestep of the next action to execute (= number executed so far)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._actions)

    @property
    def next_timestep(self) -> int:
        """Timestep of the next action to execute; the ``timestep`` an observation taken now carries."""
        with self._lock:
            return self._next_timestep

    def merge_chunk(self, timesteps: Sequence[int] | Tensor, actions: Tensor) -> dict[str, int]:
        """Merge a chunk ``actions`` ``(n, A)`` stamped with ``timesteps`` ``(n,)``.

        Returns:
            counts ``{"dropped": ..., "merged": ..., "added": ...}``.
        Raises:
            ValueError: ``actions`` is not 2-D or its length differs from ``timesteps``.
        """
        ts = [int(t) for t in (timesteps.tolist() if isinstance(timesteps, Tensor) else timesteps)]
        if actions.dim() != 2 or actions.shape[0] != len(ts):
            raise ValueError(f"actions must be (n, action_dim) with n = len(timesteps) = {len(ts)}, "
                             f"got shape {tuple(actions.shape)}")
        counts = {"dropped": 0, "merged": 0, "added": 0}
        with self._lock:
            for t, a in zip(ts, actions):
                if t < self._next_timestep:
                    counts["dropped"] += 1
                elif t in self._actions:
                    self._actions[t] = self.merge_fn(self._actions[t], a)
                    counts["merged"] += 1
                else:
                    self._actions[t] = a.clone()
                    counts["added"] += 1
        return counts

    def pop(self) -> tuple[int, Tensor] | None:
        """Remove and return the earliest ``(timestep, action)``, or ``None`` when empty."""
        with self._lock:
            if not self._actions:
                return None
            t = min(self._actions)
            action = self._actions.pop(t)
            self._next_timestep = t + 1
            return t, action

    def snapshot(self) -> tuple[list[int], Tensor | None]:
        """Copy of the queued timesteps and actions ``(n, A)`` (``None`` when empty), in order."""
        with self._lock:
            ts = sorted(self._actions)
            return ts, (torch.stack([self._actions[t] for t in ts]) if ts else None)

    def clear(self, next_timestep: int = 0) -> None:
        """Empty the queue and restart the timestep count at ``next_timestep``."""
        with self._lock:
            self._actions.clear()
            self._next_timestep = next_timestep
