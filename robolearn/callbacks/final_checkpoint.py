"""Save ``last.ckpt`` at the end of a fit that stopped between periodic checkpoints.

``ModelCheckpoint(every_n_train_steps=N, save_last="link")`` links ``last.ckpt`` to the newest periodic checkpoint
only when one is written. A run whose ``trainer.max_steps`` is not a multiple of ``N`` therefore ended with
``last.ckpt`` pointing ``max_steps mod N`` steps back, and ``ckpt_path=auto`` repeated those steps. This callback
writes the final training state to ``last.ckpt`` (replacing the link) when no checkpoint was saved at the final
global step, so re-running a finished command finds the run finished.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L

from robolearn.callbacks.preemption import last_checkpoint_path, save_last_atomically

log = logging.getLogger(__name__)


class FinalCheckpoint(L.Callback):
    """At ``on_train_end``, save the training state to ``last.ckpt`` unless a checkpoint was saved at this global
    step already (periodic, preemption or any other save seen by ``on_save_checkpoint``), or when nothing was saved
    during the fit and a ``ModelCheckpoint(save_last=...)`` is present: Lightning saves ``last.ckpt`` itself then.

    Args:
        dirpath: folder of ``last.ckpt``; None: the trainer's ``ModelCheckpoint`` folder. Nothing is saved when
            neither exists, or when no training step was taken.
    """

    def __init__(self, dirpath: str | Path | None = None) -> None:
        super().__init__()
        self.dirpath = Path(dirpath) if dirpath is not None else None
        self.last_saved_step: int | None = None
        self.saved_at_end: Path | None = None

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        self.last_saved_step = trainer.global_step

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.global_step == 0 or self.last_saved_step == trainer.global_step:
            return
        if self.last_saved_step is None and any(getattr(cb, "save_last", False) for cb in trainer.checkpoint_callbacks):
            # nothing was saved during this fit: ModelCheckpoint(save_last=...) saves last.ckpt itself at train end
            # (after this callback); writing it here too made it save a second copy as last-v1.ckpt
            return
        path = last_checkpoint_path(trainer, self.dirpath)
        if path is None:
            return
        save_last_atomically(trainer, path)
        self.saved_at_end = path
        log.info("training ended at step %d after the last periodic checkpoint (step %s): saved %s", trainer.global_step,
                 self.last_saved_step, path)
