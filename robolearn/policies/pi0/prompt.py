"""π0.5's prompt: the task and the discretized normalized state written as text (openpi / lerobot ``pi05``).

The prompt is ``"Task: {task}, State: {bins};\\nAction: "`` where ``task`` is stripped with ``_`` and newlines
replaced by spaces, and ``bins`` are the normalized state (padded to ``max_state_dim``) discretized into 256 bins
over ``[-1, 1]`` (``np.digitize(x, linspace(-1, 1, 257)[:-1]) - 1``, so values below -1 give -1 and values
``>= 1 - 2/256`` give 255, as lerobot). The shared input steps (image resizing, vector padding, task lists,
tokenization) live in :mod:`robolearn.policies.vla`.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

STATE_BINS = 256


def discretize_state(state: Tensor, bins: int = STATE_BINS) -> Tensor:
    """Bin indices of a normalized state: ``digitize(x, linspace(-1, 1, bins + 1)[:-1]) - 1``.

    ``(..., D)`` float -> ``(..., D)`` long on the CPU, in ``[-1, bins - 1]`` (-1 only for values below -1).
    """
    edges = torch.linspace(-1.0, 1.0, bins + 1, dtype=torch.float64)[:-1]
    return torch.bucketize(state.detach().double().cpu(), edges, right=True) - 1


def clean_task(task: str) -> str:
    """Task text as π0.5 writes it in the prompt (stripped, ``_`` and newlines to spaces)."""
    return task.strip().replace("_", " ").replace("\n", " ")


def pi05_prompt(task: str, state_bins: Sequence[int]) -> str:
    """``"Task: {clean task}, State: {b0 b1 ...};\\nAction: "``."""
    return f"Task: {clean_task(task)}, State: {' '.join(str(int(b)) for b in state_bins)};\nAction: "
