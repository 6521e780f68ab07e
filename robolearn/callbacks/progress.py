"""``StepProgressBar``: Lightning's rich progress bar with run-level progress for step-based training.

Lightning's bars count batches of the current epoch; a step-based run (``trainer.max_steps``) also wants the
global step out of ``max_steps``, the time left, and the latest closed-loop success rate. This bar adds them to
the metrics it shows: ``step`` (``"1200/4000"``), ``left`` (``"6m05s"``, extrapolated from the wall time since
the first step of this fit, evaluations included) and whatever ``eval/*`` metrics a callback has put in the
progress bar (e.g. ``eval/success`` from :class:`~robolearn.callbacks.rollout_eval.RolloutEval`).
"""

from __future__ import annotations

import time

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar


def format_duration(seconds: float) -> str:
    """``3725.0 -> "1h02m"``, ``365.0 -> "6m05s"``, ``42.0 -> "42s"``."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


class StepProgressBar(RichProgressBar):
    """A :class:`~lightning.pytorch.callbacks.RichProgressBar` that also shows ``step``, ``left`` (time) and
    the latest evaluation metrics. Arguments are RichProgressBar's."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._t0: float | None = None
        self._step0 = 0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self._t0, self._step0 = None, int(trainer.global_step)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        super().on_train_batch_start(trainer, pl_module, batch, batch_idx)
        if self._t0 is None:  # from the first batch: dataset generation and setup are not steps
            self._t0, self._step0 = time.perf_counter(), int(trainer.global_step)

    def time_left_s(self, trainer: L.Trainer) -> float | None:
        """Seconds left until ``max_steps`` at the average pace of this fit so far, or None before any step
        (or without ``max_steps``)."""
        done = int(trainer.global_step) - self._step0
        if self._t0 is None or done <= 0 or trainer.max_steps is None or trainer.max_steps < 0:
            return None
        return (time.perf_counter() - self._t0) / done * max(0, trainer.max_steps - int(trainer.global_step))

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict:
        metrics = super().get_metrics(trainer, pl_module)
        extra: dict = {}
        if trainer.max_steps is not None and trainer.max_steps > 0:
            extra["step"] = f"{trainer.global_step}/{trainer.max_steps}"
            left = self.time_left_s(trainer)
            if left is not None:
                extra["left"] = format_duration(left)
        return {**extra, **metrics}
