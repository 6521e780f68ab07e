"""``eval.py ... robot=...``: deploy an exported policy on the simulated SO-101 and record the rollouts."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig

from robolearn.datasets import LeRobotDataset
from robolearn.features import dataset_to_policy_features
from robolearn.policies import save_pretrained
from robolearn.record.frames import robot_dataset_features
from robolearn.robots.sim import SO101SimRobot
from robolearn.utils.schema import register_schemas
from tests.eval.helpers import TINY_ACT

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
import eval as eval_script  # noqa: E402


def _export_so101_act(out: Path, image_size: int) -> Path:
    from robolearn.policies.act import ACTPolicy

    robot = SO101SimRobot(fps=10, image_size=image_size)
    feats = {k: v for k, v in dataset_to_policy_features(robot_dataset_features(robot)).items()}
    stats = {k: {"mean": torch.zeros(v.shape if v.type.value != "VISUAL" else (3, 1, 1)).numpy(),
                 "std": torch.ones(v.shape if v.type.value != "VISUAL" else (3, 1, 1)).numpy()}
             for k, v in feats.items()}
    torch.manual_seed(0)
    return save_pretrained(ACTPolicy(feats, stats, **TINY_ACT).eval(), out, {"policy": {}})


def test_deploy_on_sim_robot_records(tmp_path):
    model = _export_so101_act(tmp_path / "model", image_size=16)
    GlobalHydra.instance().clear()
    register_schemas()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("eval", return_hydra_config=True, overrides=[
            f"policy.path={model}", "robot=sim_so101_pick_place", "robot.image_size=16", "dataset.fps=10",
            "dataset.episode_time_s=0.5", "dataset.repo_id=me/eval_run", f"dataset.root={tmp_path / 'rollouts'}",
            "dataset.video=false", "eval.n_episodes=2", "keyboard_events=false", f"paths.output_dir={tmp_path / 'run'}",
        ])
    HydraConfig.instance().set_config(cfg)
    info = eval_script.run_deploy(cfg)
    assert [e["frames"] for e in info["episodes"]] == [5, 5]
    assert info["pc_success"] == 0.0  # a random tiny policy does not solve the task
    saved = json.loads((tmp_path / "run" / "deploy_info.json").read_text())
    assert saved["robot"] == info["robot"] and len(saved["episodes"]) == 2
    ds = LeRobotDataset("me/eval_run", root=tmp_path / "rollouts")
    assert ds.meta.total_episodes == 2 and len(ds) == 10
    assert set(ds.features) >= {"observation.state", "observation.images.workspace", "action"}
