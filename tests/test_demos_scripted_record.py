"""``record_scripted_dataset``: the ALOHA datasets' first-use generator records through record.py's path."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("gym_aloha")

from robolearn.datasets.lerobot_dataset import LeRobotDataset  # noqa: E402
from robolearn.demos.scripted_record import record_scripted_dataset  # noqa: E402
from robolearn.envs.aloha_scripted import TransferCubeExpert  # noqa: E402
from robolearn.robots.sim import GymSimRobot  # noqa: E402

JOINTS = [f"j{i}" for i in range(14)]


def _robot(shape=(24, 32, 3)) -> GymSimRobot:
    return GymSimRobot("gym_aloha/AlohaTransferCube-v0", fps=50, state_names=JOINTS, action_names=JOINTS,
                       camera_shapes={"top": list(shape)}, env_kwargs={"obs_type": "pixels_agent_pos"},
                       expert=TransferCubeExpert, task="Transfer the cube.")


def test_records_resized_scripted_episodes_once(tmp_path):
    root = tmp_path / "aloha"
    out = record_scripted_dataset(root, "test/aloha", _robot(), num_episodes=2, fps=50, episode_time_s=0.1,
                                  video=False)
    assert out == root and not list(tmp_path.glob(".aloha.tmp-*")), "written in place of a temporary folder"
    ds = LeRobotDataset("test/aloha", root=root)
    assert ds.num_episodes == 2 and len(ds) == 10  # round(0.1 s * 50 fps) = 5 frames per episode
    item = ds[0]
    assert tuple(item["observation.images.top"].shape) == (3, 24, 32), "480x640 render resized to camera_shapes"
    assert item["observation.state"].shape == (14,) and item["action"].shape == (14,)
    assert item["task"] == "Transfer the cube."
    # the expert moves the arms: recorded actions differ between the first and last frame of an episode
    assert not np.allclose(ds[0]["action"].numpy(), ds[4]["action"].numpy())
    gen = json.loads((root / "meta" / "generation.json").read_text())
    assert gen["params"]["num_episodes"] == 2 and gen["camera_shapes"] == {"top": [24, 32, 3]}
    assert gen["attempts"] == 2 and [e["seed"] for e in gen["episodes"]] == [0, 1]
    assert not any(e["success"] for e in gen["episodes"])  # 5 steps are far too short to transfer the cube
    # second call: the cache is returned as is (the robot is never connected)
    assert record_scripted_dataset(root, "test/aloha", object(), num_episodes=2, fps=50, episode_time_s=0.1) == root


def test_bad_arguments_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="num_episodes"):
        record_scripted_dataset(tmp_path / "a", "t/a", _robot(), num_episodes=0, fps=50, episode_time_s=1)
    with pytest.raises(ValueError, match="robot.fps=50"):
        record_scripted_dataset(tmp_path / "a", "t/a", _robot(), num_episodes=1, fps=30, episode_time_s=1)
    with pytest.raises(ValueError, match="observation.wrist"):
        record_scripted_dataset(tmp_path / "a", "t/a", _robot(), num_episodes=1, fps=50, episode_time_s=1,
                                exclude_features=["observation.wrist"])
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x.txt").write_text("not a dataset")
    with pytest.raises(FileExistsError, match="does not hold a LeRobotDataset"):
        record_scripted_dataset(tmp_path / "b", "t/b", _robot(), num_episodes=1, fps=50, episode_time_s=1)
