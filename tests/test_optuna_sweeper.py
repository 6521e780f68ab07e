"""robolearn's Optuna sweeper (hydra_plugins/robolearn_optuna_sweeper) and the pruning callback: search-space
parsing, pruning inside a Lightning run, and through ``train.py -m``: a 4-trial study on ``val/loss`` that resumes
after an interruption, and a study whose pruner stops every trial at its first report."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import optuna
import pytest
import torch
import yaml

from hydra.core.override_parser.overrides_parser import OverridesParser

from hydra_plugins.robolearn_optuna_sweeper.optuna_sweeper import RobolearnOptunaSweeper, override_value, search_space
from robolearn.callbacks.optuna_pruning import PRUNED_ATTR, OptunaPruning, open_trial

REPO = Path(__file__).resolve().parents[1]


def test_search_space_from_hydra_sweep_syntax():
    dists, fixed = search_space(["lr=tag(log, interval(1e-5, 1e-3))", "bs=choice(8, 16)", "k=range(1, 4)",
                                 "n=tag(int, interval(2, 6))", "seed=3", "+x=a"])
    assert dists["lr"] == optuna.distributions.FloatDistribution(1e-5, 1e-3, log=True)
    assert dists["bs"] == optuna.distributions.CategoricalDistribution([8, 16])
    assert dists["k"] == optuna.distributions.CategoricalDistribution([1, 2, 3])
    assert dists["n"] == optuna.distributions.IntDistribution(2, 6)
    assert fixed == ["seed=3", "+x=a"]
    with pytest.raises(ValueError, match=r"n: tag\(int, interval\(2.5, 6.0\)\) needs integer bounds"):
        search_space(["n=tag(int, interval(2.5, 6))"])
    with pytest.raises(ValueError, match="direction must be 'minimize' or 'maximize', got 'max'"):
        RobolearnOptunaSweeper(direction="max")
    # the trial spec handed to each job survives Hydra's override grammar
    spec = {"storage": "sqlite:////tmp/a b/it's.db", "study_name": "s", "number": 3,
            "pruner": {"_target_": "optuna.pruners.MedianPruner", "n_startup_trials": 2, "x": None, "y": [1.5, True]}}
    (parsed,) = OverridesParser.create().parse_overrides([f"optuna_trial={override_value(spec)}"])
    assert parsed.value() == spec


class _Regression(L.LightningModule):
    """Logs ``val/loss`` = a constant after every validation (the pruner's input)."""

    def __init__(self, val_loss: float):
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)
        self.val_loss = val_loss

    def training_step(self, batch, batch_idx):
        return self.layer(batch[0]).pow(2).mean()

    def validation_step(self, batch, batch_idx):
        self.log("val/loss", self.val_loss)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def _loader():
    data = torch.utils.data.TensorDataset(torch.randn(64, 2))
    return torch.utils.data.DataLoader(data, batch_size=4)


def _fit(spec, val_loss: float, max_steps: int = 12) -> tuple[L.Trainer, OptunaPruning]:
    callback = OptunaPruning(spec, monitor="val/loss", every_n_train_steps=3)
    trainer = L.Trainer(max_steps=max_steps, val_check_interval=3, limit_val_batches=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[callback], num_sanity_val_steps=0)
    trainer.fit(_Regression(val_loss), _loader(), _loader())
    return trainer, callback


def test_pruning_callback_reports_and_stops(tmp_path):
    storage = f"sqlite:///{tmp_path}/study.db"
    study = optuna.create_study(study_name="s", storage=storage)
    good, bad = study.ask(), study.ask()
    pruner = {"_target_": "optuna.pruners.ThresholdPruner", "upper": 1.0}  # the job builds the sweeper's pruner
    trainer, callback = _fit({"storage": storage, "study_name": "s", "number": good.number, "pruner": pruner},
                             val_loss=0.5)
    assert trainer.global_step == 12 and callback.pruned_at_step is None
    trainer, callback = _fit({"storage": storage, "study_name": "s", "number": bad.number, "pruner": pruner},
                             val_loss=2.0)
    assert trainer.global_step == 3 and callback.pruned_at_step == 3  # stopped at the first report
    trials = study.get_trials(deepcopy=False)
    assert trials[good.number].intermediate_values == {3: 0.5, 6: 0.5, 9: 0.5, 12: 0.5}
    assert trials[bad.number].intermediate_values == {3: 2.0}
    assert trials[bad.number].user_attrs == {PRUNED_ATTR: 3}
    # without a trial the callback does nothing; a bad trial spec fails with the missing keys
    trainer, callback = _fit(None, val_loss=2.0)
    assert trainer.global_step == 12
    with pytest.raises(ValueError, match=r"missing \['number'\]"):
        open_trial({"storage": storage, "study_name": "s"})
    with pytest.raises(ValueError, match="has no trial 99"):
        open_trial({"storage": storage, "study_name": "s", "number": 99})
    with pytest.raises(ValueError, match=r"pruner._target_ must be an optuna.pruners class, got 'os.system'"):
        open_trial({"storage": storage, "study_name": "s", "number": 0, "pruner": {"_target_": "os.system"}})


def _sweep(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "train.py", "-m", "experiment=so101_pick_place", "debug=smoke", "hydra/sweeper=optuna_lr_batch",
           "objective=val/loss", "trainer.max_steps=6", "trainer.val_check_interval=3", "logger=csv",
           "callbacks.progress_bar=null", "callbacks.rollout_eval=null", f"hydra.sweep.dir={tmp_path}/sweep",
           "hydra.sweeper.sampler.n_startup_trials=2", *extra]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "ROBOLEARN_DATA_DIR": str(tmp_path / "data"),
           "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)


def _final_val_loss(job: Path) -> float:
    rows = list(csv.DictReader(open(job / "csv" / "version_0" / "metrics.csv")))
    return [float(r["val/loss"]) for r in rows if r.get("val/loss")][-1]


def test_study_minimizes_val_loss_and_resumes(tmp_path):
    first = _sweep(tmp_path, "hydra.sweeper.n_trials=2")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    storage = f"sqlite:///{tmp_path}/sweep/optuna.db"
    study = optuna.load_study(study_name="robolearn", storage=storage)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    study.ask()  # a trial an interrupted search left running
    again = _sweep(tmp_path, "hydra.sweeper.n_trials=4")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    study = optuna.load_study(study_name="robolearn", storage=storage)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]
    jobs = {int(p.name): p for p in (tmp_path / "sweep").iterdir() if p.name.isdigit()}
    assert sorted(jobs) == [0, 1, 3, 4]  # one folder per trial, numbered by trial; the first two kept
    # each trial's value is its run's final validation loss, and the best trial is the lowest of them
    for t in study.trials:
        if t.state.name == "COMPLETE":
            assert t.value == pytest.approx(_final_val_loss(jobs[t.number]))
            overrides = yaml.safe_load((jobs[t.number] / ".hydra" / "overrides.yaml").read_text())
            assert f"dataset.batch_size={t.params['dataset.batch_size']}" in overrides
    result = yaml.safe_load((tmp_path / "sweep" / "optimization_results.yaml").read_text())
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    best = min(complete, key=lambda t: t.value)
    assert result["best_trial"] == best.number and result["best_value"] == pytest.approx(best.value)
    assert result["trials"]["complete"] == 4 and result["trials"]["fail"] == 1
    assert result["objective"] == "val/loss"
    # rerunning a finished study launches nothing
    done = _sweep(tmp_path, "hydra.sweeper.n_trials=4")
    assert done.returncode == 0 and len(optuna.load_study(study_name="robolearn", storage=storage).trials) == 5


def test_pruned_trials_stop_early(tmp_path):
    proc = _sweep(tmp_path, "hydra.sweeper.n_trials=2",
                  "hydra.sweeper.pruner={_target_: optuna.pruners.ThresholdPruner, upper: -1.0}")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = list(csv.DictReader(open(tmp_path / "sweep" / "trials.csv")))
    assert [(r["state"], r["pruned_at_step"]) for r in rows] == [("PRUNED", "3"), ("PRUNED", "3")]
    for job in ("0", "1"):  # stopped at the first report, step 3 of 6
        metrics = list(csv.DictReader(open(tmp_path / "sweep" / job / "csv" / "version_0" / "metrics.csv")))
        assert max(int(r["step"]) for r in metrics) < 6
    result = yaml.safe_load((tmp_path / "sweep" / "optimization_results.yaml").read_text())
    assert result["trials"]["pruned"] == 2 and "best_value" not in result
