"""The HIL-SERL workflow of docs/rl.md on the simulated planar reach task: record demos (record.py
robot=sim_planar_reach teleop=scripted) -> train the reward classifier (train.py policy=reward_classifier) -> learner
and actor (train.py experiment=hil_serl_planar_reach_classifier [debug=smoke] role=both).

Fast tests check the pieces (the robot records camera frames with positive and negative success labels, the
experiment wires the demos and the classifier consistently with the robot config); the slow test runs the three
commands in miniature."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import OmegaConf

from robolearn.utils.schema import register_schemas

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "conf"


def _compose(config: str, overrides: list[str]):
    GlobalHydra.instance().clear()
    register_schemas()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config, overrides=overrides)


def test_sim_planar_reach_robot_records_camera_frames_and_success_labels():
    from robolearn.teleop.scripted import ScriptedTeleop

    cfg = _compose("record", ["robot=sim_planar_reach", "dataset.repo_id=local/x", "dataset.fps=20"])
    robot = instantiate(cfg.robot)
    feats = robot.dataset_features(use_video=False)
    assert feats["observation.images.top"]["shape"] == [64, 64, 3]
    assert feats["observation.state"]["shape"] == [4] and feats["observation.environment_state"]["shape"] == [4]
    assert {"action", "next.reward", "next.success", "next.done"} <= set(feats)
    teleop = ScriptedTeleop(robot)
    robot.connect()
    try:
        obs = robot.reset(seed=0)
        assert obs["top"].shape == (64, 64, 3) and obs["top"].dtype == np.uint8
        success, reward = [], []
        while not robot.episode_done:
            robot.send_action(teleop.get_action(obs))
            obs = robot.get_observation()
            success.append(bool(robot.transition["next.success"][0]))
            reward.append(float(robot.transition["next.reward"][0]))
    finally:
        robot.disconnect()
    assert len(success) == 40  # the time limit ends the episode, not the first success
    assert reward == [float(s) for s in success]  # sparse reward = the success label
    assert 0.3 < np.mean(success) < 0.9 and not success[0] and success[-1]  # both labels, holding the goal at the end


def test_classifier_experiment_wires_demos_classifier_and_camera():
    cfg = _compose("train", ["experiment=hil_serl_planar_reach_classifier", "debug=smoke", "demos_root=/d",
                             "reward_classifier_path=/c"])
    robot = _compose("record", ["robot=sim_planar_reach", "dataset.repo_id=local/x", "dataset.fps=20"]).robot
    ds = OmegaConf.to_container(cfg.dataset, resolve=True)
    assert ds["_target_"] == "robolearn.rl.hil.learner.RemoteActorDataModule"
    assert ds["offline_repo_id"] == "local/reach_demos" and ds["offline_root"] == "/d"
    # the actor's camera is the one the demos recorded and the classifier was trained on
    for key in ("obs_type", "render_size", "success_radius"):
        assert ds["env_kwargs"][key] == robot.env_kwargs[key], key
    (wrapper,) = OmegaConf.to_container(cfg.actor.wrappers, resolve=True)
    assert wrapper["_target_"] == "robolearn.rl.wrappers.RewardClassifierWrapper"
    assert wrapper["classifier"] == {"_target_": "robolearn.policies.load_policy", "path": "/c"}
    (cam,) = robot.camera_shapes
    assert wrapper["image_keys"] == {"pixels": f"observation.images.{cam}"}
    assert "pixels" not in ds["features_map"]  # SAC acts on state; the camera is the classifier's


def _run(cmd: list[str], timeout: int) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}
    proc = subprocess.run([sys.executable, *cmd], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.mark.slow
def test_record_train_classifier_then_learner_and_actor(tmp_path):
    from robolearn.datasets.lerobot_dataset import LeRobotDataset
    from robolearn.policies import load_policy

    demos, cls_dir, learner_dir, actor_eps = (tmp_path / n for n in ("demos", "cls", "learner", "actor_eps"))
    # 1. demonstrations from the PD expert (the env keeps its 20 Hz physics; recorded 5x faster than real time)
    _run(["record.py", "robot=sim_planar_reach", "teleop=scripted", "dataset.repo_id=local/reach_demos",
          f"dataset.root={demos}", "dataset.num_episodes=4", "dataset.fps=100", "robot.env_kwargs.fps=20",
          "dataset.episode_time_s=0.4", "dataset.reset_time_s=0", "dataset.video=false", "keyboard_events=false",
          "play_sounds=false", f"hydra.run.dir={tmp_path / 'rec'}"], 300)
    ds = LeRobotDataset("local/reach_demos", root=demos)
    assert ds.meta.total_episodes == 4 and len(ds) == 160
    labels = torch.stack([ds[i]["next.success"] for i in range(len(ds))]).bool()
    assert 0 < labels.sum() < len(ds)

    # 2. the reward classifier on those frames
    _run(["train.py", "experiment=none", "policy=reward_classifier", "dataset=local", f"dataset.root={demos}", "dataset.num_workers=0",
          "dataset.batch_size=16", "trainer=cpu", "trainer.max_steps=40", "trainer.val_check_interval=40",
          "callbacks.progress_bar=null", f"paths.log_dir={tmp_path}", f"hydra.run.dir={cls_dir}"], 600)
    export = cls_dir / "checkpoints" / "pretrained_model"
    classifier = load_policy(export)
    frames = torch.stack([ds[i]["observation.images.top"] for i in range(len(ds))])
    p = classifier.predict_success({"observation.images.top": frames})
    assert p.shape == (len(ds),)
    assert p[labels].mean() > p[~labels].mean() + 0.1, (p[labels].mean(), p[~labels].mean())

    # 3. learner (offline buffer = the demos) and actor (reward = the classifier) in one command
    _run(["train.py", "experiment=hil_serl_planar_reach_classifier", "debug=smoke", "role=both", f"demos_root={demos}",
          "trainer.max_steps=30", "trainer.val_check_interval=30",
          f"reward_classifier_path={export}", f"paths.log_dir={tmp_path}", f"hydra.run.dir={learner_dir}",
          "callbacks.progress_bar=null", "dataset.port=50068",
          f"actor.record={{repo_id: local/actor_eps, root: '{actor_eps}', use_videos: false, task: reach}}"], 600)
    ckpt = torch.load(learner_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["global_step"] >= 30
    (metrics,) = learner_dir.glob("csv/*/metrics.csv")
    rows = list(csv.DictReader(metrics.open()))
    episodes = [r for r in rows if r.get("env/episode_return")]
    assert episodes and float(episodes[-1]["env/steps"]) >= 40  # actor transitions reached the learner
    assert {float(r["env/episode_return"]) for r in episodes} <= {0.0, 1.0}  # one classifier success at most
    acted = LeRobotDataset("local/actor_eps", root=actor_eps)
    rewards = torch.stack([acted[i]["next.reward"] for i in range(len(acted))])
    # the env's own reward (dense: -distance) would be negative; the classifier's is 0 or 1
    assert len(acted) > 0 and set(rewards.unique().tolist()) <= {0.0, 1.0}
