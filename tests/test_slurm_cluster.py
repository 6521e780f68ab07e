"""Sweeps submitted to a real SLURM cluster: the single-node one of scripts/local_slurm.sh (CI starts it as root;
elsewhere run `sudo scripts/local_slurm.sh up` first, or these tests are skipped)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import yaml

from .test_train import REPO, TINY


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
        "policy=act", *TINY["act"], f"paths.log_dir={tmp_path}", "callbacks.progress_bar=null", "logger=csv",
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
