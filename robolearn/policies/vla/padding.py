"""Zero-padding of state/action vectors to a fixed width (``max_state_dim`` / ``max_action_dim`` of π0/SmolVLA)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def pad_vector(x: Tensor, width: int, name: str = "vector") -> Tensor:
    """Pad the last axis of ``x`` (``(..., D)``) with zeros to ``(..., width)``.

    Raises:
        ValueError: ``D > width`` (``name`` is used in the message, e.g. ``"observation.state"``).
    """
    d = x.shape[-1]
    if d > width:
        raise ValueError(f"{name} has {d} dims, more than the padded width {width} (raise max_state_dim/max_action_dim)")
    return x if d == width else F.pad(x, (0, width - d))


def pad_mask(dim: int, width: int, device=None):
    """Bool ``(width,)`` mask, True on the first ``dim`` (real) entries of a padded vector."""
    import torch

    if dim > width:
        raise ValueError(f"dim {dim} exceeds the padded width {width}")
    mask = torch.zeros(width, dtype=torch.bool, device=device)
    mask[:dim] = True
    return mask
