"""The DAgger loop through the entry points, in the SO-101 sim with the scripted expert as the corrector:
``eval.py robot=sim_so101_pick_place teleop=scripted takeover=windows`` records flagged rollouts (and, with
``dataset.record_autonomous=false``, only the corrections), ``train.py dataset=local`` trains on the rollouts as
they are, and ``train.py policy=finetune dataset=multi`` fine-tunes the deployed policy on demonstrations +
corrections."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

from robolearn.datasets import LeRobotDataset
from robolearn.features import dataset_to_policy_features
from robolearn.policies import save_pretrained
from robolearn.record.frames import robot_dataset_features
from robolearn.robots.sim import SO101SimRobot
from tests.eval.helpers import TINY_ACT

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
import eval as eval_script  # noqa: E402
import train as train_script  # noqa: E402
from tests.compose import compose_config  # noqa: E402

ACT_RUN_CONFIG = {"policy": {"_target_": "robolearn.policies.act.ACTPolicy",
                             "optimizer": {"_target_": "torch.optim.AdamW", "_partial_": True, "lr": 1e-3}}}


def _compose(config: str, overrides: list[str]):
    return compose_config(config, overrides, set_hydra=True, no_experiment=True)


def _export_state_act(out: Path) -> Path:
    """A random tiny ACT on the state-only SO-101 features (the embedded default dataset's), as train.py exports."""
    from robolearn.policies.act import ACTPolicy

    feats = dataset_to_policy_features(robot_dataset_features(SO101SimRobot(fps=10, camera=None)))
    stats = {k: {"mean": np.zeros(v.shape, np.float32), "std": np.ones(v.shape, np.float32)} for k, v in feats.items()}
    torch.manual_seed(0)
    return save_pretrained(ACTPolicy(feats, stats, **TINY_ACT).eval(), out, ACT_RUN_CONFIG)


def _record_demos(root: Path) -> None:
    """Two scripted demonstrations, as ``record.py robot=sim_so101_pick_place teleop=scripted`` records them."""
    from robolearn.record.session import record_dataset
    from robolearn.teleop.scripted import ScriptedTeleop

    robot = SO101SimRobot(fps=10, camera=None)
    cfg = {"repo_id": "t/demos", "single_task": robot.task, "root": str(root), "fps": 10, "episode_time_s": 1.2,
           "reset_time_s": 0, "num_episodes": 2, "video": False}
    record_dataset(robot, ScriptedTeleop(robot), cfg, seed=0, play_sounds=False)


def _deploy(model: Path, root: Path, out: Path, *extra: str) -> dict:
    cfg = _compose("eval", [
        f"policy.path={model}", "robot=sim_so101_pick_place", "robot.camera=null", "dataset.fps=10",
        "dataset.episode_time_s=1.0", "dataset.reset_time_s=0.3", "teleop=scripted", "takeover=windows",
        "takeover.windows=[[3,6]]", "dataset.repo_id=t/rollouts", f"dataset.root={root}", "eval.n_episodes=2",
        "keyboard_events=false", f"paths.output_dir={out}", *extra])
    return eval_script.run_deploy(cfg)


def _train(out: Path, *overrides: str):
    cfg = _compose("train", [*overrides, "trainer=smoke", "trainer.max_steps=2", "trainer.val_check_interval=2",
                             "logger=none", f"paths.root_dir={out}", f"paths.output_dir={out / 'run'}"])
    trainer, policy, _ = train_script.train(cfg)
    return trainer, policy


def test_deploy_with_scripted_takeover_records_flagged_rollouts_that_train(tmp_path):
    model = _export_state_act(tmp_path / "model")
    info = _deploy(model, tmp_path / "rollouts", tmp_path / "run")
    assert [e["frames"] for e in info["episodes"]] == [10, 10]
    assert info["teleop"] == "scripted" and info["intervention_frames"] == 6 and info["episodes_with_takeover"] == 2
    assert json.loads((tmp_path / "run" / "deploy_info.json").read_text())["intervention_frames"] == 6
    ds = LeRobotDataset("t/rollouts", root=tmp_path / "rollouts")
    spec = ds.meta.features["intervention"]
    assert spec["dtype"] == "bool" and list(spec["shape"]) == [1]
    flags = [bool(ds[i]["intervention"]) for i in range(len(ds))]
    assert flags == ([False] * 3 + [True] * 3 + [False] * 4) * 2
    # The rollouts train as they are (train.py dataset=local).
    trainer, _ = _train(tmp_path / "t1", "dataset=local", f"dataset.root={tmp_path / 'rollouts'}",
                        "dataset.num_workers=0", "dataset.batch_size=4", "dataset.val_fraction=0.5", "policy=act_tiny")
    assert trainer.global_step == 2


def test_finetune_on_demonstrations_plus_corrections(tmp_path):
    """One DAgger round: only the corrections are recorded (one episode per takeover), then the deployed policy is
    fine-tuned on the union of the demonstrations and the corrections (dataset=multi)."""
    model = _export_state_act(tmp_path / "model")
    _record_demos(tmp_path / "demos")
    info = _deploy(model, tmp_path / "corrections", tmp_path / "run", "dataset.record_autonomous=false")
    assert info["intervention_frames"] == 6
    corr = LeRobotDataset("t/rollouts", root=tmp_path / "corrections")
    assert corr.meta.total_episodes == 2 and len(corr) == 6
    assert all(bool(corr[i]["intervention"]) for i in range(len(corr)))
    union = (f"dataset.datasets=[{{repo_id: t/demos, root: '{tmp_path / 'demos'}'}}, "
             f"{{repo_id: t/rollouts, root: '{tmp_path / 'corrections'}'}}]")
    trainer, policy = _train(tmp_path / "t2", "dataset=multi", union, "dataset.num_workers=0", "dataset.batch_size=4",
                             "dataset.val_fraction=0.5", "policy=finetune", f"policy.path={model}")
    assert trainer.global_step == 2
    assert type(policy).__name__ == "ACTPolicy"
    assert trainer.datamodule.frame_counts == [24, 6]
