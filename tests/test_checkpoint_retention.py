"""The default callbacks keep one periodic checkpoint: a long run does not fill the disk with training states."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from robolearn.utils.checkpoints import resolve_ckpt_path

from .test_preemption import _Linear, _loader

CONF = Path(__file__).resolve().parents[1] / "conf" / "callbacks" / "default.yaml"


def _default_model_checkpoint(run: Path, every: int) -> L.pytorch.callbacks.ModelCheckpoint:
    node = OmegaConf.load(CONF).model_checkpoint
    node.dirpath = str(run / "checkpoints")
    node.every_n_train_steps = every
    return instantiate(node)


def _fit(run: Path, max_steps: int, every: int, ckpt_path=None) -> L.Trainer:
    trainer = L.Trainer(max_steps=max_steps, logger=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[_default_model_checkpoint(run, every)], default_root_dir=run)
    trainer.fit(_Linear(), _loader(), ckpt_path=ckpt_path)
    return trainer


def test_default_keeps_only_the_newest_periodic_checkpoint(tmp_path):
    run = tmp_path / "run"
    _fit(run, 6, 2)
    ckpts = run / "checkpoints"
    assert sorted(p.name for p in ckpts.glob("step_*.ckpt")) == ["step_000006.ckpt"]
    last = ckpts / "last.ckpt"
    assert last.is_symlink() and last.resolve() == (ckpts / "step_000006.ckpt").resolve()


def test_resumed_run_replaces_the_checkpoint_it_resumed_from(tmp_path):
    run = tmp_path / "run"
    _fit(run, 4, 2)
    trainer = _fit(run, 8, 2, ckpt_path=resolve_ckpt_path("auto", run))
    ckpts = run / "checkpoints"
    assert trainer.global_step == 8
    assert sorted(p.name for p in ckpts.glob("step_*.ckpt")) == ["step_000008.ckpt"]
    assert torch.load(ckpts / "last.ckpt", weights_only=False)["global_step"] == 8
