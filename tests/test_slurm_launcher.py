"""SLURM launcher configs: they validate against hydra-submitit-launcher's schema, and the sbatch script submitit
generates from them has one task per GPU for DDP (what Lightning's SLURMEnvironment expects)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from robolearn.utils.schema import register_schemas

from .test_train import REPO


def _launcher_cfg(name: str, overrides=()):
    GlobalHydra.instance().clear()
    register_schemas()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[f"hydra/launcher={name}", *overrides], return_hydra_config=True)
    return cfg.hydra.launcher


@pytest.fixture
def fake_srun(tmp_path, monkeypatch):
    """submitit's SlurmExecutor insists on finding `srun`; nothing here submits, so a no-op one is enough."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "srun").write_text("#!/bin/sh\nexit 0\n")
    (bindir / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{__import__('os').environ['PATH']}")


def _sbatch(launcher, folder) -> str:
    """The sbatch text submitit would submit, built as hydra-submitit-launcher builds its executor."""
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

    params = {k: v for k, v in OmegaConf.to_container(launcher, resolve=False).items() if k != "_target_"}
    init = {"folder": str(folder), "slurm_max_num_timeout": params.pop("max_num_timeout")}
    params.pop("submitit_folder")
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    executor = submitit.AutoExecutor(cluster="slurm", **init)
    executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in params.items()})
    return executor._executor._make_submission_file_text("python train.py", "0")


@pytest.mark.parametrize("name", ["slurm_1gpu", "slurm_4gpu_ddp"])
def test_launcher_validates_with_hydra_cfg(name):
    proc = subprocess.run(
        [sys.executable, "train.py", f"hydra/launcher={name}", "--cfg", "hydra", "-p", "hydra.launcher"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher" in proc.stdout


def test_ddp_sbatch_one_task_per_gpu(tmp_path, fake_srun):
    text = _sbatch(_launcher_cfg("slurm_4gpu_ddp"), tmp_path)
    assert "#SBATCH --ntasks-per-node=4" in text
    assert "#SBATCH --gpus-per-node=4" in text
    assert "#SBATCH --cpus-per-task=8" in text and "gpus-per-task" not in text
    assert "srun" in text  # one process per task, each a DDP rank


def test_single_gpu_sbatch(tmp_path, fake_srun):
    text = _sbatch(_launcher_cfg("slurm_1gpu"), tmp_path)
    assert "#SBATCH --ntasks-per-node=1" in text and "#SBATCH --gpus-per-node=1" in text
    assert "#SBATCH --time=1440" in text
    assert "--signal=USR2@" in text  # submitit's pre-timeout signal: the job is checkpointed and requeued


def test_ddp_trainer_matches_launcher():
    GlobalHydra.instance().clear()
    register_schemas()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["hydra/launcher=slurm_4gpu_ddp", "trainer=ddp"], return_hydra_config=True)
    assert cfg.trainer.devices == cfg.hydra.launcher.tasks_per_node == cfg.hydra.launcher.gpus_per_node
    assert cfg.trainer.strategy == "ddp"
