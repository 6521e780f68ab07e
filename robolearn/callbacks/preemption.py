"""Save ``last.ckpt`` when the job is told to stop (SLURM preemption or ``scontrol requeue``), so the requeued job
resumes at the step it was at, not at the last periodic checkpoint.

SLURM stops a job it preempts or requeues with SIGTERM, then SIGKILL ``KillWait`` seconds later (30 s by default).
Lightning notes the SIGTERM and raises :class:`~lightning.pytorch.utilities.exceptions.SIGTERMException` at the
end of the current training batch; this callback's ``on_exception`` then writes the full training state (weights,
optimizer, loop progress and the ``StatefulDataLoader`` position) to ``<checkpoints>/last.ckpt``. The file is written
to a temporary name and renamed, so a SIGKILL during the write leaves the previous ``last.ckpt`` intact. With
``ckpt_path=auto`` the requeued job (same run dir) continues from it, and ``${run_id:...}`` keeps its W&B run id.
Submitit ignores the SIGTERM itself, and ``SIGTERMException`` is a ``SystemExit``, so the stopped attempt writes no
result and the launcher waits for the requeued one. SLURM signals every process of the job: when another one dies
first and makes training fail (W&B's service process, whose loss breaks the next ``wandb.log``), the failure is
turned into the same ``SIGTERMException`` (nothing is saved mid-step; the requeued job resumes from the last
checkpoint).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

log = logging.getLogger(__name__)


def last_checkpoint_path(trainer: L.Trainer, dirpath: Path | None = None) -> Path | None:
    """``<dirpath>/last.ckpt``, else ``last.ckpt`` in the trainer's ``ModelCheckpoint`` folder; None without either."""
    if dirpath is not None:
        return Path(dirpath) / f"{ModelCheckpoint.CHECKPOINT_NAME_LAST}{ModelCheckpoint.FILE_EXTENSION}"
    callback = trainer.checkpoint_callback
    if isinstance(callback, ModelCheckpoint) and callback.dirpath:
        return Path(callback.dirpath) / f"{callback.CHECKPOINT_NAME_LAST}{callback.FILE_EXTENSION}"
    return None


def save_last_atomically(trainer: L.Trainer, path: Path) -> None:
    """Write the full training state to ``path`` through a temporary file and a rename (a crash mid-write leaves
    the previous file, or the symbolic link ``save_last: link`` made, intact). Every rank must call it."""
    tmp = path.with_name(f".{path.name}.tmp")
    trainer.save_checkpoint(tmp)  # every rank takes part; rank 0 writes
    if trainer.is_global_zero:
        os.replace(tmp, path)


class PreemptionCheckpoint(L.Callback):
    """On SIGTERM (via Lightning's ``SIGTERMException``), save the training state to the ``ModelCheckpoint``'s
    ``last.ckpt`` atomically.

    Args:
        dirpath: where ``last.ckpt`` goes; None: the trainer's ``ModelCheckpoint`` folder (the run's
            ``checkpoints/``). Nothing is saved when neither exists.
    """

    def __init__(self, dirpath: str | os.PathLike | None = None) -> None:
        super().__init__()
        self.dirpath = Path(dirpath) if dirpath is not None else None
        self.saved_step: int | None = None

    def _last_path(self, trainer: L.Trainer) -> Path | None:
        return last_checkpoint_path(trainer, self.dirpath)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, SIGTERMException):
            if trainer.received_sigterm:
                # The SIGTERM reached the job's other processes too (W&B's service, data workers), and one of them
                # failed first. The state is mid-step, so nothing is saved; the attempt ends as preempted (a
                # SystemExit, not an error result) and the requeued job resumes from the last checkpoint.
                log.warning("after a SIGTERM, training failed with %s: %s; ending as preempted",
                            type(exception).__name__, exception)
                raise SIGTERMException() from exception
            return
        if trainer.global_step == 0:
            return
        path = self._last_path(trainer)
        if path is None:
            log.warning("SIGTERM at step %d: no checkpoint folder, nothing saved", trainer.global_step)
            return
        save_last_atomically(trainer, path)
        self.saved_step = trainer.global_step
        log.warning("SIGTERM: saved the training state at step %d to %s; the requeued job resumes there",
                    trainer.global_step, path)
