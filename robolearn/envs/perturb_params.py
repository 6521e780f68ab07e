"""Validation of perturbation parameters, shared by the PushT (:mod:`robolearn.envs.pusht_perturb`) and SO-101
(:mod:`robolearn.envs.so101_perturb`) perturbation suites.

Perturbations are frozen dataclasses built from eval-suite yaml; each field is checked here once, in
``__post_init__``, and stored back as plain floats and tuples so that it serialises to JSON unchanged.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def vector(name: str, value: Any, length: int, low: float | None = None, high: float | None = None) -> tuple:
    """``value`` as a tuple of ``length`` finite floats, each in ``[low, high]`` where a bound is given.

    Raises:
        ValueError: not ``length`` numbers, a non-finite one, or one outside the bounds (the message names ``name``
            and the value given).
    """
    try:
        arr = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be {length} numbers, got {value!r}") from None
    if arr.shape != (length,) or not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be {length} finite numbers, got {value!r}")
    if (low is not None and np.any(arr < low)) or (high is not None and np.any(arr > high)):
        raise ValueError(f"{name} must lie in [{low}, {high}], got {value!r}")
    return tuple(float(v) for v in arr)


def number(name: str, value: Any, low: float, high: float) -> float:
    """``value`` as a finite float in ``[low, high]``.

    Raises:
        ValueError: not a number, not finite or outside the bounds (the message names ``name`` and the value).
    """
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not (math.isfinite(x) and low <= x <= high):
        raise ValueError(f"{name} must lie in [{low}, {high}], got {value!r}")
    return x


def set_field(obj: Any, name: str, value: Any) -> None:
    """Store a normalised value on a frozen dataclass (called from its own ``__post_init__``)."""
    object.__setattr__(obj, name, value)
