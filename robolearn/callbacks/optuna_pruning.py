"""Report a run's objective to its Optuna trial while it trains, and stop the run when the pruner says so.

The Optuna sweeper (``hydra/sweeper=robolearn_optuna``, ``hydra_plugins/robolearn_optuna_sweeper``) launches each
trial as a ``train.py`` job with ``optuna_trial={storage, study_name, number, pruner}``; this callback (in
``conf/callbacks/default.yaml``, inert when ``optuna_trial`` is null) opens that trial in the study's storage, reports
the monitored metric (``objective``: ``val/loss``, ``eval/pc_success`` ...) at every evaluation step and, when
``trial.should_prune()``, sets ``trainer.should_stop`` and records the step in the trial's user attribute
``pruned_at_step``. The sweeper then tells the study the trial was pruned. Nothing is raised, so a pruned run ends
like a short one (checkpoint, export).

Why not ``optuna_integration.PyTorchLightningPruningCallback``: it reports on ``on_validation_end`` with the epoch
as the step, while robolearn trains by steps in one long epoch and logs rollout success outside validation.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

import lightning as L

from robolearn.utils.optuna_trial import PRUNED_ATTR

log = logging.getLogger(__name__)



def open_trial(spec: Mapping[str, Any]) -> Any:
    """The ``optuna.trial.Trial`` named by ``{storage, study_name, number, pruner}`` (its study must be in
    ``storage``). ``pruner`` is the sweeper's pruner config (``{_target_: optuna.pruners.<Name>, ...}``) or null:
    a pruner is not stored with the study, so the job builds the same one to decide.

    Raises:
        ValueError: a key is missing, the pruner is not an ``optuna.pruners`` class, or the study has no trial of
            that number.
        KeyError: (Optuna) no study of that name in the storage.
    """
    import optuna
    from hydra.utils import instantiate

    missing = sorted({"storage", "study_name", "number"} - set(spec))
    if missing:
        raise ValueError(f"optuna_trial needs storage, study_name and number; missing {missing} in {dict(spec)}")
    pruner_cfg = spec.get("pruner")
    pruner = None
    if isinstance(pruner_cfg, optuna.pruners.BasePruner):
        pruner = pruner_cfg
    elif pruner_cfg:
        target = str(dict(pruner_cfg).get("_target_", ""))
        if not target.startswith("optuna.pruners."):
            raise ValueError(f"optuna_trial.pruner._target_ must be an optuna.pruners class, got {target!r}")
        pruner = instantiate(pruner_cfg)
    storage = optuna.storages.get_storage(str(spec["storage"]))
    study = optuna.load_study(study_name=str(spec["study_name"]), storage=storage,
                              pruner=pruner or optuna.pruners.NopPruner())
    study_id = storage.get_study_id_from_name(str(spec["study_name"]))
    try:
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, int(spec["number"]))
    except KeyError as e:
        raise ValueError(f"study {spec['study_name']!r} in {spec['storage']} has no trial {spec['number']}") from e
    return optuna.trial.Trial(study, trial_id)


class OptunaPruning(L.Callback):
    """Report ``monitor`` to an Optuna trial every ``every_n_train_steps`` steps and stop when it should be pruned.

    Args:
        trial: ``{storage, study_name, number, pruner}`` of the trial this run is (set by the sweeper; see
            :func:`open_trial`), or None: the callback does nothing.
        monitor: the logged metric reported (the sweep's ``objective``).
        every_n_train_steps: the steps at which ``monitor`` is logged (``trainer.val_check_interval``: validation
            and rollout evaluation). A value is reported once per such step, after validation
            (``on_validation_end``) or before the next batch (after every callback's batch-end logging, e.g. the
            rollout evaluation's ``eval/pc_success``). The value at the end of training is not reported: it is
            the trial's result, which the sweeper tells the study.

    Only global rank 0 talks to the study; its decision is broadcast so every DDP rank stops together.

    Raises:
        ValueError: with a ``trial``, ``every_n_train_steps`` not an int >= 1; on fit start, a bad ``trial``
            (see :func:`open_trial`).
    """

    def __init__(self, trial: Mapping[str, Any] | None, monitor: str, every_n_train_steps: int | None) -> None:
        super().__init__()
        self.spec = dict(trial) if trial else None
        if self.spec is not None and (not isinstance(every_n_train_steps, int) or every_n_train_steps < 1):
            raise ValueError(f"every_n_train_steps (trainer.val_check_interval) must be an int >= 1 for an Optuna "
                             f"trial, got {every_n_train_steps!r}")
        self.monitor = monitor
        self.every_n_train_steps = int(every_n_train_steps or 1)
        self.trial: Any = None
        self.reported: dict[int, float] = {}
        self.pruned_at_step: int | None = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.spec is not None and trainer.is_global_zero:
            self.trial = open_trial(self.spec)
            log.info("Optuna trial %s of study %r: reporting %s every %d steps", self.spec["number"],
                     self.spec["study_name"], self.monitor, self.every_n_train_steps)

    def _check(self, trainer: L.Trainer) -> None:
        if self.spec is None or trainer.sanity_checking:
            return
        step = trainer.global_step
        if step == 0 or step % self.every_n_train_steps or step in self.reported:
            return
        prune = False
        if trainer.is_global_zero:
            value = trainer.callback_metrics.get(self.monitor)
            if value is not None:
                self.reported[step] = float(value)
                self.trial.report(float(value), step=step)
                prune = bool(self.trial.should_prune())
        else:
            self.reported[step] = float("nan")
        prune = bool(trainer.strategy.broadcast(prune))
        if prune:
            self.pruned_at_step = step
            trainer.should_stop = True
            if trainer.is_global_zero:
                self.trial.set_user_attr(PRUNED_ATTR, step)
                log.info("Optuna pruned trial %s at step %d (%s = %.4g)", self.spec["number"], step, self.monitor,
                         self.reported[step])

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._check(trainer)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        self._check(trainer)
