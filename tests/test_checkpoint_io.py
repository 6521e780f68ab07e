"""DirectFileCheckpointIO: checkpoints written without an in-memory copy, still atomically (a failed save leaves the
previous file, or save_last's link, as it was), and used by every trainer config."""

from __future__ import annotations

import os
import subprocess
import sys

import lightning as L
import pytest
import torch
from hydra.utils import instantiate

from robolearn.utils.checkpoint_io import DirectFileCheckpointIO, partial_path
from tests.compose import compose_config

from .test_preemption import _Linear, _loader


class _Unpicklable:
    def __reduce__(self):
        raise RuntimeError("cannot pickle this")


def test_saves_loads_and_leaves_no_temporary_file(tmp_path):
    io = DirectFileCheckpointIO()
    path = tmp_path / "sub" / "step.ckpt"  # the folder is created
    io.save_checkpoint({"state_dict": {"w": torch.arange(4.0)}, "global_step": 3}, path)
    loaded = io.load_checkpoint(path)
    assert loaded["global_step"] == 3 and torch.equal(loaded["state_dict"]["w"], torch.arange(4.0))
    assert sorted(p.name for p in path.parent.iterdir()) == ["step.ckpt"]
    with pytest.raises(TypeError, match="storage_options"):
        io.save_checkpoint({}, path, storage_options={"x": 1})


def test_a_hard_killed_writers_temporary_file_is_removed_by_the_next_save(tmp_path):
    io = DirectFileCheckpointIO()
    path = tmp_path / "last.ckpt"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its pid is free now: the writer is gone
    stale, live = partial_path(path, dead.pid), partial_path(path, os.getppid())  # the parent runs: not stale
    stale.write_bytes(b"half a checkpoint")
    live.write_bytes(b"another process is writing")
    io.save_checkpoint({"global_step": 1}, path)
    assert not stale.exists() and live.exists() and io.load_checkpoint(path)["global_step"] == 1


def test_a_failed_save_keeps_the_previous_file_and_the_link(tmp_path):
    io = DirectFileCheckpointIO()
    step = tmp_path / "step_000003.ckpt"
    io.save_checkpoint({"global_step": 3}, step)
    last = tmp_path / "last.ckpt"
    last.symlink_to(step.name)  # what ModelCheckpoint(save_last="link") leaves
    before = step.read_bytes()
    with pytest.raises(RuntimeError, match="cannot pickle"):
        io.save_checkpoint({"global_step": 5, "bad": _Unpicklable()}, last)
    assert last.is_symlink() and step.read_bytes() == before
    assert not partial_path(last).exists() and sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt",
                                                                                              step.name]
    io.save_checkpoint({"global_step": 5}, last)  # a good save replaces the link itself, not its target
    assert not last.is_symlink() and io.load_checkpoint(last)["global_step"] == 5
    assert io.load_checkpoint(step)["global_step"] == 3


def test_every_trainer_config_writes_through_it_and_a_fit_resumes(tmp_path):
    for trainer_cfg in ("default", "smoke", "cpu", "ddp_cpu"):
        cfg = compose_config("train", [f"trainer={trainer_cfg}"], no_experiment=True)
        assert [p["_target_"] for p in cfg.trainer.plugins] == ["robolearn.utils.checkpoint_io.DirectFileCheckpointIO"]
    cfg = compose_config("train", ["trainer=smoke", f"paths.output_dir={tmp_path}"], no_experiment=True)
    ckpt = L.pytorch.callbacks.ModelCheckpoint(dirpath=tmp_path / "checkpoints", save_last=True,
                                               every_n_train_steps=2)
    trainer = instantiate(cfg.trainer, max_steps=4, logger=False, callbacks=[ckpt], enable_progress_bar=False)
    assert isinstance(trainer.strategy.checkpoint_io, DirectFileCheckpointIO)
    trainer.fit(_Linear(), _loader())
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=False)["global_step"] == 4
    resumed = instantiate(cfg.trainer, max_steps=6, logger=False, enable_checkpointing=False,
                          enable_progress_bar=False)
    resumed.fit(_Linear(), _loader(), ckpt_path=last)
    assert resumed.global_step == 6
    assert not list((tmp_path / "checkpoints").glob(".*"))  # no temporary file left
