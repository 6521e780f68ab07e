"""Sweeps submitted to a real SLURM cluster: the single-node one of scripts/local_slurm.sh (CI starts it as root;
elsewhere run `sudo scripts/local_slurm.sh up` first, or these tests are skipped)."""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
import time

import pytest
import torch
import yaml
from safetensors.torch import load_file

from .test_train import REPO, TINY

# TINY's ACT with SGD (lr 1e-3, weight decay 1e-4) instead of its AdamW: the explicit optimizer node replaces
# policy.optimizer_lr, so that override is left out (setting both raises)
SGD_TINY_ACT = [o for o in TINY["act"] if not o.startswith("policy.optimizer_lr=")] + [
    "policy.optimizer={_target_: torch.optim.SGD, _partial_: true, lr: 1e-3, weight_decay: 1e-4}"]


def _cluster_up() -> bool:
    if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
        return False
    proc = subprocess.run(["sinfo", "-h", "-p", "cpu", "-o", "%T"], capture_output=True, text=True)
    return proc.returncode == 0 and any(s in proc.stdout for s in ("idle", "mixed", "allocated"))


pytestmark = pytest.mark.skipif(not _cluster_up(), reason="no SLURM cluster with a 'cpu' partition "
                                                          "(sudo scripts/local_slurm.sh up)")


def test_seed_sweep_runs_as_slurm_jobs_and_collects(tmp_path, shared_datasets):
    root = shared_datasets / "lerobot_written_pusht_random"
    cmd = [
        sys.executable, "train.py", "-m", "experiment=none", "hydra/launcher=slurm_cpu", "sweeps=seeds2",
        "hydra.launcher.timeout_min=15", "trainer=smoke", "trainer.max_steps=2", "trainer.val_check_interval=2",
        "dataset=local", f"dataset.root={root}", "dataset.num_workers=0", "dataset.val_fraction=0.2",
        *TINY["act"], f"paths.log_dir={tmp_path}", "callbacks.progress_bar=null", "logger=csv",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (sweep,) = (tmp_path / "train" / "multiruns").glob("*")
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit())
    assert len(jobs) == 2
    job_ids = set()
    for job in jobs:
        record = yaml.safe_load((job / "provenance.jsonl").read_text().splitlines()[0])
        assert record["slurm"]["SLURM_JOB_ID"]  # it ran inside a SLURM allocation
        job_ids.add(record["slurm"]["SLURM_JOB_ID"])
        assert (job / "checkpoints" / "pretrained_model" / "model.safetensors").is_file()
    assert len(job_ids) == 2
    table = tmp_path / "table.md"
    # the jobs ran this checkout: its provenance checks pass only when the tree is clean (as in CI)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                           capture_output=True, text=True).stdout.strip()
    out = subprocess.run([sys.executable, "experiments/collect.py", str(sweep), "--metric", "val/loss",
                          "--table", str(table), *(["--allow-dirty"] if dirty else [])],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "val/loss" in table.read_text()


def _logged_steps(metrics_csv) -> list[int]:
    """The ``step`` column of a Lightning CSVLogger file (rows that have one)."""
    with open(metrics_csv) as fh:
        return [int(r["step"]) for r in csv.DictReader(fh) if r.get("step")]


def _scontrol(*args: str) -> str:
    return subprocess.run(["scontrol", *args], capture_output=True, text=True, timeout=60).stdout


@pytest.mark.parametrize("loggers", ["csv", "[csv,wandb]"])
def test_requeued_job_resumes_at_its_step_with_one_wandb_run(tmp_path, shared_datasets, loggers):
    """Two identical jobs (same seed); the first is requeued mid-run with `scontrol requeue`, as SLURM preempts.
    It saves last.ckpt at the step the SIGTERM reached it, runs again as the same SLURM job, resumes at that step,
    keeps its W&B run id, and ends with the weights of the uninterrupted twin (ACT without VAE and dropout, SGD:
    deterministic given the batches, and the sampler restores the data order)."""
    root = shared_datasets / "lerobot_written_pusht_random"
    steps = 40
    # csv only: no periodic checkpoint before the end, so resuming mid-run proves the SIGTERM checkpoint.
    # with W&B: its service process dies with the SIGTERM and may break training first (then nothing is saved
    # mid-step and the job resumes from the last periodic checkpoint, every 10 steps)
    every = steps if loggers == "csv" else 10
    cmd = [
        sys.executable, "train.py", "-m", "experiment=none", "hydra/launcher=slurm_cpu", "seed=1000,1000",
        "hydra.launcher.timeout_min=15", "dataset=local", f"dataset.root={root}", "dataset.num_workers=0",
        "dataset.batch_size=4", "dataset.val_fraction=0", *SGD_TINY_ACT, "policy.use_vae=false",
        "policy.dropout=0.0", "policy.chunk_size=1", "policy.n_action_steps=1",
        f"trainer.max_steps={steps}", f"trainer.val_check_interval={every}",
        "trainer.limit_val_batches=0", "trainer.log_every_n_steps=1", f"logger={loggers}",
        f"paths.log_dir={tmp_path}", "callbacks.progress_bar=null",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}
    sweep_log = open(tmp_path / "sweep.log", "w")
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=sweep_log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 600
        job0, step = None, 0
        while time.time() < deadline and step < 8:  # wait until the first job is mid-run
            time.sleep(1)
            found = list(tmp_path.glob("train/multiruns/*/0/csv/version_0/metrics.csv"))
            if found:
                job0 = found[0].parents[2]
                step = max(_logged_steps(found[0]), default=0)
            assert proc.poll() is None, (tmp_path / "sweep.log").read_text()[-3000:]
        assert job0 is not None and step >= 8, "the first job did not start training"
        job_id = yaml.safe_load((job0 / "provenance.jsonl").read_text().splitlines()[0])["slurm"]["SLURM_JOB_ID"]
        subprocess.run(["scontrol", "requeue", job_id], check=True, timeout=60)
        # a requeued job waits for its begin time (about 2 minutes); make it eligible as soon as it is pending again
        for _ in range(120):
            info = _scontrol("show", "job", job_id)
            if "Restarts=1" in info and "JobState=PENDING" not in info and "JobState=REQUEUED" not in info:
                break
            if "JobState=PENDING" in info:
                _scontrol("update", f"JobId={job_id}", "StartTime=now")
            time.sleep(1)
        proc.wait(timeout=max(1, deadline - time.time()))
    finally:
        if proc.poll() is None:
            proc.kill()
        sweep_log.close()
    assert proc.returncode == 0, (tmp_path / "sweep.log").read_text()[-3000:]

    starts = [yaml.safe_load(line) for line in (job0 / "provenance.jsonl").read_text().splitlines()]
    assert len(starts) == 2 and {s["slurm"]["SLURM_JOB_ID"] for s in starts} == {job_id}
    assert starts[1]["ckpt_path"].endswith("last.ckpt")
    log = (job0 / "train.log").read_text()
    saved = [int(x) for x in re.findall(r"saved the training state at step (\d+)", log)]
    resumed_steps = _logged_steps(job0 / "csv" / "version_1" / "metrics.csv")
    assert max(resumed_steps) == steps - 1
    if loggers == "csv":
        assert len(saved) == 1 and 8 <= saved[0] < steps, log[-2000:]
        assert min(resumed_steps) == saved[0]  # resumed at the step the SIGTERM reached it
    else:
        if saved:
            assert min(resumed_steps) == saved[0]
        else:  # the last periodic checkpoint at or after the step we saw
            assert min(resumed_steps) % 10 == 0 and min(resumed_steps) >= 10 * (step // 10), (step, log[-2000:])
        # one W&B run: every attempt's offline run folder carries the same id, the twin's another
        runs = list((job0 / "wandb").glob("offline-run-*"))
        run_ids = {p.name.rsplit("-", 1)[-1] for p in runs}
        assert len(runs) == 2 and len(run_ids) == 1, runs
        assert {p.name.rsplit("-", 1)[-1] for p in (job0.parent / "1" / "wandb").glob("offline-run-*")} != run_ids
    twin = job0.parent / "1"
    a = load_file(job0 / "checkpoints" / "pretrained_model" / "model.safetensors")
    b = load_file(twin / "checkpoints" / "pretrained_model" / "model.safetensors")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=key)
