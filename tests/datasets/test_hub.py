"""Hub resolution, offline, through a fake huggingface_hub cache built in tmp_path from a shared dataset."""

import os

import numpy as np
import pytest
import torch

from robolearn.datasets import hub
from robolearn.datasets.errors import DatasetNotFoundError
from robolearn.datasets.lerobot_dataset import LeRobotDataset
from robolearn.datasets.metadata import LeRobotDatasetMetadata

REPO = "robolearn/pusht_random"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _fake_cache(src, cache, repo_id=REPO, revision="v3.0", only_meta=False):
    """Standard HF cache layout: datasets--owner--name/{refs/<rev>, snapshots/<commit>/...} (files are symlinks)."""
    repo_dir = cache / ("datasets--" + repo_id.replace("/", "--"))
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / revision).write_text(COMMIT)
    snap = repo_dir / "snapshots" / COMMIT
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if path.is_dir() or (only_meta and rel.parts[0] != "meta"):
            continue
        (snap / rel).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(path, snap / rel)
    return snap


@pytest.fixture
def lerobot_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_LEROBOT_HOME", str(tmp_path / "lerobot"))
    assert hub._offline()  # conftest sets HF_HUB_OFFLINE=1
    return tmp_path / "lerobot"


def test_home_and_cache_dirs(lerobot_home, monkeypatch):
    assert hub.get_lerobot_home() == lerobot_home and hub.get_hub_cache_dir() == lerobot_home / "hub"
    monkeypatch.delenv("HF_LEROBOT_HOME")
    assert hub.get_lerobot_home() == hub.Path(os.path.expanduser("~/.cache/huggingface/lerobot"))


def test_load_through_hub_cache(shared_datasets, lerobot_home):
    src = shared_datasets / "lerobot_written_pusht_random"
    snap = _fake_cache(src, lerobot_home / "hub")
    ds = LeRobotDataset(REPO, episodes=[1], delta_timestamps={"action": [0.0, 0.1]})
    assert ds.root == snap and ds.meta.root == snap
    local = LeRobotDataset(REPO, root=src, episodes=[1], delta_timestamps={"action": [0.0, 0.1]})
    a, b = ds[5], local[5]
    assert set(a) == set(b)
    for k in a:
        if torch.is_tensor(a[k]):
            assert torch.equal(a[k], b[k]), k
    meta = LeRobotDatasetMetadata(REPO)
    assert meta.total_episodes == 5 and meta.root == snap


def test_local_home_copy_wins(shared_datasets, lerobot_home):
    (lerobot_home / "someone").mkdir(parents=True)
    os.symlink(shared_datasets / "jovaldivieso__csvil__data_lerobot_dataset", lerobot_home / "someone" / "csvil")
    ds = LeRobotDataset("someone/csvil")
    assert ds.root == lerobot_home / "someone" / "csvil" and len(ds) == 2510


def test_partial_offline_cache(shared_datasets, lerobot_home):
    _fake_cache(shared_datasets / "lerobot_written_pusht_random", lerobot_home / "hub", only_meta=True)
    meta = LeRobotDatasetMetadata(REPO)  # meta/ alone is enough for the metadata
    assert meta.fps == 10
    with pytest.raises(FileNotFoundError, match=r"data/chunk-000/file-000\.parquet"):
        LeRobotDataset(REPO)


def test_missing_repo_or_revision_offline(shared_datasets, lerobot_home):
    with pytest.raises(DatasetNotFoundError, match=r"nobody/nothing.*v3\.0.*HF_HUB_OFFLINE"):
        LeRobotDatasetMetadata("nobody/nothing")
    _fake_cache(shared_datasets / "lerobot_written_pusht_random", lerobot_home / "hub")
    with pytest.raises(DatasetNotFoundError, match="v9.9"):
        LeRobotDataset(REPO, revision="v9.9")
    assert isinstance(DatasetNotFoundError("x"), FileNotFoundError)


def test_ensure_files_noop_when_present(shared_datasets):
    root = shared_datasets / "lerobot_written_pusht_random"
    assert hub.ensure_files("x/y", root, ["data/chunk-000/file-000.parquet"]) == root
    assert np.all([p.is_file() for p in [root / "meta/info.json"]])
