"""openpi's learning-rate schedule for π0 / π0.5: linear warmup then cosine decay to a floor."""

from __future__ import annotations

import math

import torch


def cosine_decay_with_warmup(optimizer: torch.optim.Optimizer, num_warmup_steps: int = 1000,
                             num_decay_steps: int = 30000, peak_lr: float = 2.5e-5,
                             decay_lr: float = 2.5e-6) -> torch.optim.lr_scheduler.LambdaLR:
    """``LambdaLR`` whose factor (times the optimizer's lr, ``peak_lr``) is, at optimizer step ``s``:

    - ``s < num_warmup_steps``: linear from ``1 / (num_warmup_steps + 1)`` at ``s = 0`` to 1;
    - after: ``(1 - a) * 0.5 * (1 + cos(pi * min(s, num_decay_steps) / num_decay_steps)) + a`` with
      ``a = decay_lr / peak_lr`` (so the lr ends at ``decay_lr``).

    Raises:
        ValueError: non-positive ``num_decay_steps`` or ``peak_lr``.
    """
    if num_decay_steps <= 0 or peak_lr <= 0:
        raise ValueError(f"num_decay_steps ({num_decay_steps}) and peak_lr ({peak_lr}) must be > 0")
    alpha = decay_lr / peak_lr

    def factor(step: int) -> float:
        if step < num_warmup_steps:
            start = 1.0 / (num_warmup_steps + 1)
            return start + (1.0 - start) * step / num_warmup_steps
        s = min(step, num_decay_steps)
        return (1 - alpha) * 0.5 * (1 + math.cos(math.pi * s / num_decay_steps)) + alpha

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
