"""LeRobotDataModule: episode split, windows from integer offsets, feature selection, generation on demand."""

from __future__ import annotations

import shutil
import threading
import time

import pytest
import torch

from robolearn.datamodules.lerobot import LeRobotDataModule
from robolearn.features import FeatureType


@pytest.fixture()
def pusht_root(shared_datasets):
    return shared_datasets / "lerobot_written_pusht_random"


def _dm(root, **kw):
    kw.setdefault("num_workers", 0)
    return LeRobotDataModule(repo_id="t/pusht", root=root, **kw)


def test_features_and_stats(pusht_root):
    dm = _dm(pusht_root)
    feats = dm.features
    assert feats["observation.image"].type is FeatureType.VISUAL
    assert feats["observation.image"].shape == (3, 96, 96)  # HWC on disk -> CHW for the policy
    assert feats["observation.state"].shape == (2,) and feats["action"].type is FeatureType.ACTION
    assert "timestamp" not in feats and "next.success" not in feats
    assert dm.stats["action"]["mean"].shape == (2,)
    assert "observation.image" not in _dm(pusht_root, exclude_features=["observation.image"]).features
    with pytest.raises(KeyError, match="observation.typo"):
        _dm(pusht_root, exclude_features=["observation.typo"]).features


def test_episode_split_is_disjoint_and_seeded(pusht_root):
    train, val = _dm(pusht_root, val_fraction=0.4, seed=3).split_episodes()
    assert len(val) == 2 and len(train) == 3 and not set(train) & set(val)
    assert sorted(train + val) == [0, 1, 2, 3, 4]
    assert _dm(pusht_root, val_fraction=0.4, seed=3).split_episodes() == (train, val)
    assert _dm(pusht_root, val_fraction=0.0).split_episodes() == ([0, 1, 2, 3, 4], [])
    with pytest.raises(ValueError, match="val_fraction"):
        _dm(pusht_root, val_fraction=1.0)


def test_windows_from_integer_offsets(pusht_root):
    dm = _dm(pusht_root, val_fraction=0.2, batch_size=4)
    dm.set_delta_indices({"observation.image": [-1, 0], "action": [0, 1, 2]})
    assert dm.delta_timestamps == {"observation.image": [-0.1, 0.0], "action": [0.0, 0.1, 0.2]}  # fps 10
    batch = next(iter(dm.train_dataloader()))
    assert batch["observation.image"].shape == (4, 2, 3, 96, 96)
    assert batch["action"].shape == (4, 3, 2) and batch["action_is_pad"].dtype == torch.bool
    train_eps, val_eps = dm.split_episodes()
    assert dm.train_dataset.episodes == train_eps and dm.val_dataset.episodes == val_eps
    val_batch = next(iter(dm.val_dataloader()))
    assert set(val_batch["episode_index"].tolist()) == set(val_eps)
    with pytest.raises(KeyError, match="observation.environment_state"):
        dm.set_delta_indices({"observation.environment_state": [0]})


def test_generator_runs_once_when_dataset_missing(pusht_root, tmp_path):
    calls = []

    def generator(root, repo_id):
        calls.append((root, repo_id))
        shutil.copytree(pusht_root, root)

    root = tmp_path / "generated"
    dm = _dm(root, generator=generator)
    assert dm.fps == 10
    dm.prepare_data()
    assert calls == [(root, "t/pusht")]


def test_runs_started_together_generate_a_missing_dataset_once(pusht_root, tmp_path):
    """Two runs on one missing root (two seeds of a reproduction): one generates, the other waits for it."""
    calls, started = [], threading.Event()

    def generator(root, repo_id):
        calls.append(root)
        started.set()
        time.sleep(0.5)  # the other run asks while the dataset is half written
        shutil.copytree(pusht_root, root)

    root = tmp_path / "generated"
    first, second = _dm(root, generator=generator), _dm(root, generator=generator)
    worker = threading.Thread(target=first.prepare_data)
    worker.start()
    assert started.wait(10)
    assert second.fps == 10  # blocked on the lock until the copy was complete
    worker.join()
    assert calls == [root] and first.fps == 10
    assert (tmp_path / ".generated.lock").exists()


def test_excluding_every_camera_opens_no_video(pusht_root, tmp_path):
    """With all cameras excluded the DataModule reads a copy whose videos/ folder is gone (state-only training)."""
    root = tmp_path / "pusht_no_videos"
    shutil.copytree(pusht_root, root, ignore=shutil.ignore_patterns("videos"))
    dm = _dm(root, exclude_features=["observation.image"], batch_size=4)
    dm.set_delta_indices({"action": [0, 1, 2]})
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert "observation.image" not in batch and batch["action"].shape == (4, 3, 2)
    with pytest.raises(FileNotFoundError):  # the same copy with the camera kept needs its videos
        kept = _dm(root, batch_size=4)
        kept.setup("fit")
        next(iter(kept.train_dataloader()))
