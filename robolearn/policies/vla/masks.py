"""Blockwise-causal attention masks of the prefix/suffix VLAs (big_vision's ``make_attn_mask``, used by openpi's π0
and lerobot's π0 / SmolVLA as ``make_att_2d_masks``)."""

from __future__ import annotations

import torch
from torch import Tensor


def make_att_2d_masks(pad_masks: Tensor, att_masks: Tensor) -> Tensor:
    """2-D boolean attention mask from per-token padding and block-start flags.

    A token whose ``att_masks`` flag is 1 opens a new block. Query ``i`` may attend key ``j`` iff
    ``cumsum(att)[j] <= cumsum(att)[i]`` (bidirectional inside a block, causal across blocks) and both tokens are
    real. All zeros give full attention; all ones give a causal mask.

    Args:
        pad_masks: bool ``(B, L)``, True for real tokens.
        att_masks: ``(B, L)`` or ``(L,)`` (shared by the batch) int/bool, 1 where a block starts.
    Returns:
        bool ``(B, L, L)``; ``[b, i, j]`` is True when query ``i`` attends key ``j``.
    Raises:
        ValueError: ``att_masks`` and ``pad_masks`` shapes differ (after broadcasting a 1-D ``att_masks``).
    """
    if att_masks.dim() == 1:
        att_masks = att_masks[None].expand(pad_masks.shape[0], -1)
    if att_masks.shape != pad_masks.shape:
        raise ValueError(f"att_masks {tuple(att_masks.shape)} and pad_masks {tuple(pad_masks.shape)} must have the "
                         "same (B, L) shape")
    cum = torch.cumsum(att_masks.to(torch.int64), dim=1)
    allowed = cum[:, None, :] <= cum[:, :, None]
    pad = pad_masks[:, None, :] & pad_masks[:, :, None]
    return allowed & pad
