"""DDP on CPU with 2 processes (``trainer=ddp_cpu``, gloo): ``train.py`` launches its second rank through Lightning,
each rank trains on its own shard, and the averaged gradients make 2 ranks x batch 4 the same training as
1 rank x batch 8 over the same sampler order (issue 16).

ACT without its VAE and without dropout is deterministic given the batch, so the exported weights of the two runs
must agree to float tolerance. Had both ranks read the same samples, the averaged gradient would be the gradient of
4 samples, not of the 8 the single process reads, and the weights would differ. Two settings make the equivalence
exact rather than approximate: chunks of 1 action (ACT's L1 is a mean over the non-padded actions of the batch, so
with padding the mean of two ranks' means is not the mean over both), and SGD (Adam divides by the square root of
the gradient's running variance and turns float rounding differences of near-zero gradients into full-size steps).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from .test_train import REPO, TINY

STEPS = 4

# TINY's ACT with SGD (lr 1e-3, weight decay 1e-4) instead of its AdamW: the explicit optimizer node replaces
# policy.optimizer_lr, so that override is left out (setting both raises)
SGD_TINY_ACT = [o for o in TINY["act"] if not o.startswith("policy.optimizer_lr=")] + [
    "policy.optimizer={_target_: torch.optim.SGD, _partial_: true, lr: 1e-3, weight_decay: 1e-4}"]


def _train(tmp_path, shared_datasets, name: str, devices: int, batch_size: int):
    out = tmp_path / name
    cmd = [
        sys.executable, "train.py", "experiment=none", "dataset=local",
        f"dataset.root={shared_datasets / 'lerobot_written_pusht_random'}", "dataset.num_workers=0",
        f"dataset.batch_size={batch_size}", "dataset.val_fraction=0", *SGD_TINY_ACT,
        "policy.use_vae=false", "policy.dropout=0.0", "policy.chunk_size=1", "policy.n_action_steps=1",
        "trainer=ddp_cpu", f"trainer.devices={devices}",
        f"trainer.max_steps={STEPS}", f"trainer.val_check_interval={STEPS}", "trainer.limit_val_batches=0",
        "trainer.log_every_n_steps=1", "callbacks.progress_bar=null", "ckpt_path=null", f"hydra.run.dir={out}",
    ]
    # one intra-op thread per rank: the two ranks share the 2 cores
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, proc.stdout + proc.stderr


def test_two_cpu_ranks_train_like_one_rank_with_twice_the_batch(tmp_path, shared_datasets):
    two, log_two = _train(tmp_path, shared_datasets, "ddp2", devices=2, batch_size=4)
    assert "MEMBER: 2/2" in log_two, log_two[-2000:]  # Lightning started the second rank
    ckpt = torch.load(two / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == STEPS

    weights_two = _weights(two)
    same_batches = _weights(_train(tmp_path, shared_datasets, "ddp1_b8", devices=1, batch_size=8)[0])
    assert weights_two.keys() == same_batches.keys()
    for key, value in same_batches.items():
        torch.testing.assert_close(weights_two[key], value, rtol=1e-4, atol=1e-5, msg=key)

    # the equality is not trivial: one rank with half the batch (4 samples per step) ends elsewhere
    half = _weights(_train(tmp_path, shared_datasets, "ddp1_b4", devices=1, batch_size=4)[0])
    assert max((weights_two[k] - half[k]).abs().max().item() for k in half) > 1e-3


def _weights(run_dir):
    return load_file(run_dir / "checkpoints" / "pretrained_model" / "model.safetensors")
