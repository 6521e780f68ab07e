"""Ablation arms compose; train.py returns the logged objective (tests/test_optuna_sweeper.py runs the sweeper)."""

from __future__ import annotations

import pytest

from .test_configs import CONF, _compose

ABLATIONS = sorted(p.stem for p in (CONF / "ablation").glob("*.yaml"))


@pytest.mark.parametrize("ablation", ABLATIONS)
def test_ablation_arm_composes(ablation):
    cfg = _compose([f"+ablation={ablation}", "trainer=smoke"])
    if ablation == "act_temporal_ensemble":
        assert cfg.policy.temporal_ensemble_coeff == 0.01 and cfg.policy.n_action_steps == 1
    if ablation == "act_no_cvae":
        assert cfg.policy.use_vae is False


def test_objective_must_be_a_logged_metric():
    import lightning as L
    import torch

    from .test_train import train_script

    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_checkpointing=False)
    trainer.callback_metrics["train/loss"] = torch.tensor(0.5)
    assert train_script.objective_value(trainer, "train/loss") == 0.5
    with pytest.raises(KeyError, match=r"objective='val/los' was not logged by this run; logged metrics: \['train/loss'\]"):
        train_script.objective_value(trainer, "val/los")
