"""Ablation arms compose, and the Optuna sweeper runs a 2-trial search end to end."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from .test_configs import CONF, _compose
from .test_train import REPO, TINY

ABLATIONS = sorted(p.stem for p in (CONF / "ablation").glob("*.yaml"))


@pytest.mark.parametrize("ablation", ABLATIONS)
def test_ablation_arm_composes(ablation):
    cfg = _compose([f"+ablation={ablation}", "trainer=smoke"])
    if ablation == "act_temporal_ensemble":
        assert cfg.policy.temporal_ensemble_coeff == 0.01 and cfg.policy.n_action_steps == 1
    if ablation == "act_no_cvae":
        assert cfg.policy.use_vae is False


def test_optuna_search_runs_on_the_validation_loss(tmp_path, shared_datasets):
    root = shared_datasets / "lerobot_written_pusht_random"
    cmd = [
        sys.executable, "train.py", "-m", "experiment=none", "hydra/sweeper=optuna_lr_batch", "hydra.sweeper.n_trials=2",
        "trainer=smoke", "trainer.max_steps=2", "trainer.val_check_interval=2", "objective=val/loss", "logger=csv",
        "dataset=local", f"dataset.root={root}", "dataset.num_workers=0",
        *(o for o in TINY["act"] if not o.startswith("policy.optimizer.lr")),  # lr is searched
        f"paths.log_dir={tmp_path}", "callbacks.progress_bar=null",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (result,) = (tmp_path / "train" / "multiruns").glob("*/optimization_results.yaml")
    best = yaml.safe_load(result.read_text())
    assert set(best["best_params"]) == {"policy.optimizer.lr", "dataset.batch_size"}
    assert 1e-5 <= best["best_params"]["policy.optimizer.lr"] <= 1e-3
    assert isinstance(best["best_value"], float)
    # the value optimized is each trial's final validation loss, not its training loss
    val_losses = []
    for metrics in (tmp_path / "train" / "multiruns").glob("*/*/csv/version_0/metrics.csv"):
        rows = [r.split(",") for r in metrics.read_text().splitlines()]
        column = rows[0].index("val/loss")
        val_losses += [float(r[column]) for r in rows[1:] if len(r) > column and r[column]]
    assert len(val_losses) == 2 and best["best_value"] == pytest.approx(min(val_losses))


def test_objective_must_be_a_logged_metric():
    import lightning as L
    import torch

    from .test_train import train_script

    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_checkpointing=False)
    trainer.callback_metrics["train/loss"] = torch.tensor(0.5)
    assert train_script.objective_value(trainer, "train/loss") == 0.5
    with pytest.raises(KeyError, match=r"objective='val/los' was not logged by this run; logged metrics: \['train/loss'\]"):
        train_script.objective_value(trainer, "val/los")
