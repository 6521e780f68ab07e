"""``ExportPretrained``: keep an up-to-date ``pretrained_model/`` folder next to a training run."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import lightning as L

from robolearn.callbacks.ema import EMA


class ExportPretrained(L.Callback):
    """Write ``<dirpath>/pretrained_model/`` (see :func:`robolearn.policies.pretrained.save_pretrained`) at
    every checkpoint save and at the end of ``fit``.

    The exported weights are the EMA weights when an :class:`~robolearn.callbacks.ema.EMA` callback is
    present. The run config and the provenance record are taken from ``trainer.lightning_module.run_config`` and
    ``.provenance`` (attached by ``train.py``; may be ``None``). Only global rank 0 writes; each export is atomic (temp folder, then rename).

    Args:
        dirpath: parent folder; ``None`` uses ``trainer.default_root_dir``.
        name: folder name (``pretrained_model``).
        on_checkpoint: export whenever Lightning saves a checkpoint.
        on_fit_end: export when ``fit`` ends.
    """

    def __init__(self, dirpath: str | os.PathLike | None = None, name: str = "pretrained_model",
                 on_checkpoint: bool = True, on_fit_end: bool = True):
        super().__init__()
        self.dirpath, self.name = dirpath, name
        self.export_on_checkpoint, self.export_on_fit_end = on_checkpoint, on_fit_end
        self.last_export: Path | None = None

    def target_dir(self, trainer: L.Trainer) -> Path:
        return Path(self.dirpath if self.dirpath is not None else trainer.default_root_dir) / self.name

    def export(self, trainer: L.Trainer) -> Path | None:
        """Export now (rank 0 only); returns the folder or ``None`` on other ranks."""
        from robolearn.policies.pretrained import save_pretrained

        if not trainer.is_global_zero:
            return None
        module = trainer.lightning_module
        ema = next((cb for cb in trainer.callbacks if isinstance(cb, EMA)), None)
        config = getattr(module, "run_config", None)
        record = getattr(module, "provenance", None)
        if ema is not None and ema.shadow is not None:
            with ema.swapped(module):
                self.last_export = save_pretrained(module, self.target_dir(trainer), config, record)
        else:
            self.last_export = save_pretrained(module, self.target_dir(trainer), config, record)
        return self.last_export

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        if self.export_on_checkpoint:
            self.export(trainer)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.export_on_fit_end:
            self.export(trainer)
