"""FinalCheckpoint: a fit that ends between periodic checkpoints leaves last.ckpt at its final step (a file, not the
link ModelCheckpoint(save_last="link") made to an older step), so resuming the finished run trains no step again."""

from __future__ import annotations

import lightning as L
import torch

from robolearn.callbacks.final_checkpoint import FinalCheckpoint
from robolearn.utils.checkpoints import resolve_ckpt_path

from .test_preemption import _Linear, _loader


class _CountSteps(L.Callback):
    def __init__(self) -> None:
        self.steps = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.steps += 1


def _fit(run, max_steps, every, *callbacks, ckpt_path=None):
    ckpt = L.pytorch.callbacks.ModelCheckpoint(dirpath=run / "checkpoints", filename="step_{step:06d}",
                                               auto_insert_metric_name=False, every_n_train_steps=every,
                                               save_last="link", save_top_k=-1)
    final = FinalCheckpoint()
    trainer = L.Trainer(max_steps=max_steps, logger=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[ckpt, final, *callbacks], default_root_dir=run)
    trainer.fit(_Linear(), _loader(), ckpt_path=ckpt_path)
    return trainer, final


def test_run_ending_between_checkpoints_saves_its_final_step(tmp_path):
    run = tmp_path / "run"
    trainer, final = _fit(run, 5, 3)
    last = run / "checkpoints" / "last.ckpt"
    assert final.saved_at_end == last and not last.is_symlink()
    assert torch.load(last, weights_only=False)["global_step"] == 5
    assert sorted(p.name for p in last.parent.glob("step_*.ckpt")) == ["step_000003.ckpt"]
    assert not list(last.parent.glob(".*.tmp"))

    counter = _CountSteps()
    again, _ = _fit(run, 5, 3, counter, ckpt_path=resolve_ckpt_path("auto", run))
    assert counter.steps == 0 and again.global_step == 5  # finished: nothing repeated


def test_run_ending_on_a_checkpoint_keeps_the_link(tmp_path):
    run = tmp_path / "run"
    _, final = _fit(run, 6, 3)
    last = run / "checkpoints" / "last.ckpt"
    assert final.saved_at_end is None and last.is_symlink()
    assert torch.load(last, weights_only=False)["global_step"] == 6


def test_run_without_any_periodic_checkpoint_writes_one_last_ckpt(tmp_path):
    """ModelCheckpoint saves last.ckpt itself when it saved nothing during the fit: no second copy (last-v1.ckpt)."""
    run = tmp_path / "run"
    _, final = _fit(run, 5, 2000)
    ckpts = run / "checkpoints"
    assert final.saved_at_end is None
    assert sorted(p.name for p in ckpts.iterdir()) == ["last.ckpt"]
    assert torch.load(ckpts / "last.ckpt", weights_only=False)["global_step"] == 5
