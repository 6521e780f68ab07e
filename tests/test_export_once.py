"""ExportPretrained writes the pretrained_model/ folder once per global step: the end of ``fit`` does not export
again the weights the run's last checkpoint exported at the same step (a model-sized write saved: 1 GB for
Diffusion Policy), and still exports when no checkpoint was saved at the final step."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

import robolearn.policies.pretrained as pretrained
from robolearn.callbacks import ExportPretrained
from robolearn.policies import load_policy
from robolearn.policies.act import ACTPolicy

from .policies.helpers import TINY_ACT, batch, features, loader, stats


def _fit(tmp_path, monkeypatch, checkpoint: ModelCheckpoint | None, max_steps: int) -> tuple[list[int], ACTPolicy]:
    calls: list[int] = []
    real = pretrained.save_pretrained

    def spy(module, *args, **kwargs):
        calls.append(int(module.trainer.global_step))
        return real(module, *args, **kwargs)

    monkeypatch.setattr(pretrained, "save_pretrained", spy)
    torch.manual_seed(0)
    f = features()
    policy = ACTPolicy(f, stats(f), **TINY_ACT, optimizer=lambda ps: torch.optim.Adam(ps, lr=1e-2))
    callbacks = [ExportPretrained(dirpath=tmp_path / "checkpoints")] + ([checkpoint] if checkpoint else [])
    trainer = L.Trainer(max_steps=max_steps, accelerator="cpu", logger=False, enable_checkpointing=checkpoint is not None,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=callbacks,
                        default_root_dir=tmp_path)
    trainer.fit(policy, train_dataloaders=loader(batch(f)))
    return calls, policy


def _same_weights(folder, policy: ACTPolicy) -> None:
    loaded = dict(load_policy(folder).named_parameters())
    for name, p in policy.named_parameters():
        torch.testing.assert_close(loaded[name], p.detach(), rtol=0, atol=0)


@pytest.mark.parametrize("every", [2, 3])
def test_one_export_per_step_with_the_default_checkpointing(tmp_path, monkeypatch, every):
    # conf/callbacks/default.yaml's ModelCheckpoint: every N steps, all kept, last.ckpt a link or a file
    ckpt = ModelCheckpoint(dirpath=tmp_path / "checkpoints", filename="step_{step:06d}", every_n_train_steps=every,
                           save_top_k=-1, save_last="link", auto_insert_metric_name=False)
    calls, policy = _fit(tmp_path, monkeypatch, ckpt, max_steps=4)
    assert calls and calls[-1] == 4
    assert len(calls) == len(set(calls)), f"exported twice at a step: {calls}"
    _same_weights(tmp_path / "checkpoints" / "pretrained_model", policy)


def test_exports_at_the_end_without_a_checkpoint(tmp_path, monkeypatch):
    calls, policy = _fit(tmp_path, monkeypatch, None, max_steps=2)
    assert calls == [2]
    _same_weights(tmp_path / "checkpoints" / "pretrained_model", policy)
