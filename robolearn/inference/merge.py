"""Functions that combine two predictions of the same timestep when action chunks overlap.

In async inference (Shukor et al. 2025, SmolVLA, Sec. 3.3) the client asks for a new chunk before the
current one runs out, so a new chunk's first actions cover timesteps still queued from the previous chunk.
For such a timestep with queued action ``a_old`` and newly predicted ``a_new`` (both ``(A,)`` tensors in the
robot's units) the queue keeps ``f(a_old, a_new)``. Weights follow lerobot's ``aggregate_fn_name`` options.
"""

from __future__ import annotations

from typing import Callable

from torch import Tensor

MergeFn = Callable[[Tensor, Tensor], Tensor]


def weighted_average(old: Tensor, new: Tensor) -> Tensor:
    """``0.3 * a_old + 0.7 * a_new``: favours the prediction made from the newer observation."""
    return 0.3 * old + 0.7 * new


def latest_only(old: Tensor, new: Tensor) -> Tensor:
    """``a_new``: the newest chunk replaces the overlap (no smoothing)."""
    return new.clone()


def average(old: Tensor, new: Tensor) -> Tensor:
    """``0.5 * a_old + 0.5 * a_new``."""
    return 0.5 * old + 0.5 * new


def conservative(old: Tensor, new: Tensor) -> Tensor:
    """``0.7 * a_old + 0.3 * a_new``: favours the plan already being executed (smoother, slower to react)."""
    return 0.7 * old + 0.3 * new


MERGE_FUNCTIONS: dict[str, MergeFn] = {
    "weighted_average": weighted_average,
    "latest_only": latest_only,
    "average": average,
    "conservative": conservative,
}


def get_merge_fn(name: str) -> MergeFn:
    """The merge function called ``name`` (a key of :data:`MERGE_FUNCTIONS`).

    Raises:
        ValueError: unknown name, listing the valid ones.
    """
    try:
        return MERGE_FUNCTIONS[name]
    except KeyError:
        raise ValueError(f"unknown aggregate_fn_name {name!r}; choose one of {sorted(MERGE_FUNCTIONS)}") from None
