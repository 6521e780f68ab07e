"""DrQ random-shift image augmentation (Kostrikov et al. 2020, "Image Augmentation Is All You Need").

Each image is padded by ``pad`` pixels on every side (edge replication, as DrQ) and cropped back to its
original size at a random integer offset in ``[0, 2 * pad]`` per axis, independently per sample. An offset of
``pad`` on both axes returns the image unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def random_shift(images: Tensor, pad: int = 4, generator: torch.Generator | None = None,
                 offsets: Tensor | None = None) -> Tensor:
    """Shift each image of a batch by a random integer number of pixels (DrQ).

    Args:
        images: ``(B, C, H, W)``, float or uint8 (returned with the same dtype).
        pad: padding in pixels on each side (DrQ uses 4 for 84×84 images); 0 returns ``images`` unchanged.
        generator: CPU generator for the offsets (reproducible sampling).
        offsets: optional ``(B, 2)`` integer ``(dy, dx)`` crop offsets in ``[0, 2 * pad]`` instead of random ones
            (``(pad, pad)`` is the identity); used by tests and for replaying an augmentation.

    Returns:
        ``(B, C, H, W)``: ``out[b, :, y, x] = padded[b, :, y + dy_b, x + dx_b]`` where ``padded`` replicates the
        border pixels.

    Raises:
        ValueError: ``images`` is not 4-D, ``pad < 0``, or ``offsets`` has the wrong shape or range.
    """
    if images.ndim != 4:
        raise ValueError(f"random_shift expects images (B, C, H, W), got shape {tuple(images.shape)}")
    if pad < 0:
        raise ValueError(f"random_shift pad must be >= 0, got {pad}")
    if pad == 0:
        return images
    b, _, h, w = images.shape
    if offsets is None:
        offsets = torch.randint(0, 2 * pad + 1, (b, 2), generator=generator)
    elif tuple(offsets.shape) != (b, 2) or int(offsets.min()) < 0 or int(offsets.max()) > 2 * pad:
        raise ValueError(f"offsets must be (B={b}, 2) integers in [0, {2 * pad}], got shape {tuple(offsets.shape)}")
    offsets = offsets.to(images.device, torch.long)
    src = images if images.is_floating_point() else images.float()
    padded = F.pad(src, (pad, pad, pad, pad), mode="replicate")
    rows = torch.arange(h, device=images.device)[None, :] + offsets[:, :1]  # (B, H)
    cols = torch.arange(w, device=images.device)[None, :] + offsets[:, 1:]  # (B, W)
    bidx = torch.arange(b, device=images.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[bidx, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    out = out.permute(0, 3, 1, 2)
    return out.to(images.dtype).contiguous()
