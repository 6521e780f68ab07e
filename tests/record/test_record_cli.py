"""``python record.py`` as a user runs it: simulated SO-101 + scripted expert -> a dataset that loads and trains."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.record.conftest import REPO, tree_digest

TINY_ACT = ["policy=act_tiny", "policy.chunk_size=8", "policy.optimizer_lr=1e-3", "policy.optimizer_lr_backbone=1e-3"]


def _record_cmd(root: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, str(REPO / "record.py"), "robot=sim_so101_pick_place", "teleop=scripted",
            "dataset.repo_id=test/sim_pick", "dataset.single_task=Pick up the cube and place it on the green goal.",
            "dataset.fps=10", "dataset.reset_time_s=0", f"dataset.root={root}", "robot.image_size=32",
            "play_sounds=false", f"paths.root_dir={out}", *extra]


def test_record_sim_so101_then_train(tmp_path):
    root = tmp_path / "ds"
    subprocess.run(_record_cmd(root, tmp_path, "dataset.num_episodes=2", "dataset.episode_time_s=1.5"),
                   check=True, timeout=300, cwd=tmp_path, capture_output=True)

    from robolearn.datasets.lerobot_dataset import LeRobotDataset
    from robolearn.envs.so101 import SO101PickPlaceSim

    ds = LeRobotDataset("test/sim_pick", root=root)
    assert ds.meta.total_episodes == 2 and len(ds) == 30
    item = ds[17]
    assert int(item["episode_index"]) == 1 and int(item["frame_index"]) == 2
    assert abs(float(item["timestamp"]) - 0.2) < 1e-6
    assert tuple(item["observation.images.workspace"].shape) == (3, 32, 32)
    # Same features as the embedded default dataset generator (robolearn.demos.so101_pick_place).
    sim = SO101PickPlaceSim(image_size=32)
    expected = sim.features()
    sim.close()
    expected.update({"next.reward": {"dtype": "float32", "shape": [1], "names": None},
                     "next.success": {"dtype": "bool", "shape": [1], "names": None},
                     "next.done": {"dtype": "bool", "shape": [1], "names": None}})
    got = {k: {"dtype": v["dtype"], "shape": list(v["shape"]), "names": v["names"]} for k, v in ds.meta.features.items()}
    assert {k: got[k] for k in expected} == expected
    assert list(got)[:len(expected)] == list(expected)

    # Trains with train.py unchanged.
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    sys.path.insert(0, str(REPO))
    import train as train_script
    from robolearn.utils.schema import register_schemas

    GlobalHydra.instance().clear()
    register_schemas()
    overrides = ["dataset=local", f"dataset.root={root}", "dataset.num_workers=0", "dataset.batch_size=4",
                 "dataset.val_fraction=0.5", *TINY_ACT, "trainer=smoke", "trainer.max_steps=2",
                 f"paths.root_dir={tmp_path}", f"paths.output_dir={tmp_path / 'run'}"]
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=none", "experiment=none", *overrides], return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    trainer, _, _ = train_script.train(cfg)
    assert trainer.global_step == 2


@pytest.mark.slow
def test_sigkill_record_py_mid_episode_then_resume(tmp_path):
    """Kill record.py while it records episode 1: episode 0 stays byte-identical; resume appends."""
    root = tmp_path / "ds"
    proc = subprocess.Popen(_record_cmd(root, tmp_path, "dataset.num_episodes=3", "dataset.episode_time_s=4"),
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    info = root / "meta" / "info.json"
    deadline = time.time() + 240
    try:
        while time.time() < deadline:
            if info.is_file() and json.loads(info.read_text())["total_episodes"] >= 1:
                break
            assert proc.poll() is None, "record.py ended early"
            time.sleep(0.05)
        before = tree_digest(root)
        time.sleep(1.0)  # mid-episode 1
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert json.loads(info.read_text())["total_episodes"] == 1
    assert tree_digest(root) == before

    from robolearn.datasets.lerobot_dataset import LeRobotDataset
    from robolearn.record.session import record_dataset
    from robolearn.robots.sim import SO101SimRobot
    from robolearn.teleop.scripted import ScriptedTeleop

    assert len(LeRobotDataset("test/sim_pick", root=root)) == 40
    robot = SO101SimRobot(fps=10, image_size=32)
    cfg = {"repo_id": "test/sim_pick", "single_task": "Pick up the cube and place it on the green goal.",
           "root": str(root), "fps": 10, "episode_time_s": 0.5, "reset_time_s": 0, "num_episodes": 1,
           "streaming_encoding": True}
    record_dataset(robot, ScriptedTeleop(robot), cfg, resume=True, play_sounds=False)
    ds = LeRobotDataset("test/sim_pick", root=root)
    assert ds.meta.total_episodes == 2 and len(ds) == 45
    assert not list(root.rglob("*.tmp"))


@pytest.mark.parametrize("config, robot", [("record", "so101_follower"), ("record", "so100_follower"),
                                           ("eval", "so101_follower"), ("record", "sim_so101_pick_place")])
def test_robot_cameras_can_be_given_on_the_command_line(config, robot):
    """The README's `'robot.cameras={front: {...}}'` composes (an empty `cameras: {}` in struct mode refused new
    keys, so the documented real-arm commands failed before the robot was even built)."""
    from tests.compose import compose_config

    cam = "{front: {type: opencv, index_or_path: 0, width: 640, height: 480, fps: 30}}"
    overrides = [f"robot={robot}", f"robot.cameras={cam}"] + (["robot.port=/dev/ttyACM0"] if "sim" not in robot else [])
    cfg = compose_config(config, overrides)
    assert cfg.robot.cameras.front.width == 640 and cfg.robot.cameras.front.type == "opencv"
