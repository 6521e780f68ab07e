"""Every ``*_smoke`` experiment runs to completion as a 2-job multirun with the local submitit launcher.

Slow (minutes per experiment on 2 cores): composition of every experiment is covered by
``tests/test_configs.py::test_experiment_composes``, the local multirun path by
``tests/test_train.py::test_multirun_sweep_with_submitit_local``.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from .test_configs import CONF
from .test_train import REPO

SMOKE = sorted(p.stem for p in (CONF / "experiment").glob("*_smoke.yaml"))


@pytest.mark.slow
@pytest.mark.parametrize("experiment", SMOKE)
def test_smoke_experiment_multirun(experiment, tmp_path):
    cmd = [sys.executable, "train.py", "-m", f"experiment={experiment}", "sweeps=seeds2", "hydra/launcher=local",
           f"paths.log_dir={tmp_path}", "callbacks.progress_bar=null"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    jobs = sorted(tmp_path.glob("*/multiruns/*/[0-9]*"))
    assert len(jobs) == 2
    for job in jobs:
        assert (job / "checkpoints" / "last.ckpt").is_file()
        assert (job / "checkpoints" / "pretrained_model" / "model.safetensors").is_file()


def test_every_experiment_has_a_smoke_twin():
    full = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml") if not p.stem.endswith("_smoke"))
    missing = [e for e in full if e not in {s[: -len("_smoke")] for s in SMOKE}]
    assert not missing, f"experiments without a *_smoke twin: {missing}"
