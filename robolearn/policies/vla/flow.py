"""Flow-matching utilities (Lipman et al. 2023; the π0 / SmolVLA convention of lerobot and openpi).

Convention: time ``t`` runs from 1 (pure noise) to 0 (data). A noisy sample is
``x_t = t * noise + (1 - t) * actions`` and the target velocity is ``u_t = noise - actions`` (so
``dx_t/dt = u_t``). Sampling integrates ``dx/dt = v(x_t, t)`` from ``t = 1`` to ``t = 0`` with Euler steps of
``dt = -1 / num_steps``.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor


def sample_beta_time(batch_size: int, alpha: float = 1.5, beta: float = 1.0, scale: float = 0.999,
                     offset: float = 0.001, generator: torch.Generator | None = None,
                     device: torch.device | str | None = None) -> Tensor:
    """Flow-matching times ``t = Beta(alpha, beta) * scale + offset``, shape ``(batch_size,)`` float32.

    lerobot's π0/SmolVLA default is ``Beta(1.5, 1.0) * 0.999 + 0.001`` (more mass near ``t = 1``, never exactly 0).
    The Beta sample is drawn as ``X / (X + Y)`` with ``X ~ Gamma(alpha)``, ``Y ~ Gamma(beta)`` (``torch._standard_gamma``)
    so that ``generator`` is honoured.

    Raises:
        ValueError: ``alpha`` or ``beta`` not positive.
    """
    if alpha <= 0 or beta <= 0:
        raise ValueError(f"Beta time sampling needs alpha > 0 and beta > 0, got alpha={alpha}, beta={beta}")
    if generator is not None:
        device = generator.device
    a = torch.full((batch_size,), float(alpha), device=device)
    b = torch.full((batch_size,), float(beta), device=device)
    if generator is None:
        x, y = torch._standard_gamma(a), torch._standard_gamma(b)
    else:
        x, y = torch._standard_gamma(a, generator=generator), torch._standard_gamma(b, generator=generator)
    return (x / (x + y)) * scale + offset


def sample_uniform_time(batch_size: int, low: float = 0.001, high: float = 1.0,
                        generator: torch.Generator | None = None, device: torch.device | str | None = None) -> Tensor:
    """Times uniform in ``[low, high)``, shape ``(batch_size,)`` float32.

    Raises:
        ValueError: ``low >= high``.
    """
    if low >= high:
        raise ValueError(f"uniform time sampling needs low < high, got [{low}, {high})")
    if generator is not None:
        device = generator.device
    return torch.rand(batch_size, generator=generator, device=device) * (high - low) + low


def noisy_actions(actions: Tensor, noise: Tensor, time: Tensor) -> tuple[Tensor, Tensor]:
    """``(x_t, u_t)`` for actions ``(B, T, A)``, noise ``(B, T, A)`` and time ``(B,)``:
    ``x_t = t * noise + (1 - t) * actions`` and ``u_t = noise - actions``.

    Raises:
        ValueError: shapes differ, or ``time`` is not ``(B,)``.
    """
    if actions.shape != noise.shape:
        raise ValueError(f"actions {tuple(actions.shape)} and noise {tuple(noise.shape)} must have the same shape")
    if time.shape != actions.shape[:1]:
        raise ValueError(f"time must be (B,) = {tuple(actions.shape[:1])}, got {tuple(time.shape)}")
    t = time.view(-1, *([1] * (actions.dim() - 1))).to(actions.dtype)
    return t * noise + (1 - t) * actions, noise - actions


def sinusoidal_time_embedding(time: Tensor, dim: int, min_period: float = 4e-3, max_period: float = 4.0) -> Tensor:
    """Sine/cosine embedding of scalar times, ``(B,) -> (B, dim)`` float32 (computed in float64).

    With ``f = linspace(0, 1, dim / 2)`` and ``period = min_period * (max_period / min_period) ** f``, the
    embedding is ``[sin(2 pi t / period), cos(2 pi t / period)]`` (sines first), as in π0 / SmolVLA.

    Raises:
        ValueError: ``dim`` odd, or ``time`` not 1-D.
    """
    if dim % 2:
        raise ValueError(f"sinusoidal time embedding dim must be even, got {dim}")
    if time.dim() != 1:
        raise ValueError(f"time must be (B,), got shape {tuple(time.shape)}")
    fraction = torch.linspace(0.0, 1.0, dim // 2, dtype=torch.float64, device=time.device)
    period = min_period * (max_period / min_period) ** fraction
    angle = (2 * math.pi / period)[None, :] * time.to(torch.float64)[:, None]
    return torch.cat([torch.sin(angle), torch.cos(angle)], dim=1).to(torch.float32)


def euler_integrate(velocity: Callable[[Tensor, Tensor], Tensor], x1: Tensor, num_steps: int) -> Tensor:
    """Integrate ``dx/dt = velocity(x_t, t)`` from ``t = 1`` (``x1``, noise) to ``t = 0`` in ``num_steps`` Euler steps.

    ``velocity(x (B, ...), t (B,)) -> (B, ...)``. Step ``k`` evaluates at ``t_k = 1 - k / num_steps`` and sets
    ``x <- x - v / num_steps``.

    Raises:
        ValueError: ``num_steps < 1``.
    """
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    dt = -1.0 / num_steps
    x = x1
    for k in range(num_steps):
        t = torch.full((x.shape[0],), 1.0 + k * dt, dtype=torch.float32, device=x.device)
        x = x + dt * velocity(x, t)
    return x
