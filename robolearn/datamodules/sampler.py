"""A shuffling sampler whose order is a function of (seed, epoch, position), so a resumed run sees the batches of
the uninterrupted one in every later epoch too.

``torch``'s ``RandomSampler`` (and torchdata's stateful one) draw each epoch's permutation from a generator whose
state after a mid-epoch resume is not the uninterrupted run's: measured with Lightning 2.6 + torchdata 0.11, a run
resumed at step 7 of a 16-batch epoch sees the same batches until the epoch ends and different ones after. Here the
permutation of epoch ``e`` is ``torch.randperm(n)`` under a generator seeded with ``seed`` and ``e``
(as ``DistributedSampler.set_epoch`` does), and the sampler's state is ``{epoch, yielded}``, which
``StatefulDataLoader`` saves into Lightning checkpoints.
"""

from __future__ import annotations

from typing import Any, Iterator

import torch
from torch.utils.data import Sampler

_EPOCH_STRIDE = 1_000_003  # seeds of successive epochs: seed * stride + epoch (distinct for epoch < stride)


class EpochShuffleSampler(Sampler[int]):
    """Indices ``0..n-1`` in a fresh permutation each epoch; stateful (``state_dict``/``load_state_dict``).

    Args:
        n: dataset length (>= 0).
        seed: base seed (int); the permutation of epoch ``e`` depends only on ``(seed, e)``.

    Raises:
        ValueError: ``n < 0``.
    """

    def __init__(self, n: int, seed: int = 0) -> None:
        if n < 0:
            raise ValueError(f"EpochShuffleSampler: n must be >= 0, got {n}")
        self.n, self.seed = int(n), int(seed)
        self.epoch = 0
        self.yielded = 0
        self._resume_at = 0

    def __len__(self) -> int:
        return self.n

    def permutation(self, epoch: int) -> list[int]:
        """The order of ``epoch`` (a list of ``n`` indices)."""
        g = torch.Generator().manual_seed((self.seed * _EPOCH_STRIDE + epoch) % (2**63))
        return torch.randperm(self.n, generator=g).tolist()

    def __iter__(self) -> Iterator[int]:
        start, self._resume_at = self._resume_at, 0
        order = self.permutation(self.epoch)
        self.yielded = start
        for index in order[start:]:
            self.yielded += 1
            yield index
        self.epoch += 1
        self.yielded = 0

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "yielded": self.yielded}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue at ``state["yielded"]`` of ``state["epoch"]`` on the next ``iter()``.

        Raises:
            ValueError: a missing key, or a position outside ``[0, n]``.
        """
        if "epoch" not in state or "yielded" not in state:
            raise ValueError(f"EpochShuffleSampler state needs 'epoch' and 'yielded', got {sorted(state)}")
        if not 0 <= int(state["yielded"]) <= self.n:
            raise ValueError(f"EpochShuffleSampler state: yielded={state['yielded']} outside [0, {self.n}]")
        self.epoch, self._resume_at = int(state["epoch"]), int(state["yielded"])
        self.yielded = self._resume_at
