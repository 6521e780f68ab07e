"""Training monitors: timing of data loading vs. compute, and the gradient norm.

lerobot logs ``data_s``, ``updt_s`` and ``grdn`` every step; users rely on them to tell a data-bound run
(video decoding) from a compute-bound one. These callbacks log the same quantities through whatever
Lightning logger is configured, under ``perf/data_time_s``, ``perf/step_time_s`` and ``train/grad_norm``.
"""

from __future__ import annotations

import time
from typing import Any

import lightning as L
import torch


class StepTimer(L.Callback):
    """Logs, per training step, the seconds spent waiting for the batch and the seconds of compute.

    ``perf/data_time_s``: time from the end of the previous step to the start of this one (the
    DataLoader wait). ``perf/step_time_s``: time from batch start to batch end (forward, backward,
    optimizer). ``perf/samples_per_s``: batch size divided by the sum of both.
    """

    def __init__(self, prog_bar: bool = False) -> None:
        self.prog_bar = prog_bar
        self._last_end: float | None = None
        self._start: float | None = None

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._last_end = time.perf_counter()

    def on_train_batch_start(self, trainer, pl_module, batch: Any, batch_idx: int) -> None:
        self._start = time.perf_counter()
        if self._last_end is not None:
            pl_module.log("perf/data_time_s", self._start - self._last_end, on_step=True, prog_bar=self.prog_bar)

    def on_train_batch_end(self, trainer, pl_module, outputs: Any, batch: Any, batch_idx: int) -> None:
        end = time.perf_counter()
        if self._start is not None:
            step = end - self._start
            pl_module.log("perf/step_time_s", step, on_step=True, prog_bar=self.prog_bar)
            total = step + ((self._start - self._last_end) if self._last_end is not None else 0.0)
            bs = _batch_size(batch)
            if bs and total > 0:
                pl_module.log("perf/samples_per_s", bs / total, on_step=True)
        self._last_end = end


class GradNormMonitor(L.Callback):
    """Logs the total L2 norm of all gradients before each optimizer step as ``train/grad_norm``.

    The norm is taken before Lightning's gradient clipping (``trainer.gradient_clip_val``) is applied,
    as lerobot's ``grdn`` is.
    """

    def __init__(self, prog_bar: bool = True) -> None:
        self.prog_bar = prog_bar

    def on_before_optimizer_step(self, trainer, pl_module: L.LightningModule, optimizer) -> None:
        norms = [p.grad.detach().norm(2) for p in pl_module.parameters() if p.grad is not None]
        if not norms:
            return
        total = torch.linalg.vector_norm(torch.stack(norms), 2)
        pl_module.log("train/grad_norm", total, on_step=True, prog_bar=self.prog_bar)


def _batch_size(batch: Any) -> int | None:
    if isinstance(batch, dict):
        for v in batch.values():
            if isinstance(v, torch.Tensor) and v.ndim > 0:
                return int(v.shape[0])
    return None


class LearningRateMonitor(L.pytorch.callbacks.LearningRateMonitor):
    """Lightning's ``LearningRateMonitor`` (logs ``lr-<optimizer>`` every step or epoch) that does nothing when the
    trainer has no logger (``logger=none``) instead of raising, so the default callbacks work with every logger."""

    def on_train_start(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        self._active = bool(trainer.loggers)
        if self._active:
            super().on_train_start(trainer, *args, **kwargs)

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        if getattr(self, "_active", False):
            super().on_train_batch_start(trainer, *args, **kwargs)

    def on_train_epoch_start(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        if getattr(self, "_active", False):
            super().on_train_epoch_start(trainer, *args, **kwargs)
