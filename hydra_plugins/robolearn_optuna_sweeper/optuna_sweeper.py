"""Hydra sweeper over Optuna's own ask/tell API: a study stored in SQLite that resumes, any objective, pruning.

    python train.py -m hydra/sweeper=optuna_lr_batch objective=val/loss hydra.sweeper.n_trials=20
    python train.py -m hydra/sweeper=optuna_lr_batch objective=eval/pc_success hydra.sweeper.direction=maximize \
        'hydra.sweeper.pruner={_target_: optuna.pruners.MedianPruner, n_startup_trials: 3}'
    python train.py -m hydra/sweeper=optuna_lr_batch hydra.sweep.dir=<the same dir>     # resume the search

It replaces ``hydra-optuna-sweeper`` (which pins Optuna 2.x, counts ``n_trials`` per invocation and cannot prune):

- **Search space**: ``hydra.sweeper.params`` and the command line, in Hydra's sweep syntax:
  ``interval(a, b)`` (float, ``tag(log, ...)`` for log scale, ``tag(int, ...)`` for integers), ``choice(...)``,
  ``range(...)`` (categorical over its values); any other override is fixed for every trial.
- **Objective**: what ``train.py`` returns, the final value of ``objective`` (any logged metric); ``direction`` is
  ``minimize`` or ``maximize``.
- **Resume**: the study lives in ``storage`` (default ``sqlite:///<sweep dir>/optuna.db``) and is loaded when it
  exists. ``n_trials`` is the total of finished (complete or pruned) trials the study should hold, so rerunning the
  same command runs only what is missing; trials left ``RUNNING`` by an interrupted search are marked failed first
  (run one sweeper per study at a time).
- **Pruning**: each job gets ``optuna_trial={storage, study_name, number, pruner}``; ``callbacks.optuna_pruning``
  (:class:`robolearn.callbacks.optuna_pruning.OptunaPruning`) reports the objective during training and stops the
  run when ``pruner`` says so; the trial is then told ``PRUNED``.
- **Launchers**: trials go through ``hydra/launcher`` (local, or SLURM via submitit) ``n_jobs`` at a time; a
  trial's job folder under the sweep dir is its trial number.

Writes ``<sweep dir>/optimization_results.yaml`` (best trial, counts per state) and ``trials.csv``.
"""

# (no "from __future__ import annotations": Hydra scans plugin modules outside sys.modules, where dataclasses
# cannot resolve string annotations)

import csv
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from robolearn.utils.optuna_trial import PRUNED_ATTR

log = logging.getLogger(__name__)


@dataclass
class RobolearnOptunaSweeperConf:
    """``hydra/sweeper=robolearn_optuna``: the arguments of :class:`RobolearnOptunaSweeper`."""

    _target_: str = "hydra_plugins.robolearn_optuna_sweeper.optuna_sweeper.RobolearnOptunaSweeper"
    direction: str = "minimize"
    study_name: str = "robolearn"
    storage: Any = "sqlite:///${hydra.sweep.dir}/optuna.db"
    n_trials: int = 20
    n_jobs: int = 1
    max_failure_rate: float = 0.0
    sampler: Any = field(default_factory=lambda: {"_target_": "optuna.samplers.TPESampler", "seed": None})
    pruner: Any = None
    params: Any = field(default_factory=dict)


ConfigStore.instance().store(group="hydra/sweeper", name="robolearn_optuna", node=RobolearnOptunaSweeperConf,
                             provider="robolearn")


def search_space(overrides: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    """``({key: optuna distribution}, [fixed override lines])`` from Hydra override strings.

    Raises:
        ValueError: a sweep Optuna cannot sample (an interval with ``tag(int, ...)`` on non-integers), or a
            ``choice``/``range`` that is empty.
    """
    import optuna

    distributions: dict[str, Any] = {}
    fixed: list[str] = []
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        key = override.get_key_element()
        if not override.is_sweep_override():
            fixed.append(override.input_line)
            continue
        value = override.value()
        tags = set(getattr(value, "tags", set()) or set())
        if override.is_interval_sweep():
            low, high, log_scale = value.start, value.end, "log" in tags
            if "int" in tags:
                if low != int(low) or high != int(high):
                    raise ValueError(f"{key}: tag(int, interval({low}, {high})) needs integer bounds")
                distributions[key] = optuna.distributions.IntDistribution(int(low), int(high), log=log_scale)
            else:
                distributions[key] = optuna.distributions.FloatDistribution(float(low), float(high), log=log_scale)
        else:  # choice(...) or range(...)
            choices = list(override.sweep_iterator())
            if not choices:
                raise ValueError(f"{key}: {override.input_line} has no values")
            distributions[key] = optuna.distributions.CategoricalDistribution(choices)
    return distributions, fixed


def override_value(value: Any) -> str:
    """``value`` (dicts, lists, str, numbers, bools, None) written in Hydra's override grammar, strings quoted.

    Raises:
        TypeError: a value of another type.
    """
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {override_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(override_value(v) for v in value) + "]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    raise TypeError(f"cannot write {value!r} ({type(value).__name__}) as a Hydra override value")


class RobolearnOptunaSweeper(Sweeper):
    """Optuna search behind Hydra's ``Sweeper`` interface (see the module docstring).

    Args:
        direction: ``"minimize"`` or ``"maximize"`` the value the task returns.
        study_name: the study's name in ``storage``.
        storage: an Optuna storage URL (``sqlite:///path.db``), or None for an in-memory study (no resume, no
            pruning: the jobs cannot reach it).
        n_trials: finished (complete + pruned) trials the study should hold when the sweep ends.
        n_jobs: trials launched together (one launcher batch).
        max_failure_rate: fraction of a batch that may fail before the sweep stops with the first failure.
        sampler: an ``optuna.samplers`` object (instantiated from the config's ``_target_``); None = TPE.
        pruner: an ``optuna.pruners`` object, or None (never prune).
        params: ``{override key: sweep expression}``, e.g. ``{"policy.optimizer_lr": "tag(log, interval(1e-5, 1e-3))"}``.

    Raises:
        ValueError: a bad ``direction``, ``n_trials``/``n_jobs`` below 1, or ``max_failure_rate`` outside [0, 1].
    """

    def __init__(self, direction: str = "minimize", study_name: str = "robolearn", storage: str | None = None,
                 n_trials: int = 20, n_jobs: int = 1, max_failure_rate: float = 0.0, sampler: Any = None,
                 pruner: Any = None, params: Any = None) -> None:
        if direction not in ("minimize", "maximize"):
            raise ValueError(f"hydra.sweeper.direction must be 'minimize' or 'maximize', got {direction!r}")
        if n_trials < 1 or n_jobs < 1:
            raise ValueError(f"hydra.sweeper.n_trials and n_jobs must be >= 1, got {n_trials} and {n_jobs}")
        if not 0.0 <= max_failure_rate <= 1.0:
            raise ValueError(f"hydra.sweeper.max_failure_rate must be in [0, 1], got {max_failure_rate}")
        self.direction, self.study_name, self.storage = direction, study_name, storage
        self.n_trials, self.n_jobs, self.max_failure_rate = int(n_trials), int(n_jobs), float(max_failure_rate)
        self.sampler, self.pruner = sampler, pruner
        self.params = OmegaConf.to_container(params) if isinstance(params, DictConfig) else dict(params or {})
        self.config: DictConfig | None = None
        self.pruner_config: dict | None = None
        self.launcher: Any = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        pruner = config.hydra.sweeper.get("pruner")
        self.pruner_config = OmegaConf.to_container(pruner, resolve=True) if pruner is not None else None
        self.launcher = Plugins.instance().instantiate_launcher(hydra_context=hydra_context,
                                                                task_function=task_function, config=config)

    def _study(self) -> Any:
        import optuna

        if isinstance(self.storage, str) and self.storage.startswith("sqlite:///"):
            Path(self.storage[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        study = optuna.create_study(study_name=self.study_name, storage=self.storage, sampler=self.sampler,
                                    pruner=self.pruner, direction=self.direction, load_if_exists=True)
        for stale in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            log.warning("trial %d was left running by an interrupted search; marking it failed", stale.number)
            study.tell(stale.number, state=optuna.trial.TrialState.FAIL)
        return study

    def _trial_override(self, number: int) -> list[str]:
        if self.storage is None:
            return []
        spec = {"storage": self.storage, "study_name": self.study_name, "number": number,
                "pruner": self.pruner_config}
        return [f"optuna_trial={override_value(spec)}"]

    def sweep(self, arguments: list[str]) -> None:
        """Run trials until the study holds ``n_trials`` finished ones; write the results.

        Raises:
            Exception: the first failed job's error, when more than ``max_failure_rate`` of a batch failed.
            RuntimeError: ``n_trials`` trials failed in this sweep (with ``max_failure_rate`` letting them through).
        """
        import optuna

        assert self.config is not None and self.launcher is not None
        distributions, fixed = search_space([f"{k}={v}" for k, v in self.params.items()] + list(arguments))
        study = self._study()
        if self.pruner is not None and self.storage is None:
            log.warning("hydra.sweeper.pruner is set but storage is null: the jobs cannot reach an in-memory study, "
                        "so no trial is pruned (set storage to an sqlite:/// URL)")
        finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        log.info("Optuna study %r (%s): %d of %d trials finished; searching %s", self.study_name, self.storage,
                 len(study.get_trials(states=finished)), self.n_trials, sorted(distributions))
        failed = 0
        while (done := len(study.get_trials(deepcopy=False, states=finished))) < self.n_trials:
            if failed >= self.n_trials:
                raise RuntimeError(f"{failed} trials of study {self.study_name!r} failed in this sweep; stopping")
            trials = [study.ask(distributions) for _ in range(min(self.n_jobs, self.n_trials - done))]
            batch = [tuple(fixed + [f"{k}={v}" for k, v in t.params.items()] + self._trial_override(t.number))
                     for t in trials]
            # job folders are numbered by trial, so a resumed search does not overwrite earlier trials' runs
            returns = self.launcher.launch(batch, initial_job_idx=trials[0].number)
            failures = []
            for trial, ret in zip(trials, returns):
                try:
                    value = float(ret.return_value)
                    if not math.isfinite(value):
                        raise ValueError(f"trial {trial.number} returned {value}")
                except Exception as e:  # the job's own error, re-raised by return_value
                    log.warning("trial %d failed: %s", trial.number, e)
                    study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
                    failures.append(e)
                    continue
                pruned = study.get_trials(deepcopy=False)[trial.number].user_attrs.get(PRUNED_ATTR)
                if pruned is not None:
                    log.info("trial %d pruned at step %s", trial.number, pruned)
                    study.tell(trial.number, state=optuna.trial.TrialState.PRUNED)
                else:
                    study.tell(trial.number, value)
            failed += len(failures)
            if failures and len(failures) / len(returns) > self.max_failure_rate:
                raise failures[0]
        self._write_results(study)

    def _write_results(self, study: Any) -> None:
        import optuna

        out = Path(str(self.config.hydra.sweep.dir))
        out.mkdir(parents=True, exist_ok=True)
        trials = study.get_trials(deepcopy=False)
        counts = {s.name.lower(): sum(t.state == s for t in trials) for s in optuna.trial.TrialState}
        results: dict[str, Any] = {"name": "robolearn_optuna", "study_name": self.study_name,
                                   "storage": self.storage, "direction": self.direction,
                                   "objective": self.config.get("objective"), "trials": counts}
        if counts["complete"]:
            best = study.best_trial
            results.update(best_trial=best.number, best_params=best.params, best_value=best.value)
            log.info("best trial %d: %s = %s with %s", best.number, results["objective"], best.value, best.params)
        OmegaConf.save(OmegaConf.create(results), out / "optimization_results.yaml")
        keys = sorted({k for t in trials for k in t.params})
        with open(out / "trials.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["number", "state", "value", "pruned_at_step", *keys])
            for t in trials:
                w.writerow([t.number, t.state.name, t.value, t.user_attrs.get(PRUNED_ATTR),
                            *(t.params.get(k) for k in keys)])
