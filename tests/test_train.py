"""End-to-end: train.py fits ACT and Diffusion on a real lerobot-written dataset, exports, reloads, resumes."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import train as train_script  # noqa: E402
from robolearn.utils.schema import register_schemas  # noqa: E402

TINY = {
    "act": [
        "policy=act_tiny", "policy.chunk_size=8", "policy.optimizer_lr=1e-3", "policy.optimizer_lr_backbone=1e-3",
    ],
    "diffusion": [
        "policy=diffusion_tiny", "policy.crop_shape=[80,80]", "policy.horizon=8", "policy.n_action_steps=4",
        "policy.optimizer_lr=1e-3", "policy.scheduler_warmup_steps=0",  # 40 steps: no 500-step warm-up
    ],
}


def _cfg(tmp_path: Path, dataset_root: Path, policy: str, extra: list[str] = ()):
    GlobalHydra.instance().clear()
    register_schemas()
    overrides = [
        "dataset=local", f"dataset.root={dataset_root}", "dataset.num_workers=0", "dataset.batch_size=8",
        "dataset.val_fraction=0.2", *TINY[policy], "trainer=smoke",
        f"paths.root_dir={tmp_path}", f"paths.output_dir={tmp_path / 'run'}", *extra,
    ]
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=none", "experiment=none", *overrides], return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    return cfg


def _losses(run_dir: Path) -> list[float]:
    (metrics,) = sorted((run_dir / "csv").glob("version_*/metrics.csv"))
    with open(metrics) as f:
        return [float(r["train/loss_step"]) for r in csv.DictReader(f) if r.get("train/loss_step")]


@pytest.mark.parametrize("policy", ["act", "diffusion"])
def test_fit_loss_decreases_and_exports(tmp_path, shared_datasets, policy):
    root = shared_datasets / "lerobot_written_pusht_random"
    steps = 40
    cfg = _cfg(tmp_path, root, policy, [f"trainer.max_steps={steps}", "trainer.val_check_interval=20"])
    trainer, module, dm = train_script.train(cfg)
    assert trainer.global_step == steps
    losses = _losses(tmp_path / "run")
    assert len(losses) >= steps - 1
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < first, f"{policy}: loss did not decrease ({first:.4f} -> {last:.4f})"

    ckpt_dir = tmp_path / "run" / "checkpoints"
    assert (ckpt_dir / "last.ckpt").is_file()
    # one copy of the final state on disk: last.ckpt links to the step checkpoint written at the same step
    assert (ckpt_dir / "last.ckpt").is_symlink() and (ckpt_dir / "last.ckpt").resolve() == ckpt_dir / f"step_{steps:06d}.ckpt"
    exported = ckpt_dir / "pretrained_model"
    for name in ("config.yaml", "model.safetensors"):
        assert (exported / name).is_file(), f"missing {name} in {exported}"

    from robolearn.policies.pretrained import load_policy

    reloaded = load_policy(exported)
    module.eval()
    batch = next(iter(dm.val_dataloader()))
    windowed = {k[: -len("_is_pad")] for k in batch if k.endswith("_is_pad")}
    obs = {k: (v[:, -1] if k in windowed else v) for k, v in batch.items()
           if k.startswith("observation.") and not k.endswith("_is_pad")}
    torch.manual_seed(0)
    module.reset()
    a = module.select_action(obs)
    torch.manual_seed(0)
    reloaded.reset()
    b = reloaded.select_action(obs)
    assert a.shape == (8, 2)
    torch.testing.assert_close(a, b)


def test_resume_from_last(tmp_path, shared_datasets):
    root = shared_datasets / "lerobot_written_pusht_random"
    trainer, _, _ = train_script.train(_cfg(tmp_path, root, "act", ["trainer.max_steps=3"]))
    assert trainer.global_step == 3
    trainer, _, _ = train_script.train(_cfg(tmp_path, root, "act", ["trainer.max_steps=5", "ckpt_path=last"]))
    assert trainer.global_step == 5, "resumed run must continue from step 3"


def test_ckpt_last_missing_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="last.ckpt"):
        train_script.resolve_ckpt_path("last", str(tmp_path))


@pytest.mark.parametrize("override, message", [
    ("policy.chunk_size=abc", r"policy\.chunk_size = 'abc' \(str\): expected int \(argument 'chunk_size' of "
                              r"robolearn\.policies\.act\.ACTPolicy\)"),
    ("dataset.batch_size=1.5", r"dataset\.batch_size = 1\.5 \(float\): expected int"),
])
def test_wrong_type_override_names_the_key_and_the_type(tmp_path, shared_datasets, override, message):
    from robolearn.utils.arguments import ConfigValueError

    cfg = _cfg(tmp_path, shared_datasets / "lerobot_written_pusht_random", "act", [override])
    with pytest.raises(ConfigValueError, match=message):
        train_script.train(cfg)


def test_multirun_sweep_with_submitit_local(tmp_path, shared_datasets):
    root = shared_datasets / "lerobot_written_pusht_random"
    cmd = [
        sys.executable, "train.py", "-m", "experiment=none", "sweeps=seeds2", "hydra/launcher=local", "trainer=smoke",
        "dataset=local", f"dataset.root={root}", "dataset.num_workers=0", "dataset.batch_size=4",
        *TINY["act"], f"paths.log_dir={tmp_path}", "callbacks.progress_bar=null",
    ]
    # one intra-op thread per job: the two jobs run at once on a 2-core machine
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    jobs = sorted((tmp_path / "train" / "multiruns").glob("*/[0-9]*"))
    assert len(jobs) == 2, f"expected 2 sweep jobs, found {jobs}"
    for job in jobs:
        assert (job / "checkpoints" / "last.ckpt").is_file()
    seeds = sorted((job / ".hydra" / "overrides.yaml").read_text() for job in jobs)
    assert "seed=1000" in seeds[0] and "seed=1001" in seeds[1]


@pytest.mark.parametrize("logger", ["tensorboard", "wandb"])
def test_loggers_write_offline(tmp_path, shared_datasets, logger, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    root = shared_datasets / "lerobot_written_pusht_random"
    extra = ["trainer.max_steps=2", f"logger={logger}"]
    if logger == "wandb":
        extra.append("logger.wandb.offline=true")
    trainer, _, _ = train_script.train(_cfg(tmp_path, root, "act", extra))
    assert trainer.global_step == 2
    run = tmp_path / "run"
    if logger == "tensorboard":
        assert list(run.glob("tensorboard/version_*/events.out.tfevents.*")), "no TensorBoard event file"
    else:
        assert list(run.glob("wandb/offline-run-*")), "no offline W&B run folder"
