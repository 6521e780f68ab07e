"""Resize-with-padding of camera frames (aspect ratio kept): padded on the top and left as lerobot's SmolVLA, or
centred as openpi's / lerobot's π0 and π0.5."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

PAD_ALIGNS = ("top_left", "center")


def resize_with_pad(images: Tensor, height: int, width: int, pad_value: float = 0.0, align: str = "top_left") -> Tensor:
    """Resize ``(B, C, H, W)`` images to fit inside ``height x width`` keeping their aspect ratio, then pad.

    The scale is ``max(W / width, H / height)``; the resized image (bilinear, ``align_corners=False``) has
    ``int(H / scale) x int(W / scale)`` pixels (at least 1) and is padded with ``pad_value`` to exactly
    ``height x width``:

    - ``align="top_left"``: all padding on the **top and left** (lerobot's SmolVLA ``resize_with_pad``);
    - ``align="center"``: split evenly, the odd pixel on the bottom/right (openpi's ``image_tools.resize_with_pad``,
      lerobot's π0 / π0.5).

    Returns ``(B, C, height, width)`` (the input itself when it already has that size).

    Raises:
        ValueError: input not 4-D, or ``align`` not one of :data:`PAD_ALIGNS`.
    """
    if images.dim() != 4:
        raise ValueError(f"expected images (B, C, H, W), got shape {tuple(images.shape)}")
    if align not in PAD_ALIGNS:
        raise ValueError(f"resize_with_pad align must be one of {PAD_ALIGNS}, got {align!r}")
    cur_h, cur_w = images.shape[-2:]
    if (cur_h, cur_w) == (height, width):
        return images
    ratio = max(cur_w / width, cur_h / height)
    new_h, new_w = max(1, int(cur_h / ratio)), max(1, int(cur_w / ratio))
    resized = F.interpolate(images, size=(new_h, new_w), mode="bilinear", align_corners=False)
    pad_h, pad_w = max(0, height - new_h), max(0, width - new_w)
    top, left = (pad_h // 2, pad_w // 2) if align == "center" else (pad_h, pad_w)
    return F.pad(resized, (left, pad_w - left, top, pad_h - top), value=pad_value)
