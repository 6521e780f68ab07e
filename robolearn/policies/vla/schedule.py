"""Linear warmup + cosine decay learning-rate schedule (lerobot's ``CosineDecayWithWarmupSchedulerConfig``)."""

from __future__ import annotations

import math

import torch


def cosine_decay_with_warmup_factor(step: int, warmup_steps: int, decay_steps: int, peak_lr: float,
                                    decay_lr: float) -> float:
    """Multiplier of the peak learning rate at optimizer step ``step``.

    Warmup (``step < warmup_steps``): linear from ``1 / (warmup_steps + 1)`` at step 0 to 1. Then
    ``alpha + (1 - alpha) * 0.5 * (1 + cos(pi * min(step, decay_steps) / decay_steps))`` with
    ``alpha = decay_lr / peak_lr`` (so the rate ends at ``decay_lr``).
    """
    if step < warmup_steps:
        if step <= 0:
            return 1.0 / (warmup_steps + 1)
        frac = 1.0 - step / warmup_steps
        return (1.0 / (warmup_steps + 1) - 1.0) * frac + 1.0
    s = min(step, decay_steps)
    alpha = decay_lr / peak_lr
    return (1 - alpha) * 0.5 * (1 + math.cos(math.pi * s / decay_steps)) + alpha


def cosine_decay_with_warmup(optimizer: torch.optim.Optimizer, warmup_steps: int, decay_steps: int, peak_lr: float,
                             decay_lr: float) -> torch.optim.lr_scheduler.LambdaLR:
    """``LambdaLR`` applying :func:`cosine_decay_with_warmup_factor` (step it every optimizer step).

    Raises:
        ValueError: ``decay_steps < 1`` or ``peak_lr <= 0``.
    """
    if decay_steps < 1 or peak_lr <= 0:
        raise ValueError(f"need decay_steps >= 1 and peak_lr > 0, got {decay_steps}, {peak_lr}")
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: cosine_decay_with_warmup_factor(s, warmup_steps, decay_steps, peak_lr, decay_lr))
