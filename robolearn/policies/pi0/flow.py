"""Flow-matching pieces of π0 / π0.5 (Black et al. 2024, Sec. 3; openpi's conventions).

Time runs from ``t = 1`` (pure noise) to ``t = 0`` (data): ``x_t = t * noise + (1 - t) * actions``, the target
velocity is ``u_t = noise - actions``, and sampling integrates ``dx/dt = v(x_t, t)`` with Euler steps of
``dt = -1 / num_steps`` from ``t = 1``.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor


def sample_time(batch_size: int, alpha: float = 1.5, beta: float = 1.0, scale: float = 0.999, offset: float = 0.001,
                device: torch.device | str | None = None) -> Tensor:
    """Training times ``t ~ Beta(alpha, beta) * scale + offset`` (π0: Beta(1.5, 1), so ``t`` lies in ``[0.001, 1]``
    and favours high noise levels). Drawn from torch's global RNG (seed it with ``torch.manual_seed``).

    Returns:
        ``(batch_size,)`` float32.
    Raises:
        ValueError: a Beta parameter ``<= 0``.
    """
    if alpha <= 0 or beta <= 0:
        raise ValueError(f"Beta parameters must be > 0, got alpha={alpha}, beta={beta}")
    dist = torch.distributions.Beta(torch.tensor(float(alpha)), torch.tensor(float(beta)))
    t = dist.sample((batch_size,)).float() * scale + offset
    return t.to(device) if device is not None else t


def sinusoidal_time_embedding(time: Tensor, dim: int, min_period: float = 4e-3, max_period: float = 4.0) -> Tensor:
    """Sine-cosine embedding of scalar times (openpi's ``create_sinusoidal_pos_embedding``).

    ``period_i = min_period * (max_period / min_period) ** (i / (dim/2 - 1))`` for ``i < dim/2``; the embedding is
    ``[sin(2π t / period_i)..., cos(2π t / period_i)...]``.

    Args:
        time: ``(B,)`` times.
        dim: embedding width (even).
    Returns:
        ``(B, dim)`` float32.
    Raises:
        ValueError: odd ``dim`` or ``time`` not 1-D.
    """
    if dim % 2:
        raise ValueError(f"time embedding width must be even, got {dim}")
    if time.ndim != 1:
        raise ValueError(f"time must be (B,), got shape {tuple(time.shape)}")
    fraction = torch.linspace(0.0, 1.0, dim // 2, dtype=torch.float64, device=time.device)
    period = min_period * (max_period / min_period) ** fraction
    scaling = (2 * math.pi / period).to(torch.float32)
    angles = time.float()[:, None] * scaling[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


def euler_integrate(velocity: Callable[[Tensor, Tensor], Tensor], noise: Tensor, num_steps: int) -> Tensor:
    """Integrate ``dx/dt = velocity(x, t)`` from ``t = 1`` (``x = noise``) to ``t = 0`` with ``num_steps`` Euler
    steps of ``dt = -1/num_steps``: ``x <- x + dt * velocity(x, t)``, ``t <- t + dt``.

    Args:
        velocity: ``(x (B, ...), t (B,)) -> (B, ...)``.
        noise: ``(B, ...)`` start point.
    Returns:
        ``x`` at ``t = 0``, same shape as ``noise``.
    """
    if num_steps < 1:
        raise ValueError(f"num_inference_steps must be >= 1, got {num_steps}")
    dt = -1.0 / num_steps
    x = noise
    for step in range(num_steps):
        t = torch.full((noise.shape[0],), 1.0 + step * dt, dtype=torch.float32, device=noise.device)
        x = x + dt * velocity(x, t)
    return x


def make_attention_mask(pad_masks: Tensor, block_starts: Tensor) -> Tensor:
    """Blockwise-causal 2-D attention mask (openpi's ``make_att_2d_masks``).

    Tokens are split into blocks: a token with ``block_starts == 1`` opens a new block. Token ``i`` may attend to
    token ``j`` iff ``block(j) <= block(i)`` (bidirectional inside a block, causal across blocks) and both are
    real (not padding).

    Args:
        pad_masks: ``(B, N)`` bool, True for real tokens.
        block_starts: ``(B, N)`` or ``(N,)`` int/bool, 1 where a new block starts.
    Returns:
        ``(B, N, N)`` bool, ``[b, i, j]`` True when query ``i`` attends to key ``j``.
    """
    if block_starts.ndim == 1:
        block_starts = block_starts[None].expand_as(pad_masks)
    if block_starts.shape != pad_masks.shape:
        raise ValueError(f"block_starts {tuple(block_starts.shape)} and pad_masks {tuple(pad_masks.shape)} differ")
    block = torch.cumsum(block_starts.long(), dim=1)
    causal = block[:, None, :] <= block[:, :, None]
    valid = pad_masks[:, None, :] & pad_masks[:, :, None]
    return causal & valid
