"""``LearningCurves``: a PNG of the training loss, the validation loss and the rollout success rate over steps."""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

import lightning as L
import torch

log = logging.getLogger(__name__)


def _scalar(value: Any) -> float | None:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, (int, float)) and math.isfinite(float(value)):
        return float(value)
    return None


class LearningCurves(L.Callback):
    """Record ``train/loss`` every step, ``val/loss`` after each validation, and the success rate of every rollout
    evaluation (from a :class:`~robolearn.callbacks.rollout_eval.RolloutEval` among the trainer's callbacks), and
    plot them to ``path`` after each rollout evaluation and when fit ends.

    The PNG has a loss panel (log scale; training loss as a running mean over ``smooth`` steps) and, when there
    were rollouts, a success panel (percent, with the 95 % Wilson interval of each evaluation).

    Args:
        path: the PNG to write (its folder is created); rank 0 only.
        smooth: window, in steps, of the running mean of the training loss (1: raw).
    """

    def __init__(self, path: str | os.PathLike, smooth: int = 50) -> None:
        self.path = Path(path)
        self.smooth = max(1, int(smooth))
        self.train_loss: list[tuple[int, float]] = []
        self.val_loss: list[tuple[int, float]] = []
        self._plotted_evals = 0

    @staticmethod
    def _rollouts(trainer: L.Trainer):
        from robolearn.callbacks.rollout_eval import RolloutEval

        return next((c for c in trainer.callbacks if isinstance(c, RolloutEval)), None)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        loss = _scalar(outputs.get("loss") if isinstance(outputs, dict) else outputs)
        if loss is not None:
            self.train_loss.append((int(trainer.global_step), loss))
        rollouts = self._rollouts(trainer)
        if rollouts is not None and len(rollouts.history) > self._plotted_evals:
            self.plot(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        value = _scalar(trainer.callback_metrics.get("val/loss"))
        if value is not None and not trainer.sanity_checking:
            self.val_loss.append((int(trainer.global_step), value))

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.plot(trainer)  # after every callback's on_train_end, so a final rollout evaluation is included

    def plot(self, trainer: L.Trainer) -> Path | None:
        """Write the PNG now (rank 0); returns its path, or None when there is nothing to plot yet."""
        if trainer.global_rank != 0 or not (self.train_loss or self.val_loss):
            return None
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import numpy as np

        rollouts = self._rollouts(trainer)
        evals = [] if rollouts is None else list(rollouts.history)
        intervals = [] if rollouts is None else list(rollouts.intervals)
        fig, axes = plt.subplots(2 if evals else 1, 1, figsize=(8, 6 if evals else 3.5), sharex=True, squeeze=False)
        ax = axes[0, 0]
        if self.train_loss:
            steps, values = np.asarray(self.train_loss).T
            k = min(self.smooth, max(1, len(values) // 5))
            mean = np.convolve(values, np.ones(k) / k, mode="valid")
            ax.plot(steps[k - 1:], mean, label=f"train/loss (mean of {k})")
        if self.val_loss:
            ax.plot(*np.asarray(self.val_loss).T, "o-", label="val/loss")
        ax.set_yscale("log")
        ax.set_ylabel("loss")
        ax.legend(loc="best")
        if evals:
            ax = axes[1, 0]
            steps = [s for s, _ in evals]
            success = [m.get("eval/pc_success", float("nan")) for _, m in evals]
            ax.plot(steps, success, "o-", color="tab:green", label="rollout success")
            if len(intervals) == len(evals):
                lo = [a for a, _ in intervals]
                hi = [b for _, b in intervals]
                ax.fill_between(steps, lo, hi, color="tab:green", alpha=0.2, label="95% Wilson interval")
            ax.set_ylim(-2, 102)
            ax.set_ylabel("success (%)")
            ax.legend(loc="best")
            self._plotted_evals = len(evals)
        axes[-1, 0].set_xlabel("step")
        fig.tight_layout()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp.png")
        fig.savefig(tmp, dpi=80)
        plt.close(fig)
        os.replace(tmp, self.path)
        return self.path
