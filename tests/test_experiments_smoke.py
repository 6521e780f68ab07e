"""Every experiment with ``debug=smoke`` runs to completion as a 2-job multirun with the local submitit launcher.

Slow (minutes per experiment on 2 cores): composition of every experiment is covered by
``tests/test_configs.py::test_experiment_composes`` and what ``debug=smoke`` shrinks in each by
``tests/test_configs.py::test_debug_smoke_shortens_every_experiment``, the local multirun path by
``tests/test_train.py::test_multirun_sweep_with_submitit_local``.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from .test_configs import CONF
from .test_train import REPO

EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml") if p.stem != "none")
# Experiments whose inputs come from earlier steps of a workflow, run end to end by another test instead.
NEEDS_INPUTS = {
    "hil_serl_planar_reach_classifier": "needs recorded demos and a trained reward classifier; "
                                        "tests/rl/test_hil_workflow.py runs the three steps",
}


@pytest.mark.slow
@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_smoke_experiment_multirun(experiment, tmp_path):
    if experiment in NEEDS_INPUTS:
        pytest.skip(NEEDS_INPUTS[experiment])
    cmd = [sys.executable, "train.py", "-m", f"experiment={experiment}", "debug=smoke", "sweeps=seeds2",
           "hydra/launcher=local", f"paths.log_dir={tmp_path}", "callbacks.progress_bar=null"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    jobs = sorted(tmp_path.glob("*/multiruns/*/[0-9]*"))
    assert len(jobs) == 2
    for job in jobs:
        assert (job / "checkpoints" / "last.ckpt").is_file()
        assert (job / "checkpoints" / "pretrained_model" / "model.safetensors").is_file()


@pytest.mark.slow
def test_vqbet_smoke_trains_and_evaluates_on_pusht(tmp_path, shared_datasets):
    """Issue 7: VQ-BeT trains and evaluates on PushT like ACT and Diffusion do (about 2 minutes on 2 cores)."""
    import json

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    run = tmp_path / "run"
    train = [sys.executable, "train.py", "experiment=pusht_vqbet", "debug=smoke", f"hydra.run.dir={run}",
             "trainer.max_steps=20", "trainer.val_check_interval=20",
             "callbacks.progress_bar=null", "ckpt_path=null"]
    proc = subprocess.run(train, cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    model = run / "checkpoints" / "pretrained_model"
    evaluate = [sys.executable, "eval.py", f"policy.path={model}", "env=pusht", "eval.n_episodes=2",
                "eval.batch_size=2", "eval.progress=false", "eval.max_episodes_rendered=0",
                f"hydra.run.dir={tmp_path / 'eval'}"]
    proc = subprocess.run(evaluate, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    agg = json.loads((tmp_path / "eval" / "eval_info.json").read_text())["aggregated"]
    assert agg["n_episodes"] == 2 and 0.0 <= agg["pc_success"] <= 100.0
    assert agg["avg_episode_length"] > 0
