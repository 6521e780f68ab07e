"""Attention pieces of SmolVLA's VLM + action expert: rotary embedding and masked grouped-query attention (the block
attention masks are shared with π0: :func:`robolearn.policies.vla.masks.make_att_2d_masks`)."""

from __future__ import annotations

import torch
from torch import Tensor

# Additive mask value for disallowed keys (as openpi / lerobot; finite so fully masked rows give no NaN).
MASK_VALUE = -2.3819763e38


def apply_rope(x: Tensor, positions: Tensor, max_wavelength: float = 10_000.0) -> Tensor:
    """Rotary position embedding on ``x (B, L, H, D)`` at integer ``positions (B, L)``.

    The two halves ``x1 = x[..., :D/2]``, ``x2 = x[..., D/2:]`` are rotated by ``theta_i = pos / w**(2i/D)``:
    ``[x1 cos - x2 sin, x2 cos + x1 sin]`` (lerobot's SmolVLA ``apply_rope``, ``w = 10000``). Computed in float32.
    """
    d_half = x.shape[-1] // 2
    exponents = (2.0 / x.shape[-1]) * torch.arange(d_half, dtype=torch.float32, device=x.device)
    timescale = max_wavelength ** exponents
    radians = positions[..., None].to(torch.float32) / timescale[None, None, :]
    sin, cos = torch.sin(radians)[..., None, :], torch.cos(radians)[..., None, :]
    xf = x.to(torch.float32)
    x1, x2 = xf[..., :d_half], xf[..., d_half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1).to(x.dtype)


def masked_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor) -> Tensor:
    """Scaled dot-product attention with grouped key/value heads.

    Args:
        q: ``(B, Lq, H, D)``; k, v: ``(B, Lk, Hkv, D)`` with ``H % Hkv == 0`` (each key head serves ``H / Hkv`` query
            heads); mask: bool ``(B, Lq, Lk)``, True where query ``i`` may attend key ``j``.
    Returns:
        ``(B, Lq, H * D)``. Scores ``q k^T / sqrt(D)`` and the softmax are computed in float32; a query with no
        allowed key gets the mean of ``v`` (finite ``MASK_VALUE``), never NaN.
    Raises:
        ValueError: head counts that do not divide.
    """
    b, lq, h, d = q.shape
    hkv = k.shape[2]
    if h % hkv:
        raise ValueError(f"{h} query heads are not a multiple of {hkv} key/value heads")
    k = k.repeat_interleave(h // hkv, dim=2)
    v = v.repeat_interleave(h // hkv, dim=2)
    scores = torch.einsum("bqhd,bkhd->bhqk", q.float(), k.float()) * d ** -0.5
    scores = scores.masked_fill(~mask[:, None, :, :], MASK_VALUE)
    probs = torch.softmax(scores, dim=-1).to(v.dtype)
    out = torch.einsum("bhqk,bkhd->bqhd", probs, v)
    return out.reshape(b, lq, h * d)

