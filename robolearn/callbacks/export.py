"""``ExportPretrained``: keep an up-to-date ``pretrained_model/`` folder next to a training run, and push the final
one to the Hugging Face Hub when asked."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import lightning as L

from robolearn.callbacks.ema import EMA

log = logging.getLogger(__name__)


class ExportPretrained(L.Callback):
    """Write ``<dirpath>/pretrained_model/`` (see :func:`robolearn.policies.pretrained.save_pretrained`) at
    every checkpoint save and at the end of ``fit``, and optionally push it to the Hugging Face Hub when ``fit`` ends.

    The exported weights are the EMA weights when an :class:`~robolearn.callbacks.ema.EMA` callback is
    present. The run config and the provenance record are taken from ``trainer.lightning_module.run_config`` and
    ``.provenance`` (attached by ``train.py``; may be ``None``). Only global rank 0 writes; each export is atomic (temp folder, then rename).

    Args:
        dirpath: parent folder; ``None`` uses ``trainer.default_root_dir``.
        name: folder name (``pretrained_model``).
        on_checkpoint: export whenever Lightning saves a checkpoint.
        on_fit_end: export when ``fit`` ends (always done when ``push_to_hub`` is set).
        lora: ``"adapters"`` or ``"merged"``: how a policy trained with LoRA adapters is written (see
            :func:`~robolearn.policies.pretrained.save_pretrained`); no effect on other policies.
        push_to_hub: ``owner/name`` of a Hub model repo that the final export is pushed to
            (:func:`robolearn.policies.hub.push_policy`, with a model card); None pushes nothing. Offline mode or a
            missing token fails when ``fit`` starts, not after training.
        hub_private: create that repo private.
        eval_info: the run's final rollout evaluation (``callbacks=rollout_eval`` writes
            ``<run dir>/eval_info.json`` before this callback's end of ``fit``), shown in the card and uploaded when
            the file exists at push time.
        hub_api: an ``HfApi``-like object to push with (tests); None builds ``huggingface_hub.HfApi()``.

    Raises:
        ValueError: ``lora`` is not ``adapters``/``merged``, or ``push_to_hub`` is not ``owner/name``.
        RuntimeError: (when ``fit`` starts) a push is asked for while offline or without a token; (when it ends)
            the push failed: the export is on disk and the message gives the command that pushes it.
    """

    def __init__(self, dirpath: str | os.PathLike | None = None, name: str = "pretrained_model",
                 on_checkpoint: bool = True, on_fit_end: bool = True, lora: str = "adapters",
                 push_to_hub: str | None = None, hub_private: bool = False,
                 eval_info: str | os.PathLike | None = None, hub_api: Any = None):
        from robolearn.policies.hub import check_repo_id
        from robolearn.policies.pretrained import LORA_EXPORT_MODES

        super().__init__()
        if lora not in LORA_EXPORT_MODES:
            raise ValueError(f"callbacks.export_pretrained.lora={lora!r} is not one of {list(LORA_EXPORT_MODES)}")
        if push_to_hub is not None:
            try:
                check_repo_id(push_to_hub)
            except ValueError as e:
                raise ValueError(f"callbacks.export_pretrained.push_to_hub: {e}") from None
        self.dirpath, self.name, self.lora = dirpath, name, lora
        self.export_on_checkpoint, self.export_on_fit_end = on_checkpoint, on_fit_end
        self.push_to_hub, self.hub_private, self.hub_api = push_to_hub, bool(hub_private), hub_api
        self.eval_info = None if eval_info is None else Path(eval_info)
        self.last_export: Path | None = None
        self.last_push: Any = None
        self._export_step: int | None = None  # global step of last_export

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
                self.last_export = save_pretrained(module, self.target_dir(trainer), config, record, lora=self.lora)
        else:
            self.last_export = save_pretrained(module, self.target_dir(trainer), config, record, lora=self.lora)
        self._export_step = int(trainer.global_step)
        return self.last_export

    def _exported_now(self, trainer: L.Trainer) -> bool:
        """Whether the folder already holds this global step's weights (exported with the checkpoint just saved:
        no optimizer or EMA update happens between a step's checkpoint and the end of ``fit``)."""
        return (self._export_step is not None and self._export_step == int(trainer.global_step)
                and self.last_export is not None and self.last_export == self.target_dir(trainer)
                and self.last_export.is_dir())

    def push(self, trainer: L.Trainer, folder: Path) -> Any:
        """Push ``folder`` to ``push_to_hub`` with the run's ``eval_info`` (when the file exists) and the step.

        Raises:
            RuntimeError: the push failed (the cause chained; the message gives the manual command).
        """
        from robolearn.policies.hub import push_policy

        eval_info = self.eval_info if self.eval_info is not None and self.eval_info.is_file() else None
        try:
            self.last_push = push_policy(folder, self.push_to_hub, eval_info=eval_info, step=int(trainer.global_step),
                                         private=self.hub_private, api=self.hub_api)
        except Exception as e:  # noqa: BLE001 - any failure is reported with the command that retries it
            retry = f"python -m robolearn.policies.hub push {folder} {self.push_to_hub}"
            if eval_info is not None:
                retry += f" --eval-info {eval_info}"
            raise RuntimeError(f"training finished and {folder} is exported, but pushing it to the Hub repo "
                               f"{self.push_to_hub} failed ({type(e).__name__}: {e}); retry with: {retry}") from e
        log.info("pushed %s to the Hub repo %s: %s", folder, self.push_to_hub,
                 getattr(self.last_push, "commit_url", self.last_push))
        return self.last_push

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.push_to_hub is not None and self.hub_api is None and trainer.is_global_zero:
            from robolearn.policies.hub import check_can_push

            check_can_push()

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        if self.export_on_checkpoint:
            self.export(trainer)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.export_on_fit_end or self.push_to_hub is not None:
            # The run's last checkpoint (last.ckpt at the final step) exported the same weights a moment ago: writing
            # them again would cost one more model-sized write (1 GB for Diffusion Policy) and nothing else.
            done = self._exported_now(trainer) and trainer.is_global_zero
            folder = self.last_export if done else self.export(trainer)
            if folder is not None and self.push_to_hub is not None:
                self.push(trainer, folder)
