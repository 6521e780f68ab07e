"""LeRobotDatasetMetadata on the real shared datasets and on broken copies of their meta/ folder."""

import json
import shutil
import warnings

import numpy as np
import pytest

from robolearn.datasets.errors import BackwardCompatibilityError, DatasetFormatError
from robolearn.datasets.metadata import LeRobotDatasetMetadata


def test_pusht_metadata(shared_datasets):
    m = LeRobotDatasetMetadata("lerobot/pusht_random", root=shared_datasets / "lerobot_written_pusht_random")
    assert m.fps == 10 and m.robot_type == "pusht_sim"
    assert m.video_keys == ["observation.image"] and m.camera_keys == ["observation.image"] and m.image_keys == []
    assert m.shapes["observation.image"] == (96, 96, 3) and m.shapes["action"] == (2,)
    assert m.names["action"] == ["x", "y"]
    assert (m.total_episodes, m.total_frames, m.total_tasks) == (5, 500, 1)
    assert list(m.tasks.columns) == ["task_index"] and m.tasks.index.name == "task"
    assert m.get_task_index("Push the T-shaped block onto the target.") == 0
    assert m.get_task_index("nope") is None
    assert not any(c.startswith("stats/") for c in m.episodes.columns)
    assert m.episodes.index.tolist() == [0, 1, 2, 3, 4]
    assert str(m.get_data_file_path(3)) == "data/chunk-000/file-000.parquet"
    assert str(m.get_video_file_path(3, "observation.image")) == "videos/observation.image/chunk-000/file-000.mp4"
    assert m.stats["observation.image"]["mean"].shape == (3, 1, 1)
    assert m.stats["action"]["q99"].shape == (2,)
    assert m.stats["action"]["count"].shape == (1,)
    with pytest.raises(KeyError, match="episode 7"):
        m.get_data_file_path(7)
    with pytest.raises(KeyError, match="action"):
        m.get_video_file_path(0, "action")


def test_unnamed_task_index_and_no_prefix_keys(shared_datasets):
    m = LeRobotDatasetMetadata("s/record-test", root=shared_datasets / "SamueleSandrini__record-test")
    assert m.tasks.index.tolist() == ["Pick the orange cube and place it in the box"]
    assert m.video_keys == ["observation.images.front", "observation.images.top"]
    m2 = LeRobotDatasetMetadata("y/open_50", root=shared_datasets / "yipiandanxinxiangyangkai__open_50")
    assert m2.video_keys == ["image"] and m2.shapes["actions"] == (34,)
    assert str(m2.get_data_file_path(17)) == "data/chunk-000/file-017.parquet"


def test_multi_file_episode_tables(shared_datasets):
    m = LeRobotDatasetMetadata("c/act", root=shared_datasets / "chenfei-source__ACT-robot-manipulation__dataset")
    assert m.total_episodes == 55 and m.total_frames == 13331
    assert m.episodes.index.tolist() == list(range(55))
    # 8, 42 and 5 episodes in data files 0, 1, 2
    assert str(m.get_data_file_path(7)).endswith("file-000.parquet")
    assert str(m.get_data_file_path(8)).endswith("file-001.parquet")
    assert str(m.get_data_file_path(54)).endswith("file-002.parquet")


def test_totals_mismatch_warns_and_trusts_tables(shared_datasets):
    with pytest.warns(UserWarning, match="total_episodes=105"):
        m = LeRobotDatasetMetadata("c/smolvla", root=shared_datasets / "chenfei-source__smolVLA-robot-manipulation__data")
    assert (m.total_episodes, m.total_frames, m.total_tasks) == (19, 4958, 2)
    assert m.info["total_episodes"] == 105  # info kept as written
    assert m.get_task_index("Put the mango on the plate.") == 1


@pytest.fixture
def meta_copy(shared_datasets, tmp_path):
    """A writable copy of the tiny csvil dataset's meta/ folder (no data needed for metadata)."""
    root = tmp_path / "ds"
    shutil.copytree(shared_datasets / "jovaldivieso__csvil__data_lerobot_dataset" / "meta", root / "meta")
    return root


def _edit_info(root, **changes):
    p = root / "meta" / "info.json"
    info = json.loads(p.read_text())
    for k, v in changes.items():
        if v is None:
            info.pop(k, None)
        else:
            info[k] = v
    p.write_text(json.dumps(info))
    return info


def test_missing_info_json(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"meta/info\.json"):
        LeRobotDatasetMetadata("x/y", root=tmp_path)


def test_old_codebase_version(meta_copy, shared_datasets):
    _edit_info(meta_copy, codebase_version="v2.1")
    with pytest.raises(BackwardCompatibilityError, match=r"convert_dataset_v21_to_v30"):
        LeRobotDatasetMetadata("x/y", root=meta_copy)
    # the real v2.1 dataset too
    with pytest.raises(BackwardCompatibilityError, match="v2.1"):
        LeRobotDatasetMetadata("g1", root=shared_datasets / "YifanTian07__G1-policy-train")


@pytest.mark.parametrize("fps", [0, -10, "ten"])
def test_bad_fps(meta_copy, fps):
    _edit_info(meta_copy, fps=fps)
    with pytest.raises(DatasetFormatError, match="fps"):
        LeRobotDatasetMetadata("x/y", root=meta_copy)


def test_malformed_features(meta_copy):
    info = json.loads((meta_copy / "meta" / "info.json").read_text())
    feats = info["features"]
    feats["action"]["shape"] = "two"
    _edit_info(meta_copy, features=feats)
    with pytest.raises(DatasetFormatError, match=r"features\['action'\]\['shape'\]"):
        LeRobotDatasetMetadata("x/y", root=meta_copy)
    feats["action"] = {"shape": [2]}
    _edit_info(meta_copy, features=feats)
    with pytest.raises(DatasetFormatError, match="'action'.*dtype"):
        LeRobotDatasetMetadata("x/y", root=meta_copy)
    _edit_info(meta_copy, features=None)
    with pytest.raises(DatasetFormatError, match="features"):
        LeRobotDatasetMetadata("x/y", root=meta_copy)


def test_camera_shape_must_be_3d_and_stats_optional(meta_copy):
    info = json.loads((meta_copy / "meta" / "info.json").read_text())
    (meta_copy / "meta" / "stats.json").unlink()
    m = LeRobotDatasetMetadata("x/y", root=meta_copy)
    assert m.stats is None and m.robot_type is None
    info["features"]["cam"] = {"dtype": "video", "shape": [96, 96], "names": None}
    _edit_info(meta_copy, features=info["features"])
    with pytest.raises(DatasetFormatError, match="'cam'.*3-D"):
        LeRobotDatasetMetadata("x/y", root=meta_copy)


def test_stats_values_are_arrays(shared_datasets):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = LeRobotDatasetMetadata("j/csvil", root=shared_datasets / "jovaldivieso__csvil__data_lerobot_dataset")
    assert all(isinstance(v, np.ndarray) for d in m.stats.values() for v in d.values())
    assert m.stats["observation.state"]["mean"].shape == (4,)
