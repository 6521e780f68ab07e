"""PreemptionCheckpoint: a SIGTERM mid-epoch saves last.ckpt at that step, and resuming from it gives the weights
of an uninterrupted run across later epochs (deterministic model, StatefulDataLoader + EpochShuffleSampler, as the
DataModule builds them); EpochShuffleSampler's order and state."""

from __future__ import annotations

import os
import signal

import lightning as L
import pytest
import torch
from torchdata.stateful_dataloader import StatefulDataLoader

from robolearn.callbacks.preemption import PreemptionCheckpoint
from robolearn.datamodules.sampler import EpochShuffleSampler


class _Linear(L.LightningModule):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.layer = torch.nn.Linear(3, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return (self.layer(x) - y).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class _SigtermAt(L.Callback):
    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGTERM)


def _loader():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 3, generator=g)
    data = torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True))
    return StatefulDataLoader(data, batch_size=4, sampler=EpochShuffleSampler(64, seed=2))


def _trainer(tmp_path, *callbacks, max_steps=40):
    ckpt = L.pytorch.callbacks.ModelCheckpoint(dirpath=tmp_path / "checkpoints", save_last=True,
                                               every_n_train_steps=1000)
    return L.Trainer(max_steps=max_steps, logger=False, enable_progress_bar=False, enable_model_summary=False,
                     callbacks=[ckpt, PreemptionCheckpoint(), *callbacks], default_root_dir=tmp_path)


def test_sigterm_saves_the_current_step_and_resume_matches_an_uninterrupted_run(tmp_path):
    whole = _Linear()
    _trainer(tmp_path / "whole").fit(whole, _loader())

    previous = signal.getsignal(signal.SIGTERM)
    try:
        cut = _Linear()
        trainer = _trainer(tmp_path / "cut", _SigtermAt(7))
        with pytest.raises(SystemExit):  # Lightning's SIGTERMException
            trainer.fit(cut, _loader())
    finally:
        signal.signal(signal.SIGTERM, previous)
    last = tmp_path / "cut" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=False)["global_step"] == 7  # mid-epoch (16 batches per epoch)
    assert not list(last.parent.glob(".*.tmp"))

    resumed = _Linear()
    trainer = _trainer(tmp_path / "cut")
    trainer.fit(resumed, _loader(), ckpt_path=str(last))
    assert trainer.global_step == 40  # 2.5 epochs of 16 batches: the later epochs' order is the uninterrupted one
    torch.testing.assert_close(resumed.layer.weight, whole.layer.weight, rtol=0, atol=0)


def test_epoch_shuffle_sampler_order_and_state():
    sampler = EpochShuffleSampler(10, seed=3)
    first, second = list(sampler), list(sampler)
    assert sorted(first) == sorted(second) == list(range(10)) and first != second
    assert first == EpochShuffleSampler(10, seed=3).permutation(0) != EpochShuffleSampler(10, seed=4).permutation(0)
    # stop after 4 indices of epoch 2, restore into a new sampler: it continues the same order
    it = iter(sampler)
    head = [next(it) for _ in range(4)]
    state = sampler.state_dict()
    assert state == {"epoch": 2, "yielded": 4}
    other = EpochShuffleSampler(10, seed=3)
    other.load_state_dict(state)
    assert head + list(other) == sampler.permutation(2)
    assert list(other) == sampler.permutation(3)
    with pytest.raises(ValueError, match=r"yielded=11 outside \[0, 10\]"):
        other.load_state_dict({"epoch": 0, "yielded": 11})
