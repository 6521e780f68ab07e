"""Compose the project's Hydra configs in tests as the entry scripts do (schemas registered, repo conf/ tree)."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig

from robolearn.utils.schema import register_schemas

CONF = Path(__file__).resolve().parents[1] / "conf"


def compose_config(config: str, overrides: list[str], *, set_hydra: bool = False, no_experiment: bool = False):
    """``config`` (``train``, ``eval``, ``record``, ``serve``) with ``overrides``, including the ``hydra`` node.

    Args:
        set_hydra: also make it the current ``HydraConfig`` (for code that reads ``hydra.runtime``), as a run does.
        no_experiment: prepend ``experiment=none`` (``train`` only): not the main job's env and rollouts.
    """
    GlobalHydra.instance().clear()
    register_schemas()
    extra = ["experiment=none"] if no_experiment and config == "train" else []
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config, overrides=[*extra, *overrides], return_hydra_config=True)
    if set_hydra:
        HydraConfig.instance().set_config(cfg)
    return cfg
