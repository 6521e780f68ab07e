"""Train a policy: ``python train.py [group=option ...] [key=value ...]``.

Builds the DataModule from ``cfg.dataset`` (given the training-image augmentation of ``cfg.augment``), the policy
from ``cfg.policy`` with the dataset's features and stats, the Lightning Trainer from ``cfg.trainer`` (+ loggers and
callbacks), then fits. The same code trains every policy family; nothing here depends on which one is selected.
"""

from __future__ import annotations

import inspect
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import hydra
from hydra.utils import get_object, instantiate
from omegaconf import DictConfig, OmegaConf

from robolearn.utils import provenance
from robolearn.utils.arguments import check_node_arguments
from robolearn.utils.checkpoints import resolve_ckpt_path
from robolearn.utils.resolvers import register_resolvers
from robolearn.utils.schema import register_schemas

if TYPE_CHECKING:
    import lightning as L

log = logging.getLogger("robolearn.train")
register_schemas()
register_resolvers()


def instantiate_group(node: DictConfig | None) -> list:
    """Instantiate every ``_target_`` entry of a dict-shaped group (``logger``, ``callbacks``)."""
    if not node:
        return []
    return [instantiate(v) for v in node.values() if isinstance(v, DictConfig) and "_target_" in v]


def run_config(cfg: DictConfig) -> dict:
    """The resolved run config without Hydra's own node (saved with checkpoints and exports)."""
    return {k: OmegaConf.to_container(v, resolve=True) if isinstance(v, DictConfig) else v
            for k, v in cfg.items() if k != "hydra"}


def record_provenance(cfg: DictConfig, datamodule, trainer: L.Trainer, ckpt_path: str | None) -> dict | None:
    """Append this start's provenance to ``<output_dir>/provenance.jsonl``, log its key facts to the loggers and
    return it (None on other ranks)."""
    if trainer.global_rank != 0:
        return None
    meta = getattr(datamodule, "meta", None)
    dataset = provenance.dataset_provenance(meta, getattr(datamodule, "revision", None)) if meta is not None else None
    record = provenance.collect(run_config(cfg), dataset, Path(__file__).resolve().parent, ckpt_path)
    path = provenance.append_record(cfg.paths.output_dir, record)
    log.info("provenance appended to %s", path)
    git = record["git"] or {}
    flat = {"provenance/git_commit": git.get("commit"), "provenance/git_dirty": git.get("dirty"),
            "provenance/dataset_info_sha256": (dataset or {}).get("info_sha256"),
            "provenance/dataset_fingerprint": (dataset or {}).get("fingerprint")}
    for lg in trainer.loggers:
        lg.log_hyperparams(flat)
    return record


def build_datamodule(cfg: DictConfig):
    """Instantiate ``cfg.dataset``, giving it the :class:`~robolearn.augment.ImageAugment` of ``cfg.augment``
    (``conf/augment/``; None with ``augment=none``, and then the dataset node is instantiated as it is).

    Raises:
        ValueError: ``augment`` is set but the DataModule's constructor has no ``augment`` argument.
    """
    if cfg.get("augment") is None:
        return instantiate(cfg.dataset)
    target = cfg.dataset.get("_target_")
    if target and "augment" not in inspect.signature(get_object(target)).parameters:
        raise ValueError(f"augment is set but dataset._target_ {target} takes no `augment` argument: "
                         f"use augment=none with this dataset")
    return instantiate(cfg.dataset, augment=instantiate(cfg.augment, _convert_="all"))


def train(cfg: DictConfig):
    """Run one training job from a composed config; returns ``(trainer, policy, datamodule)``."""
    import lightning as L  # here, not at the top: `python train.py --help` and config errors need no torch

    L.seed_everything(cfg.seed, workers=True)
    for key in ("dataset", "policy", "augment"):  # a wrong-type override names its key here, not deep inside
        if cfg.get(key) is not None:
            check_node_arguments(OmegaConf.to_container(cfg[key], resolve=True), key)
    datamodule = build_datamodule(cfg)
    policy = instantiate(cfg.policy, features=datamodule.features, stats=datamodule.stats)
    datamodule.set_delta_indices(policy.delta_indices)
    policy.run_config = run_config(cfg)

    trainer = instantiate(
        cfg.trainer, logger=instantiate_group(cfg.get("logger")) or False,
        callbacks=instantiate_group(cfg.get("callbacks")),
    )
    if cfg.get("dry_run"):
        log.info("dry_run: stopping before fit\n%s", OmegaConf.to_yaml(cfg))
        return trainer, policy, datamodule
    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), cfg.paths.output_dir)
    policy.provenance = record_provenance(cfg, datamodule, trainer, ckpt_path)  # exported with the weights
    trainer.fit(policy, datamodule=datamodule, ckpt_path=ckpt_path)
    return trainer, policy, datamodule


def log_eval_command(cfg: DictConfig) -> str | None:
    """Log (and return) the ``eval.py`` command that evaluates this run's exported model in its simulator
    (``env=<choice>``, 50 episodes), or None without an export or a simulated env."""
    from hydra.core.hydra_config import HydraConfig

    export = Path(cfg.paths.output_dir) / "checkpoints" / "pretrained_model"
    env = HydraConfig.get().runtime.choices.get("env") if HydraConfig.initialized() else None
    if not export.is_dir() or not env or env == "none":
        return None
    command = f"python eval.py policy.path={export} env={env} eval.n_episodes=50"
    log.info("Evaluate the exported policy in simulation:\n  %s", command)
    return command


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    if cfg.get("role", "learner") != "learner":  # actor–learner experiments (HIL-SERL): actor / both processes
        from robolearn.rl.hil.roles import run_role

        return run_role(cfg, train, script=__file__)
    trainer, _, _ = train(cfg)
    log_eval_command(cfg)
    return objective_value(trainer, cfg.get("objective", "train/loss"))


def objective_value(trainer: L.Trainer, name: str) -> float | None:
    """The final value of the logged metric ``name`` (what ``python train.py -m hydra/sweeper=optuna...`` optimizes).

    Returns None for a dry run (nothing was trained).

    Raises:
        KeyError: no metric of that name was logged (the message lists the logged ones): a sweep must not optimize
            a metric that does not exist.
    """
    if trainer.global_step == 0 and not trainer.callback_metrics:
        return None
    value = trainer.callback_metrics.get(name)
    if value is None:
        raise KeyError(f"objective={name!r} was not logged by this run; logged metrics: "
                       f"{sorted(trainer.callback_metrics)}")
    return float(value)


if __name__ == "__main__":
    main()
