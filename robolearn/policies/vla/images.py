"""Resize-with-padding of camera frames (aspect ratio kept, padded on the left and top, as lerobot's SmolVLA/π0)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def resize_with_pad(images: Tensor, height: int, width: int, pad_value: float = 0.0) -> Tensor:
    """Resize ``(B, C, H, W)`` images to fit inside ``height x width`` keeping their aspect ratio, then pad.

    The scale is ``max(W / width, H / height)``; the resized image (bilinear, ``align_corners=False``) has
    ``int(H / scale) x int(W / scale)`` pixels and is padded with ``pad_value`` on the **top and left** to exactly
    ``height x width`` (lerobot's ``resize_with_pad``).

    Raises:
        ValueError: input not 4-D.
    """
    if images.dim() != 4:
        raise ValueError(f"expected images (B, C, H, W), got shape {tuple(images.shape)}")
    cur_h, cur_w = images.shape[-2:]
    if (cur_h, cur_w) == (height, width):
        return images
    ratio = max(cur_w / width, cur_h / height)
    new_h, new_w = int(cur_h / ratio), int(cur_w / ratio)
    resized = F.interpolate(images, size=(new_h, new_w), mode="bilinear", align_corners=False)
    pad_h, pad_w = max(0, height - new_h), max(0, width - new_w)
    return F.pad(resized, (pad_w, 0, pad_h, 0), value=pad_value)
